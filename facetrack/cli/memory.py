"""`serve`, `people`, `seen`, `unknowns`, `forget`, `store`: the identity memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facetrack.cli.common import (
    ConfigOpt,
    DetectorOpt,
    JsonOpt,
    PackOpt,
    ProvidersOpt,
    RecognizerOpt,
    StoreOpt,
    app,
    build_config,
    console,
    default_store,
    existing_store,
    out,
    store_app,
    unknowns_app,
)
from facetrack.errors import FacetrackError


def _when(seconds: float | None) -> str:
    import datetime as dt

    return "–" if seconds is None else dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def _iso(seconds: float | None) -> str | None:
    import datetime as dt

    return None if seconds is None else dt.datetime.fromtimestamp(seconds).astimezone().isoformat(
        timespec="seconds")


def _since(text: str | None) -> float | None:
    """`--since`: 30m, 12h, 2d, 1w ago, or a date/time (2026-12-01, 2026-12-01T08:00)."""
    import datetime as dt
    import re
    import time

    if text is None:
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if found:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
        return time.time() - float(found.group(1)) * unit
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise FacetrackError(f"--since {text!r}: give a time ago (30m, 12h, 2d, 1w) or a date (2026-12-01, "
                             "2026-12-01T08:00)") from None


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs --token.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free one).")] = 8080,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="FACETRACK_SERVE_TOKEN",
        help="Secret every request must carry (open the printed ?token= address once; API clients send "
             "`Authorization: Bearer TOKEN`). Required to listen beyond loopback.")] = None,
    gallery: Annotated[Path | None, typer.Option(
        "--gallery", "-g", help="Gallery file (.db, created if missing) that photos uploaded to the page's Enrol "
                                "form join, as with `gallery add`; needs the models.")] = None,
    config: ConfigOpt = None, detector: DetectorOpt = None, recognizer: RecognizerOpt = None,
    pack: PackOpt = None, providers: ProvidersOpt = None,
) -> None:
    """A local web page on the identity store: who was here, when, on which camera; name, merge or forget the
    strangers; enrol people from photos (--gallery). Needs the `web` extra (FastAPI, uvicorn, Jinja2)."""
    from facetrack.web import require_extra

    require_extra()
    from facetrack.web.enrol import Enrolment
    from facetrack.web.server import serve as run_server

    cfg = build_config(config, detector, recognizer, pack, providers)
    enrolment = None if gallery is None else Enrolment(gallery, cfg)
    run_server(store or cfg.store.path or default_store(), host=host, port=port, token=token, config=cfg.store,
               enrolment=enrolment,
               announce=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))



people_app = typer.Typer(invoke_without_command=True, no_args_is_help=False)
app.add_typer(people_app, name="people")


@people_app.callback()
def people(ctx: typer.Context, store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Everyone the store remembers, named people and strangers: sightings, first and last seen, cameras, whether
    ignored. `people ignore NAME|unknown-N` keeps alerts about someone quiet."""
    import json

    if ctx.invoked_subcommand is not None:
        return
    db, _ = existing_store(store, config)
    try:
        everyone = db.people()
    finally:
        db.close()
    if as_json:
        print(json.dumps({"store": db.location, "people": [
            {"identity": p.label, "named": p.named, "sightings": p.sightings, "templates": p.templates,
             "first_seen": _iso(p.first_seen), "last_seen": _iso(p.last_seen), "cameras": p.cameras,
             "ignored": p.ignored} for p in everyone]}))
        return
    table = Table(title=f"who was here ({db.location})")
    for column in ("identity", "kind", "sightings", "first seen", "last seen", "cameras", "templates"):
        table.add_column(column)
    for p in everyone:
        kind = ("person" if p.named else "stranger") + (", ignored" if p.ignored else "")
        table.add_row(p.label, kind, str(p.sightings), _when(p.first_seen), _when(p.last_seen), ", ".join(p.cameras),
                      str(p.templates))
    out.print(table)


