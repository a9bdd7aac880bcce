"""The review page as an ASGI app: server-side pages (Jinja2) over a JSON API that the pages' script calls.

Safe by default: without a token only loopback Host headers are answered (no DNS rebinding); with a token every
request (page, API, crop, static file) must carry it — `?token=` once (it becomes a cookie), the cookie, or
`Authorization: Bearer`. Every state-changing request is a POST carrying the page's CSRF token in `X-CSRF-Token`.
Crops come from the store only, never cached (`Cache-Control: no-store`); nothing lists a directory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from facetrack.config import StoreConfig
from facetrack.errors import FacetrackError
from facetrack.store import PersonSummary, is_stranger, open_store
from facetrack.store.sql import Template
from facetrack.web.enrol import MAX_PHOTO_BYTES, MAX_PHOTOS, Enrolment, TooLarge, Upload
from facetrack.web.live import LiveTiles
from facetrack.web.queries import Seen, StoreQueries, Stranger, iso, parse_when, when

HERE = Path(__file__).parent
TOKEN_COOKIE = "facetrack_session"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


class NameBody(BaseModel):
    name: str


class MergeBody(BaseModel):
    into: str


class IgnoreBody(BaseModel):
    ignored: bool = True


def _host_name(host_header: str) -> str:
    """The host of a Host header, without the port (IPv6 literals come bracketed)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _cookie(request: Request) -> str:
    """The session cookie's name: one per port, as cookies do not tell the ports of a host apart."""
    return f"{TOKEN_COOKIE}_{request.url.port or request.url.scheme}"