@people_app.command("ignore")
def people_ignore(
    identity: Annotated[str, typer.Argument(help="A name or unknown-N.", show_default=False)],
    undo: Annotated[bool, typer.Option("--undo", help="Stop ignoring them: alerts about them again.")] = False,
    store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Ignore a person or stranger (the courier, yourself): still recognised and remembered, their events say
    `"ignored": true`, and no MQTT or webhook alert is sent about them. Running workers follow within a second."""
    import json

    db, _ = existing_store(store, config)
    try:
        label = db.ignore(identity, ignored=not undo)
        person = db.person(label)
    finally:
        db.close()
    if as_json:
        print(json.dumps({"identity": label, "ignored": not undo}))
        return
    said = "no longer ignored: alerts about them again" if undo else "ignored: still recognised, never alerted"
    ahead = " (not seen yet: from their first sighting on)" if person is not None and not person.sightings else ""
    out.print(f"{label} is {said}{ahead} ({db.location})", highlight=False)


@app.command()
def seen(
    identity: Annotated[str, typer.Argument(help="A name or unknown-N.", show_default=False)],
    since: Annotated[str | None, typer.Option("--since", help="Only sightings since: 30m, 12h, 2d, 1w, or a date "
                                                              "(2026-12-01).")] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="Only on this camera.")] = None,
    export: Annotated[Path | None, typer.Option(
        "--export", help="Write each sighting's best face crop into this folder (created if missing).")] = None,
    store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """When and where a person or stranger was seen: each sighting's time, camera, duration and crop."""
    import json
    import os

    after = _since(since)
    db, _ = existing_store(store, config)
    try:
        found = db.sightings(identity, since=after, camera=camera)
    finally:
        db.close()
    crops: dict[int, str] = {}
    if export is not None:
        if not export.parent.is_dir():
            raise FacetrackError(f"--export {export}: folder {export.parent} does not exist")
        export.mkdir(exist_ok=True)
        for s in found:
            if s.crop is not None and s.id is not None:
                path = export / f"{s.identity}_{s.id}.jpg"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # faces: the owner's only
                with os.fdopen(fd, "wb") as handle:
                    handle.write(s.crop)
                crops[s.id] = str(path)
    label = found[0].identity if found else identity
    if as_json:
        print(json.dumps({"identity": label, "store": db.location, "sightings": [
            {"id": s.id, "camera": s.camera, "run_id": s.run_id, "track_id": s.track_id, "started": _iso(s.started),
             "ended": _iso(s.ended), "seconds": round(s.seconds, 2), "pts_start": round(s.pts_start, 3),
             "pts_end": round(s.pts_end, 3), "looks": s.looks, "crop": crops.get(s.id or -1)} for s in found]}))
        return
    table = Table(title=f"{label}: {len(found)} sightings" + (f" on {camera}" if camera else "")
                  + (f" since {since}" if since else ""))
    for column in ("when", "camera", "seconds", "looks", "run", "crop"):
        table.add_column(column)
    for s in found:
        table.add_row(_when(s.started), s.camera, f"{s.seconds:.1f}", str(s.looks), s.run_id,
                      crops.get(s.id or -1, "" if s.crop is None else "(--export DIR)"))
    out.print(table)


@unknowns_app.command("name")
def unknowns_name(
    stranger: Annotated[str, typer.Argument(help="The stranger's unknown-N.", show_default=False)],
    name: Annotated[str, typer.Argument(help="Their name from now on.", show_default=False)],
    store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Name a stranger: their templates become a person of the store's gallery, their past sightings answer to
    the name, and later runs with this store name them."""
    import json

    db, _ = existing_store(store, config)
    try:
        db.name(stranger, name)
        person = next(p for p in db.people() if p.label == name)
    finally:
        db.close()
    if as_json:
        print(json.dumps({"stranger": stranger, "identity": name, "sightings": person.sightings,
                          "templates": person.templates}))
        return
    out.print(f"{stranger} is now {name} ({person.sightings} sightings, {person.templates} templates in "
              f"{db.location})", highlight=False)


@unknowns_app.command("merge")
def unknowns_merge(
    keep: Annotated[str, typer.Argument(help="The identity that stays (unknown-N or a name).", show_default=False)],
    other: Annotated[str, typer.Argument(help="The stranger that was the same person.", show_default=False)],
    store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Two strangers were one person: OTHER's sightings and templates go to KEEP."""
    import json

    db, _ = existing_store(store, config)
    try:
        moved = db.merge(keep, other)
    finally:
        db.close()
    if as_json:
        print(json.dumps({"identity": keep, "merged": other, "sightings_moved": moved}))
        return
    out.print(f"{other} merged into {keep} ({moved} sightings moved)", highlight=False)


@app.command()
def forget(
    identity: Annotated[str, typer.Argument(help="A name or unknown-N.", show_default=False)],
    store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Erase a person or stranger from the store: templates, sightings, crops, name; nothing of them stays in the
    file. (A photo gallery is a separate file: `facetrack gallery remove G.db NAME`.)"""
    import json

    db, _ = existing_store(store, config)
    try:
        erased = db.forget(identity)
    finally:
        db.close()
    if as_json:
        print(json.dumps({"forgotten": identity, "sightings": erased}))
        return
    out.print(f"forgot {identity}: {erased} sightings and every template erased from {db.location}",
              highlight=False)


@store_app.command("purge")
def store_purge(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", help="Days to keep (default: store.retention_days in the config, 30).")] = None,
    store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None,
) -> None:
    """Delete sightings older than the retention period, and strangers no longer seen since."""
    import json
    import time

    db, cfg = existing_store(store, config)
    days = older_than if older_than is not None else cfg.store.retention_days
    if days < 0:
        raise FacetrackError("--older-than must be a number of days, 0 or more")
    try:
        sightings, strangers = db.purge(time.time() - days * 86400)
    finally:
        db.close()
    if as_json:
        print(json.dumps({"days": days, "sightings": sightings, "strangers": strangers}))
        return
    out.print(f"purged {sightings} sightings older than {days:g} days and {strangers} strangers not seen since "
              f"from {db.location}", highlight=False)