def create_app(store_path: Path | str, token: str | None = None, config: StoreConfig | None = None,
               enrolment: Enrolment | None = None, tiles: LiveTiles | None = None) -> FastAPI:
    """The app on the existing store at `store_path` (an SQLite file or a postgresql:// URL, opened as the CLI
    opens it, with `config`'s template limits); with `token`, every request must carry it; with `enrolment`,
    photos uploaded to /enrol join that gallery; with `tiles` (`watch --serve`), /live shows each camera now."""
    config = config or StoreConfig()
    store = open_store(store_path, create=False, max_templates=config.max_templates,
                       diversity=config.template_diversity)
    queries = StoreQueries(store)  # type: ignore[arg-type]
    csrf = secrets.token_urlsafe(32)
    session = None if token is None else hmac.new(token.encode(), b"facetrack serve", hashlib.sha256).hexdigest()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="facetrack", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.queries, app.state.csrf = store, queries, csrf
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.autoescape = True  # every value a page shows is escaped, whatever the file name
    templates.env.filters["when"] = when
    templates.env.globals["is_stranger"] = is_stranger
    templates.env.globals["live"] = tiles is not None
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    # --- the gate: host, token, CSRF, headers ---------------------------------------------------------------

    def _refuse(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(request, "error.html", {"status": status, "message": message,
                                                                  "csrf": ""}, status_code=status)

    def _authorised(request: Request) -> bool:
        assert token is not None and session is not None
        cookie = request.cookies.get(_cookie(request), "")
        if cookie and hmac.compare_digest(cookie.encode(), session.encode()):
            return True
        bearer = request.headers.get("authorization", "")
        return bearer.startswith("Bearer ") and hmac.compare_digest(bearer[7:].strip().encode(), token.encode())

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        response = await _gate(request, call_next)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    async def _gate(request: Request, call_next: Any) -> Response:
        host = _host_name(request.headers.get("host", ""))
        if token is None and host not in LOOPBACK_HOSTS:
            return _refuse(request, 400, f"host {host!r} is not this machine: without --token the page answers "
                                         "only to 127.0.0.1 and localhost")
        if token is not None and not _authorised(request):
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()) \
                    and request.method in SAFE_METHODS:
                rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
                # Lax, not Strict: a login link followed from another site must work; changes need the CSRF token.
                response.set_cookie(_cookie(request), session or "", httponly=True, samesite="lax",
                                    secure=request.url.scheme == "https")
                return response
            return _refuse(request, 401, "this page needs its token: open the address `facetrack serve` printed "
                                         "(…/?token=…), or send `Authorization: Bearer TOKEN`")
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("origin")
            if origin is not None and _host_name(origin.split("://", 1)[-1]) != host:
                return _refuse(request, 403, f"a request from {origin} may not change anything here")
            if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), csrf.encode()):
                return _refuse(request, 403, "missing or wrong CSRF token: send the page's token (GET /api/session "
                                             "gives it) in the X-CSRF-Token header")
        return await call_next(request)

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> Response:
        return _refuse(request, 413, str(exc))

    @app.exception_handler(FacetrackError)
    async def _bad_request(request: Request, exc: FacetrackError) -> Response:
        status = 404 if str(exc).startswith("nobody called") else 400
        return _refuse(request, status, str(exc))

    @app.exception_handler(LookupError)
    async def _not_found(request: Request, exc: LookupError) -> Response:
        return _refuse(request, 404, f"nobody called {exc.args[0]!r} in {store.location}")

    # --- what the pages and the API show -----------------------------------------------------------------------

    def person_json(p: PersonSummary, crops: dict[str, int]) -> dict[str, Any]:
        crop = crops.get(p.label)
        return {"identity": p.label, "named": p.named, "sightings": p.sightings, "templates": p.templates,
                "first_seen": iso(p.first_seen), "last_seen": iso(p.last_seen), "cameras": p.cameras,
                "ignored": p.ignored, "crop": None if crop is None else f"/crops/{crop}.jpg"}

    def template_json(t: Template) -> dict[str, Any]:
        return {"id": t.id, "quality": round(t.quality, 3), "created": iso(t.created),
                "crop": None if t.sighting_id is None else f"/crops/{t.sighting_id}.jpg"}

    def seen_json(s: Seen) -> dict[str, Any]:
        return {"id": s.id, "identity": s.identity, "named": s.named, "camera": s.camera, "run_id": s.run_id,
                "track_id": s.track_id, "started": iso(s.started), "ended": iso(s.ended),
                "seconds": round(s.seconds, 2), "looks": s.looks, "crop": f"/crops/{s.id}.jpg" if s.has_crop else None}

    def stranger_json(s: Stranger) -> dict[str, Any]:
        return {"identity": s.label, "sightings": s.sightings, "first_seen": iso(s.first_seen),
                "last_seen": iso(s.last_seen), "cameras": s.cameras, "crops": [f"/crops/{c}.jpg" for c in s.crops]}

    def summary(label: str) -> PersonSummary:
        found = next((p for p in store.people() if p.label == label), None)
        if found is None:
            raise LookupError(label)
        return found

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"csrf": csrf, "store": store.location, **context})

    def search_args(identity: str | None, camera: str | None, since: str | None,
                    until: str | None) -> dict[str, Any]:
        return {"identity": identity.strip() or None if identity else None, "camera": camera or None,
                "since": parse_when(since, "since"), "until": parse_when(until, "until")}

    # --- pages ---------------------------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def people_page(request: Request) -> HTMLResponse:
        everyone, crops = store.people(), queries.best_crops()
        named = [p for p in everyone if p.named]
        strangers = sorted((p for p in everyone if not p.named), key=lambda p: -(p.last_seen or 0))
        labels = {p.label for p in named}
        enrolled = {} if enrolment is None else {n: c for n, c in enrolment.people().items() if n not in labels}
        return page(request, "people.html", named=named, strangers=strangers, crops=crops, enrolled=enrolled,
                    active="people")

    @app.get("/people/{label}", response_class=HTMLResponse, response_model=None)
    def person_page(request: Request, label: str) -> Response:
        found = queries.resolve(label)
        if found is None:
            raise LookupError(label)
        if found[0] != label:  # an old label: the person it went into
            return RedirectResponse(f"/people/{quote(found[0])}", status_code=303)
        person = summary(label)
        others = [p for p in store.people() if p.label != label]
        return page(request, "person.html", person=person, sightings=queries.sightings(label),
                    templates=store.person_templates(label), crops=queries.best_crops(), others=others,
                    active="people")

    @app.get("/review", response_class=HTMLResponse)
    def review_page(request: Request) -> HTMLResponse:
        everyone = store.people()
        return page(request, "review.html", strangers=queries.strangers(), everyone=everyone,
                    named=[p for p in everyone if p.named], crops=queries.best_crops(),
                    ignored={p.label for p in everyone if p.ignored}, active="review")

    @app.get("/search", response_class=HTMLResponse)
    def search_page(request: Request, identity: str | None = None, camera: str | None = None,
                    since: str | None = None, until: str | None = None) -> HTMLResponse:
        asked = any(v for v in (identity, camera, since, until))
        error, results = None, []
        if asked:
            try:
                results = queries.sightings(**search_args(identity, camera, since, until))
            except FacetrackError as exc:
                error = str(exc)
            except LookupError:
                error = f"nobody called {identity!r} in the store"
        form = {"identity": identity or "", "camera": camera or "", "since": since or "", "until": until or ""}
        return page(request, "search.html", form=form, asked=asked, error=error, results=results,
                    cameras=queries.cameras(), labels=[p.label for p in store.people()], active="search")

    @app.get("/crops/{sighting_id}.jpg")
    def crop(sighting_id: int) -> Response:
        data = queries.crop(sighting_id)
        if data is None:
            return JSONResponse({"error": f"no crop for sighting {sighting_id}"}, status_code=404)
        return Response(data, media_type="image/jpeg")

    @app.get("/enrol", response_class=HTMLResponse)
    def enrol_page(request: Request) -> HTMLResponse:
        return page(request, "enrol.html", gallery=None if enrolment is None else enrolment.gallery,
                    people={} if enrolment is None else enrolment.people(), max_photos=MAX_PHOTOS,
                    max_mib=MAX_PHOTO_BYTES // 2**20, active="enrol")

    # --- the API -------------------------------------------------------------------------------------------------

    @app.get("/api/session")
    def api_session() -> dict[str, Any]:
        return {"csrf": csrf, "store": store.location}

    @app.get("/api/people")
    def api_people() -> dict[str, Any]:
        crops = queries.best_crops()
        return {"store": store.location, "people": [person_json(p, crops) for p in store.people()]}

    @app.get("/api/people/{label}")
    def api_person(label: str) -> dict[str, Any]:
        found = queries.resolve(label)
        if found is None:
            raise LookupError(label)
        return {**person_json(summary(found[0]), queries.best_crops()),
                "sightings": [seen_json(s) for s in queries.sightings(found[0])],
                "template_list": [template_json(t) for t in store.person_templates(found[0])]}

    @app.get("/api/sightings")
    def api_sightings(identity: str | None = None, camera: str | None = None, since: str | None = None,
                      until: str | None = None, limit: int = 500) -> dict[str, Any]:
        if not 1 <= limit <= 10000:
            raise FacetrackError("limit must be between 1 and 10000")
        args = search_args(identity, camera, since, until)
        found = queries.sightings(**args, limit=limit)
        return {"identity": None if args["identity"] is None else (queries.resolve(args["identity"]) or ("",))[0],
                "sightings": [seen_json(s) for s in found]}

    @app.get("/api/strangers")
    def api_strangers() -> dict[str, Any]:
        return {"strangers": [stranger_json(s) for s in queries.strangers()]}

    @app.get("/api/cameras")
    def api_cameras() -> dict[str, Any]:
        return {"cameras": queries.cameras()}

    @app.post("/api/strangers/{label}/name")
    def api_name(label: str, body: NameBody) -> dict[str, Any]:
        name = store.name(label, body.name.strip())
        person = summary(name)
        return {"stranger": label, "identity": name, "sightings": person.sightings, "templates": person.templates}

    @app.post("/api/strangers/{label}/merge")
    def api_merge(label: str, body: MergeBody) -> dict[str, Any]:
        moved = store.merge(body.into, label)
        return {"identity": body.into, "merged": label, "sightings_moved": moved}

    @app.post("/api/people/{label}/ignore")
    def api_ignore(label: str, body: IgnoreBody) -> dict[str, Any]:
        """Ignored: still recognised, their events say so, never alerted (`facetrack people ignore`)."""
        return {"identity": store.ignore(label, ignored=body.ignored), "ignored": body.ignored}

    @app.post("/api/people/{label}/templates/{template_id}/remove")
    def api_remove_template(label: str, template_id: int) -> dict[str, Any]:
        current = (queries.resolve(label) or (label,))[0]
        return {"identity": current, "removed": template_id, "templates": store.remove_template(label, template_id)}

    @app.post("/api/people/{label}/forget")
    def api_forget(label: str) -> dict[str, Any]:
        return {"forgotten": label, "sightings": store.forget(label)}

    @app.get("/live", response_class=HTMLResponse)
    def live_page(request: Request) -> HTMLResponse:
        return page(request, "live.html", cameras=[] if tiles is None else tiles.names, active="live")

    @app.get("/api/live")
    def api_live() -> dict[str, Any]:
        if tiles is None:
            raise FacetrackError("no live view: it runs with `facetrack watch --serve`")
        now, cameras = time.time(), []
        for name in tiles.names:
            tile = tiles.get(name)
            cameras.append({"camera": name, "tile": f"/live/{quote(name)}.jpg" if tile else None,
                            "updated": None if tile is None else iso(tile.updated),
                            "age_s": None if tile is None else round(now - tile.updated, 2)})
        return {"cameras": cameras}

    @app.get("/live/{camera}.jpg")
    def live_tile(camera: str) -> Response:
        tile = None if tiles is None else tiles.get(camera)
        if tile is None:
            return JSONResponse({"error": f"no picture from camera {camera!r} yet"}, status_code=404)
        return Response(tile.jpeg, media_type="image/jpeg")

    def _enrolment() -> Enrolment:
        if enrolment is None:
            raise FacetrackError("enrolment is off: start `facetrack serve` with --gallery G.db (and the models, "
                                 "--detector and --recognizer, as for `gallery add`)")
        return enrolment

    @app.get("/api/gallery")
    def api_gallery() -> dict[str, Any]:
        gallery = _enrolment()
        return {"gallery": str(gallery.gallery),
                "people": [{"name": n, "templates": c} for n, c in gallery.people().items()]}

    @app.post("/api/gallery")
    async def api_enrol(request: Request) -> dict[str, Any]:
        """multipart/form-data: `name`, and `photos` (one file per photo)."""
        gallery = _enrolment()
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            raise FacetrackError("send the photos as multipart/form-data with a Content-Length")
        if int(length) > MAX_PHOTOS * MAX_PHOTO_BYTES + 2**20:
            raise TooLarge(f"{int(length) / 2**20:.0f} MiB sent: at most {MAX_PHOTOS} photos of "
                           f"{MAX_PHOTO_BYTES // 2**20} MiB each")
        form = await request.form(max_files=MAX_PHOTOS + 1, max_fields=8)
        try:
            name = form.get("name")
            if not isinstance(name, str) or not name.strip():
                raise FacetrackError("no name sent: give the person's name in the `name` field")
            uploads = []
            for item in form.getlist("photos"):
                if isinstance(item, str):
                    raise FacetrackError("`photos` must be files (multipart/form-data)")
                uploads.append(Upload(item.filename or "photo", await item.read(MAX_PHOTO_BYTES + 1)))
        finally:
            await form.close()
        added, total = await run_in_threadpool(gallery.add, name.strip(), uploads)
        return {"name": name.strip(), "added": added, "templates": total, "gallery": str(gallery.gallery)}

    return app
