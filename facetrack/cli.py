"""The `facetrack` command line (typer). Each command is a thin layer over the Python API."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Who is on camera, live: detect, track and identify faces in video.")
models_app = typer.Typer(no_args_is_help=True, help="List, download and verify model packs.")
app.add_typer(models_app, name="models")
gallery_app = typer.Typer(no_args_is_help=True, help="Build and edit a gallery of enrolled people.")
app.add_typer(gallery_app, name="gallery")
unknowns_app = typer.Typer(no_args_is_help=True, help="Name or merge the strangers the store remembers.")
app.add_typer(unknowns_app, name="unknowns")
store_app = typer.Typer(no_args_is_help=True, help="Look after the identity memory (the store).")
app.add_typer(store_app, name="store")

console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (see configs/).")]
DetectorOpt = Annotated[Path | None, typer.Option("--detector", help="SCRFD detector ONNX file.")]
RecognizerOpt = Annotated[Path | None, typer.Option("--recognizer", help="ArcFace-family recognizer ONNX file.")]
PackOpt = Annotated[str | None, typer.Option("--pack", help="Model pack: buffalo_l, buffalo_s, buffalo_sc.")]
ProvidersOpt = Annotated[str | None, typer.Option(
    "--providers", help="auto, cpu, cuda, tensorrt, or a comma-separated list.")]
RequireGpuOpt = Annotated[bool, typer.Option(
    "--require-gpu", help="Refuse to run when no GPU provider starts, instead of warning and using the CPU.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what runs where.")]
DetectIntervalOpt = Annotated[str | None, typer.Option(
    "--detect-interval", help="Full-frame detection every N frames, faces followed on crops between (1: every "
                              "frame; auto: 3 for files, measured for live sources).", show_default=False)]
GalleryOpt = Annotated[Path | None, typer.Option(
    "--gallery", "-g", help="Gallery: a folder of per-person photo folders, or a .db built from one.")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Identity memory (SQLite file, or postgresql://user@host:port/db shared by several machines): "
                    "strangers keep their unknown-N across runs, sightings are recorded. Default: store.path in "
                    "the config, else $FACETRACK_HOME/store.db.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


def build_config(config: Path | None, detector: Path | None = None, recognizer: Path | None = None,
                 pack: str | None = None, providers: str | None = None, gallery: Path | None = None,
                 require_gpu: bool | None = None,
                 extra: dict[str, Any] | None = None) -> FacetrackConfig:
    """The config file with CLI flags laid over it (a flag always wins)."""
    provider_list: str | list[str] | None = None
    if providers is not None:
        provider_list = "auto" if providers == "auto" else [p.strip() for p in providers.split(",") if p.strip()]
    overrides: dict[str, Any] = {
        "models": {"detector": detector, "recognizer": recognizer, "pack": pack},
        "runtime": {"providers": provider_list, "require_gpu": require_gpu or None},  # unset flag: the file decides
        "identity": {"gallery": gallery},
    }
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    return load_config(config, overrides)


def _input_files(config: Path | None, detector: Path | None, recognizer: Path | None,
                 gallery: Path | None) -> list[tuple[str, Path]]:
    """The files a command reads besides its video (an output must never be one of them)."""
    named = (("config file", config), ("detector", detector), ("recognizer", recognizer), ("gallery", gallery))
    return [(what, path) for what, path in named if path is not None and not path.is_dir()]


def detect_interval(value: str | None) -> dict[str, Any]:
    """The `--detect-interval` flag as a config override ({} when not given)."""
    if value is None:
        return {}
    text = value.strip().lower()
    if text != "auto" and not (text.isdigit() and int(text) >= 1):
        raise FacetrackError(f"--detect-interval {value!r}: use auto or a whole number of frames, 1 or more")
    return {"detector": {"interval": "auto" if text == "auto" else int(text)}}


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)


@app.command()
def annotate(
    input: Annotated[Path, typer.Argument(help="Video file to process.", show_default=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Annotated video to write (.mp4).")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="JSON Lines events file to write.")] = None,
    gallery: GalleryOpt = None,
    config: ConfigOpt = None,
    detector: DetectorOpt = None,
    recognizer: RecognizerOpt = None,
    pack: PackOpt = None,
    providers: ProvidersOpt = None,
    require_gpu: RequireGpuOpt = False,
    timeline: Annotated[Path | None, typer.Option(
        "--timeline", help="Also draw who was on screen when (.png, .svg or .pdf).")] = None,
    store: Annotated[str | None, typer.Option(
        "--store", help="Identity memory (SQLite file, created if missing, or postgresql://user@host:port/db): "
                        "strangers keep their unknown-N across runs, and every track's sighting is recorded.")] = None,
    detect_every: DetectIntervalOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Detect, track and identify every face in a video file; write an annotated video and/or JSON Lines events.

    Identity runs when a gallery or a recognizer is given: gallery names, or stable `unknown-N` for strangers.
    With --store the strangers' IDs persist across runs and cameras, and the sightings are kept.
    """
    from facetrack.pipeline import Pipeline
    from facetrack.sinks.video import check_distinct, check_video_output, check_writable
    from facetrack.sources import FileSource

    _setup_logging(verbose)
    if output is None and events is None and timeline is None and store is None:
        raise FacetrackError("nothing to write: pass -o OUTPUT.mp4, --events EVENTS.jsonl, --timeline T.png "
                             "and/or --store S.db")
    check_distinct([("input video", input), *_input_files(config, detector, recognizer, gallery)],
                   [(flag, path) for flag, path in (("-o", output), ("--events", events), ("--timeline", timeline),
                                                    ("--store", _store_file(store))) if path is not None])
    if timeline is not None:
        check_writable(timeline, flag="--timeline")
    cfg = build_config(config, detector, recognizer, pack, providers, gallery, require_gpu,
                       extra={**detect_interval(detect_every), **({"store": {"path": store}} if store else {})}
                       or None)
    if store is None and cfg.store.path is not None:
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": None})})  # only with --store
    probe = FileSource(input)  # fail on a bad input before loading any model
    total, fps = probe.info.frame_count or None, float(probe.info.fps)
    probe.close()
    if output is not None:
        check_video_output(output)
    pipeline = Pipeline(cfg, frame_rate=fps)  # models load (and TensorRT engines build) before the progress bar
    try:
        summary = _annotate_run(cfg, input, output, events, timeline, pipeline, total)
    finally:
        pipeline.close()
    from facetrack.store.postgres import redact

    where = redact(store) if store is not None and "://" in store else store  # a URL's password is never shown
    written = ", ".join(str(p) for p in (output, events, timeline, where) if p is not None)
    embedded = f", {summary.embeddings} embeddings" if summary.embeddings else ""
    console.print(f"[bold green]done[/]: {summary.frames} frames, {summary.faces} faces, {summary.tracks} tracks"
                  f"{embedded} in {summary.seconds:.1f} s ({summary.fps:.1f} fps) → {written}")
    if verbose:
        _print_stage_table(summary.stage_seconds, summary.seconds)
    if summary.decode_error:
        raise FacetrackError(f"{input}: {summary.decode_error}; the outputs hold the frames before it",
                             exit_code=3)


def _annotate_run(cfg: FacetrackConfig, input: Path, output: Path | None, events: Path | None,
                  timeline: Path | None, pipeline: Any, total: int | None) -> Any:
    import tempfile

    from facetrack.models.runtime import describe_providers
    from facetrack.pipeline import annotate_file

    console.print(describe_providers(), highlight=False)
    columns = [TextColumn("[bold]annotate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]} fps"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("frames", total=total, fps="–")

        def on_frame(index: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            progress.update(task, completed=index + 1,
                            fps=f"{(index + 1) / elapsed:.1f}" if elapsed > 0 else "–")

        with tempfile.TemporaryDirectory() as scratch:
            # The timeline is drawn from the events; without --events they go to a scratch file.
            events_path = events if events is not None or timeline is None else Path(scratch) / "events.jsonl"
            summary = annotate_file(cfg, input, output, events_path, on_frame=on_frame, pipeline=pipeline)
            if timeline is not None:
                _draw_annotate_timeline(events_path, timeline, input)
    if pipeline.memory is not None:
        memory = pipeline.memory
        console.print(f"store {memory.store.location}: {memory.written} sightings written, {memory.matched} "
                      f"strangers recognised, {memory.minted} new", highlight=False)
    return summary


def _store_file(store: str | None) -> Path | None:
    """The file of a local store (None for none, or for a database server's URL)."""
    from facetrack.store.postgres import is_postgres_url

    return None if store is None or is_postgres_url(store) else Path(store)


def _draw_annotate_timeline(events_path: Path, timeline: Path, input: Path) -> None:
    import json

    from facetrack.timeline import draw_timeline, rows_from_events

    with events_path.open(encoding="utf-8") as handle:
        frames = [e for e in map(json.loads, handle) if e.get("type") == "frame"]
    if not frames:
        return
    steps = [b["pts"] - a["pts"] for a, b in zip(frames, frames[1:], strict=False)]
    fps = 1.0 / sorted(steps)[len(steps) // 2] if steps and sorted(steps)[len(steps) // 2] > 0 else None
    draw_timeline(rows_from_events(frames), timeline, fps=fps, title=f"who was on screen: {input.name}",
                  frame_range=(frames[0]["frame"], frames[-1]["frame"]))


@app.command()
def watch(
    sources: Annotated[list[str] | None, typer.Argument(
        help="Cameras to watch: rtsp://…, http(s)://…, a webcam (0, /dev/video0), a video file; NAME=SOURCE "
             "names one (default cam0, cam1, …); ${NAME} is read from the environment (keeps passwords out "
             "of `ps`). Without any, the config's cameras: list.",
        show_default=False)] = None,
    display: Annotated[bool, typer.Option("--display", help="Show a live window per camera (q quits).")] = False,
    events: Annotated[str | None, typer.Option(
        "--events", help="JSON Lines events file to write ('-' for stdout).")] = None,
    record: Annotated[Path | None, typer.Option(
        "--record", help="Annotated video to write (.mp4); with several cameras OUT_<camera>.mp4 each.")] = None,
    mqtt: Annotated[str | None, typer.Option(
        "--mqtt", help="Publish alerts to an MQTT broker: mqtt://host:1883 (user:pass@host also works; "
                       "${NAME} is read from the environment).")] = None,
    webhook: Annotated[str | None, typer.Option(
        "--webhook", help="POST alerts as JSON to this http(s) URL (${NAME} is read from the environment).")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds.")] = None,
    max_frames: Annotated[int | None, typer.Option(
        "--max-frames", help="Stop each camera after this many processed frames.")] = None,
    stats: Annotated[Path | None, typer.Option(
        "--stats", help="Also append every stats report to this JSON Lines file.")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Also serve the review page (as `facetrack serve`, web extra) with a live view of each "
                        "camera at /live.")] = False,
    serve_host: Annotated[str, typer.Option("--serve-host", help="Address of the page (--serve).")] = "127.0.0.1",
    serve_port: Annotated[int, typer.Option("--serve-port", help="Port of the page (--serve; 0: any).")] = 8080,
    serve_token: Annotated[str | None, typer.Option(
        "--serve-token", envvar="FACETRACK_SERVE_TOKEN",
        help="Token the page requires (--serve); needed beyond loopback.")] = None,
    store: StoreOpt = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Remember nothing: no sightings, strangers numbered "
                                                              "afresh.")] = False,
    record_segment: Annotated[float | None, typer.Option(
        "--record-segment", metavar="MINUTES",
        help="Start a new recording file every MINUTES of video: OUT-0001.mp4, OUT-0002.mp4, …")] = None,
    events_max_mb: Annotated[float | None, typer.Option(
        "--events-max-mb", metavar="MB",
        help="When the events file passes MB MiB it becomes EVENTS.1 (replacing an older one) and a new one "
             "starts.")] = None,
    detect_every: DetectIntervalOpt = None,
    gallery: GalleryOpt = None,
    config: ConfigOpt = None,
    detector: DetectorOpt = None,
    recognizer: RecognizerOpt = None,
    pack: PackOpt = None,
    providers: ProvidersOpt = None,
    require_gpu: RequireGpuOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Watch live cameras (or files): track and identify faces, write events, record, show, send alerts.

    Identity runs when a gallery or a recognizer is given; the models and the gallery are shared by all cameras.
    With identity on, strangers keep their unknown-N across runs and cameras and sightings are recorded in the
    store ($FACETRACK_HOME/store.db unless --store or --no-store says otherwise).
    """
    import json

    from facetrack.live import CameraSpec, LiveRunner, name_sources
    from facetrack.pipeline import identity_wanted
    from facetrack.sinks.alerts import Publisher
    from facetrack.stats import StatsReport, render_report
    from facetrack.urls import expand_env

    _setup_logging(verbose)
    if store is not None and no_store:
        raise FacetrackError("--store and --no-store contradict each other: pass one")
    if record_segment is not None and record_segment <= 0:
        raise FacetrackError("--record-segment must be a positive number of minutes")
    if events_max_mb is not None and events_max_mb <= 0:
        raise FacetrackError("--events-max-mb must be a positive size in MiB")
    bounds = {k: v for k, v in (("record_segment_minutes", record_segment), ("events_max_mb", events_max_mb))
              if v is not None}
    extra: dict[str, Any] = {**detect_interval(detect_every), **({"live": bounds} if bounds else {})}
    if store is not None:
        extra["store"] = {"path": store}
    cfg = build_config(config, detector, recognizer, pack, providers, gallery, require_gpu, extra=extra or None)
    if no_store:
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": None})})
    elif cfg.store.path is None and identity_wanted(cfg):
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": _default_store(create=True)})})
    if duration is not None and duration <= 0:
        raise FacetrackError("--duration must be a positive number of seconds")
    if max_frames is not None and max_frames <= 0:
        raise FacetrackError("--max-frames must be a positive number of frames")
    # ${NAME} in a URL comes from the environment: a password on the command line is visible to every user.
    named = name_sources(sources) if sources else [CameraSpec(c.name, c.url) for c in cfg.cameras]
    cameras = [CameraSpec(c.name, expand_env(c.url, f"camera {c.name}")) for c in named]
    from facetrack.sinks.video import check_distinct, check_writable
    from facetrack.sources import parse_source

    watched = [(f"video of camera {c.name}", Path(spec.target)) for c in cameras
               if (spec := parse_source(c.url)).kind == "file"]
    recordings = LiveRunner.recording_paths(record, [c.name for c in cameras])
    outputs = [*(("--record", path) for path in recordings.values()),
               *([("--events", Path(events))] if events not in (None, "-") else []),
               *([("--stats", stats)] if stats is not None else [])]
    check_distinct([*watched, *_input_files(config, detector, recognizer, gallery)], outputs)
    if stats is not None:
        check_writable(stats, "--stats")
    publishers: list[Publisher] = []
    mqtt_url = expand_env(mqtt, "--mqtt") if mqtt else cfg.mqtt.url and expand_env(cfg.mqtt.url, "mqtt.url")
    webhook_url = (expand_env(webhook, "--webhook") if webhook
                   else cfg.webhook.url and expand_env(cfg.webhook.url, "webhook.url"))
    if mqtt_url:
        from facetrack.sinks.mqtt import parse_mqtt_url

        parse_mqtt_url(mqtt_url)  # a malformed URL fails before anything starts
    if webhook_url:
        from facetrack.sinks.webhook import check_webhook_url

        check_webhook_url(webhook_url)
    if mqtt_url:
        from facetrack.sinks.mqtt import MqttPublisher

        publishers.append(MqttPublisher(mqtt_url, cfg.mqtt))
    if webhook_url:
        from facetrack.sinks.webhook import WebhookSink

        publishers.append(WebhookSink(webhook_url, cfg.webhook))
    tiles, sock = _live_tiles(cfg, cameras, serve_host, serve_port, serve_token) if serve else (None, None)
    try:
        runner = LiveRunner(cfg, cameras, events=events, record=record, display=display, publishers=publishers,
                            max_frames=max_frames, on_canvas=None if tiles is None else tiles.put)
    except BaseException:
        for publisher in publishers:
            publisher.close(timeout=0.5)
        if sock is not None:
            sock.close()
        raise
    page = None
    if tiles is not None:
        from facetrack.web.server import serve_beside

        page = serve_beside(cfg.store.path, sock, serve_host, serve_token, cfg.store, tiles,  # type: ignore[arg-type]
                            announce=lambda line: console.print(line, markup=False, highlight=False))
    labels = ", ".join(f"{c.name} ({r.source})" for c, r in zip(cameras, runner.report().cameras, strict=True))
    remembers = f"; identity memory {runner.memory.store.location}" if runner.memory is not None else ""
    console.print(f"[bold]watching[/] {labels}" + (f" for {duration:g} s" if duration else "")
                  + remembers + " — Ctrl-C stops", highlight=False)
    from facetrack.private import open_private

    stats_file = open_private(stats, "a") if stats is not None else None
    stats_failed: list[str] = []

    def write_stats(record: dict[str, Any]) -> None:
        nonlocal stats_file
        if stats_file is None:
            return
        try:
            stats_file.write(json.dumps(record) + "\n")
            stats_file.flush()
        except OSError as exc:  # a full disk: the stats file alone stops
            from facetrack.errors import write_problem

            stats_failed.append(f"cannot write stats to {stats}: {write_problem(exc.strerror, exc.errno, '--stats')}")
            logging.getLogger(__name__).error("%s; that output is turned off, the run goes on", stats_failed[0])
            try:
                stats_file.close()
            except OSError:
                pass  # what could not be written is lost
            stats_file = None

    def on_stats(report: StatsReport) -> None:
        console.print(render_report(report), highlight=False)
        write_stats(report.as_dict())

    try:
        summary = runner.run(duration=duration, on_stats=on_stats)
        write_stats({**summary.report.as_dict(), "final": True, "stop_reason": summary.stop_reason})
    finally:
        if stats_file is not None:
            try:
                stats_file.close()
            except OSError:
                pass
        if page is not None:
            page.stop()
    summary.errors += stats_failed
    console.print(render_report(summary.report, title="facetrack watch: final"), highlight=False)
    written = ", ".join(str(p) for p in [*([events] if events not in (None, "-") else []), *summary.recordings])
    if runner.memory is not None:
        memory = runner.memory
        console.print(f"store {memory.store.location}: {memory.written} sightings written, {memory.matched} "
                      f"strangers recognised, {memory.minted} new", highlight=False)
    console.print(f"[bold green]done[/] ({summary.stop_reason}): {summary.frames} frames in {summary.seconds:.1f} s"
                  + (f" → {written}" if written else ""), highlight=False)
    if summary.errors:
        raise FacetrackError("; ".join(summary.errors) + "; the outputs hold the frames before it", exit_code=3)


def _live_tiles(cfg: FacetrackConfig, cameras: list[Any], host: str, port: int, token: str | None) -> Any:
    """`watch --serve`, checked before anything starts: the tiles the runner fills, and the page's socket."""
    from facetrack.pipeline import identity_wanted
    from facetrack.web import require_extra

    require_extra()
    from facetrack.web.live import LiveTiles
    from facetrack.web.server import bind, check_bind

    check_bind(host, token)
    if cfg.store.path is None or not identity_wanted(cfg):
        raise FacetrackError("--serve shows the identity memory: turn identity on (--gallery or --recognizer) and "
                             "keep the store (drop --no-store)")
    return LiveTiles([c.name for c in cameras]), bind(host, port)


def _default_store(create: bool = False) -> Path:
    from facetrack.models.registry import facetrack_home

    home = facetrack_home()
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home / "store.db"


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
    run_server(store or cfg.store.path or _default_store(), host=host, port=port, token=token, config=cfg.store,
               enrolment=enrolment,
               announce=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))


def _print_stage_table(stage_seconds: dict[str, float], wall: float) -> None:
    table = Table(title="time per stage")
    for column in ("stage", "seconds", "share of wall time"):
        table.add_column(column)
    for stage, seconds in stage_seconds.items():
        table.add_row(stage, f"{seconds:.2f}", f"{100 * seconds / wall:.0f} %" if wall else "–")
    console.print(table)


@app.command("eval")
def eval_command(
    events: Annotated[Path, typer.Argument(help="Events file from `facetrack annotate --events`.",
                                           show_default=False)],
    truth: Annotated[Path, typer.Option("--truth", help="Ground-truth JSON Lines file (see README, Evaluation).",
                                        show_default=False)],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw truth and prediction timelines (.png).")] = None,
    iou: Annotated[float, typer.Option("--iou", help="Least IoU for a predicted box to match a true one.")] = 0.5,
    gap: Annotated[int, typer.Option("--gap", help="Frames unseen after which a person's next frames are a new "
                                                   "appearance.")] = 10,
) -> None:
    """Score an events file against hand-labelled truth: names, false names, switches, tracking."""
    import json

    from facetrack.eval import evaluate_files, report_tables, summary_line, timeline_rows
    from facetrack.sinks.video import check_distinct, check_writable
    from facetrack.timeline import draw_timeline

    if plot is not None:
        check_distinct([("events file", events), ("truth file", truth)], [("--plot", plot)])
        check_writable(plot, flag="--plot")
    report, matched = evaluate_files(events, truth, iou, gap)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}")
    if plot is not None:
        frames = report.frames
        draw_timeline(timeline_rows(report, matched), plot, fps=frames["fps"], frame_range=(frames["first"],
                      frames["last"]), title=f"truth vs facetrack: {events.name}")
    if json_out:
        out.print_json(json.dumps(report.to_dict()))
        return
    out.print(summary_line(report))
    for table in report_tables(report):
        out.print(table)


@app.command()
def bench(
    input: Annotated[Path, typer.Argument(help="Video file to measure on.", show_default=False)],
    gallery: GalleryOpt = None,
    frames: Annotated[int | None, typer.Option("--frames", help="Only the first N frames.")] = None,
    video: Annotated[bool, typer.Option("--video", help="Every run also draws and encodes an annotated video "
                                                        "(to a temporary file).")] = False,
    speed_twin: Annotated[bool | None, typer.Option(
        "--speed-twin/--no-speed-twin", help="Treat the recognizer as a random-weight speed twin (default: "
                                             "recognised by its graph name).", show_default=False)] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Make the runs in turn N times; keep the fastest of "
                                                         "each (steadier on a busy machine).")] = 1,
    interleave: Annotated[bool, typer.Option(
        "--interleave", help="The runs share one decoding pass and take turns on blocks of 10 frames: "
                             "fair ratios on a machine busy with other work.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    events_dir: Annotated[Path | None, typer.Option(
        "--events-dir", help="Write facetrack.jsonl, every_frame.jsonl and naive.jsonl here, to compare them "
                             "with `facetrack eval`.")] = None,
    detect_every: DetectIntervalOpt = None,
    config: ConfigOpt = None,
    detector: DetectorOpt = None,
    recognizer: RecognizerOpt = None,
    pack: PackOpt = None,
    providers: ProvidersOpt = None,
    require_gpu: RequireGpuOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Measure facetrack's fps (detection on a schedule, and on every frame) next to the naive baseline (embed
    every face) and the every-frame detector floor."""
    from facetrack.bench import RUN_TITLES, bench_table, run_bench
    from facetrack.sources import FileSource

    _setup_logging(verbose)
    cfg = build_config(config, detector, recognizer, pack, providers, gallery, require_gpu,
                       extra=detect_interval(detect_every))
    probe = FileSource(input)
    total = min(frames, probe.info.frame_count) if frames and probe.info.frame_count else (
        frames or probe.info.frame_count or None)
    probe.close()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def on_frame(name: str, done: int) -> None:
            if name not in tasks or (done == 1 and progress.tasks[tasks[name]].completed > 1):
                tasks[name] = progress.add_task(RUN_TITLES[name], total=total)  # a new turn, a new bar
            progress.update(tasks[name], completed=done)

        if events_dir is not None and not events_dir.is_dir():
            raise FacetrackError(f"--events-dir {events_dir} is not a folder (create it first)")
        result = run_bench(cfg, input, frames, video=video, speed_twin=speed_twin, repeat=repeat,
                           interleave=interleave, progress=on_frame, events_dir=events_dir)
    if result.speed_twin:
        console.print(f"[yellow]speed twin[/]: {result.recognizer} has random weights; identity quality is not "
                      "measured in this mode (names are meaningless), only speed")
    if json_out:
        out.print_json(result.to_json())
    else:
        out.print(bench_table(result))


@app.command()
def doctor(config: ConfigOpt = None, providers: ProvidersOpt = None, require_gpu: RequireGpuOpt = False) -> None:
    """Check what the models would run on: onnxruntime, its providers, the GPU libraries, hardware decoding."""
    from facetrack.models.runtime import diagnose
    from facetrack.sources import hardware_decoders

    cfg = build_config(config, providers=providers, require_gpu=require_gpu)
    report = diagnose(cfg.runtime)
    cuda = f", built for CUDA {report.cuda_version}" if report.cuda_version else ""
    out.print(f"onnxruntime      {report.package} {report.version}{cuda}", highlight=False)
    out.print(f"installed        {', '.join(f'{n} {v}' for n, v in report.distributions.items()) or '?'}",
              highlight=False)
    out.print(f"offered          {', '.join(report.available)}", highlight=False)
    out.print(f"auto resolves to {', '.join(report.auto)}", highlight=False)
    out.print(f"configured       {', '.join(report.asked)}", highlight=False)
    out.print(f"running          {', '.join(report.running)}  ({'GPU' if report.gpu else 'CPU only'})",
              highlight=False)
    out.print(f"TensorRT cache   {report.tensorrt_cache} ({report.engines} engines)", highlight=False)
    out.print(f"FFmpeg hw decode {', '.join(hardware_decoders()) or 'none'} (decode.hwaccel: {cfg.decode.hwaccel})",
              highlight=False)
    for problem in report.problems:
        console.print(f"[yellow]warning[/]: {problem}", highlight=False, soft_wrap=True)
    if cfg.runtime.require_gpu and not report.gpu:
        raise FacetrackError("no GPU provider starts here and --require-gpu is set: "
                             + (report.problems[0] if report.problems else "see the warnings above"))


@models_app.command("list")
def models_list(config: ConfigOpt = None) -> None:
    """Model packs, their files and whether they are in the cache."""
    from facetrack.models.registry import PACKS, cache_root, find_pack_file

    cfg = load_config(config)
    table = Table(title=f"model packs (cache: {cache_root(cfg.models)})")
    for column in ("pack", "detector", "recognizer", "installed"):
        table.add_column(column)
    for pack in PACKS.values():
        present = [find_pack_file(pack, m, cfg.models) is not None for m in pack.files]
        table.add_row(pack.name, pack.detector.name, pack.recognizer.name,
                      "yes" if all(present) else ("partly" if any(present) else "no"))
    out.print(table)
    out.print("InsightFace pretrained weights are for non-commercial research use only.")


@models_app.command("download")
def models_download(pack: Annotated[str, typer.Argument(help="Pack name.")] = "buffalo_l",
                    config: ConfigOpt = None) -> None:
    """Download a model pack into the cache and check its SHA-256."""
    from facetrack.models.registry import download_pack, get_pack

    _setup_logging(False)  # download_pack's warnings: no checksum recorded, a plain-http mirror
    cfg = load_config(config)
    target = download_pack(get_pack(pack), cfg.models)
    out.print(f"{pack} installed in {target}")


@models_app.command("verify")
def models_verify(pack: Annotated[str, typer.Argument(help="Pack name.")] = "buffalo_l",
                  config: ConfigOpt = None) -> None:
    """Check the cached files of a pack against their recorded SHA-256."""
    from facetrack.models.registry import get_pack, verify_pack

    cfg = load_config(config)
    results = verify_pack(get_pack(pack), cfg.models)
    for result in results:
        out.print(f"{result.model.name}: {result.status}" + (f" ({result.path})" if result.path else ""))
    bad = [r for r in results if r.status in ("missing", "mismatch")]
    if bad:
        raise FacetrackError(f"pack {pack}: " + ", ".join(f"{r.model.name} {r.status}" for r in bad)
                             + f" (run `facetrack models download {pack}`)")


def _enroller(cfg: FacetrackConfig):  # type: ignore[no-untyped-def]
    from facetrack.detect import FaceDetector
    from facetrack.embed import FaceEmbedder
    from facetrack.gallery import Enroller
    from facetrack.models.registry import resolve_model

    detector = FaceDetector(resolve_model("detector", cfg.models), cfg.detector, cfg.runtime)
    embedder = FaceEmbedder(resolve_model("recognizer", cfg.models), cfg.runtime, cfg.embedding.max_batch)
    return Enroller(detector, embedder)


@gallery_app.command("build")
def gallery_build(
    folder: Annotated[Path, typer.Argument(help="Folder with one sub-folder of photos per person.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Gallery file to write (.db).")],
    config: ConfigOpt = None, detector: DetectorOpt = None, recognizer: RecognizerOpt = None,
    pack: PackOpt = None, providers: ProvidersOpt = None, require_gpu: RequireGpuOpt = False,
) -> None:
    """Build a gallery from FOLDER/<person>/*.jpg (the person's name is the folder name)."""
    from facetrack.gallery import GalleryStore, check_gallery_output, enroll_folder, photos_by_person

    _setup_logging(False)
    check_gallery_output(output)  # mistakes fail before the models load
    photos_by_person(folder)
    enroller = _enroller(build_config(config, detector, recognizer, pack, providers, require_gpu=require_gpu))
    store = GalleryStore(output)
    store.build(enroll_folder(folder, enroller), enroller.embedder)
    people = store.people()
    out.print(f"{output}: {len(people)} people, {sum(people.values())} templates ({enroller.embedder.name})")


@gallery_app.command("add")
def gallery_add(
    gallery: Annotated[Path, typer.Argument(help="Gallery file (.db); created if missing.")],
    name: Annotated[str, typer.Argument(help="The person's name.")],
    photos: Annotated[list[Path], typer.Argument(help="Photos of the person, one face each.")],
    config: ConfigOpt = None, detector: DetectorOpt = None, recognizer: RecognizerOpt = None,
    pack: PackOpt = None, providers: ProvidersOpt = None, require_gpu: RequireGpuOpt = False,
) -> None:
    """Add photos of a person (all of them, or none if one is refused)."""
    from facetrack.gallery import GalleryStore, check_gallery_output, check_person_name

    check_person_name(name)  # mistakes fail before the models load
    check_gallery_output(gallery)
    enroller = _enroller(build_config(config, detector, recognizer, pack, providers, require_gpu=require_gpu))
    templates = [enroller.template(photo) for photo in photos]  # a refused photo stops before any write
    store = GalleryStore(gallery)
    store.add(name, templates, enroller.embedder)
    out.print(f"{name}: {store.people()[name]} templates in {gallery}")


@gallery_app.command("remove")
def gallery_remove(gallery: Annotated[Path, typer.Argument(help="Gallery file (.db).")],
                   name: Annotated[str, typer.Argument(help="The person to delete.")]) -> None:
    """Delete a person and every template of theirs from the file (nothing of them is left in it)."""
    from facetrack.gallery import GalleryStore

    removed = GalleryStore(gallery).remove(name)
    out.print(f"removed {name} ({removed} templates) from {gallery}")


@gallery_app.command("clear-cache")
def gallery_clear_cache(config: ConfigOpt = None) -> None:
    """Overwrite and delete the galleries cached from photo folders (rebuilt from the folders when next used)."""
    from facetrack.gallery import clear_cache
    from facetrack.models.registry import cache_root

    cache_dir = cache_root(load_config(config).models).parent / "galleries"
    removed = clear_cache(cache_dir)
    out.print(f"removed {len(removed)} cached galleries from {cache_dir}", highlight=False)


@gallery_app.command("list")
def gallery_list(gallery: Annotated[Path, typer.Argument(help="Gallery file (.db).")]) -> None:
    """The people in a gallery and their number of templates."""
    from facetrack.gallery import GalleryStore

    store = GalleryStore(gallery)
    meta = store.meta()
    table = Table(title=f"{gallery} (recognizer {meta.get('model_name', '?')})")
    table.add_column("person")
    table.add_column("templates", justify="right")
    for person, count in store.people().items():
        table.add_row(person, str(count))
    out.print(table)


@app.command()
def identify(
    images: Annotated[list[Path], typer.Argument(help="Still images.")],
    gallery: Annotated[Path, typer.Option("--gallery", "-g", help="Photo folder or .db gallery.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
    config: ConfigOpt = None, detector: DetectorOpt = None, recognizer: RecognizerOpt = None,
    pack: PackOpt = None, providers: ProvidersOpt = None, require_gpu: RequireGpuOpt = False,
) -> None:
    """Every face in still images: the gallery name or `unknown`, with similarity and box."""
    import json

    from facetrack.detect import read_photo
    from facetrack.gallery import open_gallery
    from facetrack.models.registry import cache_root
    from facetrack.types import LANDMARKS

    _setup_logging(False)
    cfg = build_config(config, detector, recognizer, pack, providers, gallery, require_gpu)
    for image_path in images:  # a bad path fails before the models load
        if not image_path.is_file():
            raise FacetrackError(f"image not found: {image_path}")
    enroller = _enroller(cfg)
    known = open_gallery(gallery, enroller, cache_root(cfg.models).parent / "galleries")
    thresholds = cfg.identity.thresholds_for(enroller.embedder.name)
    report = []
    for image_path in images:
        photo = read_photo(image_path)
        if photo is None:
            raise FacetrackError(f"cannot read image {image_path}: corrupt or not an image (use JPEG or PNG)")
        image, scale = photo
        faces = enroller.detector.detect_still(image)
        vectors = enroller.embedder.embed(image, faces.data[LANDMARKS])
        faces.xyxy *= scale  # boxes in the photo's own pixels
        names = known.identify(vectors, thresholds.threshold, thresholds.margin)
        report.append({"image": str(image_path), "faces": [
            {"identity": name or "unknown", "known": name is not None, "similarity": round(sim, 3),
             "score": round(float(score), 3), "box": [round(float(v), 1) for v in box]}
            for (name, sim), score, box in zip(names, faces.confidence, faces.xyxy, strict=True)]})
    if as_json:
        print(json.dumps({"images": report}))
        return
    table = Table(title=f"faces identified against {gallery}")
    for column in ("image", "identity", "similarity", "box"):
        table.add_column(column)
    for entry in report:
        for face in entry["faces"] or [{"identity": "(no face)", "similarity": None, "box": []}]:
            sim = "" if face["similarity"] is None else f"{face['similarity']:.2f}"
            table.add_row(Path(entry["image"]).name, face["identity"], sim, str(face["box"]))
    out.print(table)


# --- who was here: the identity memory ----------------------------------------------------------------------


def _open_store(store: str | None, config: Path | None = None):  # type: ignore[no-untyped-def]
    """An existing store: --store, else the config's store.path, else $FACETRACK_HOME/store.db."""
    from facetrack.store import open_store

    cfg = load_config(config)
    location = store or cfg.store.path or _default_store()
    return open_store(location, create=False, max_templates=cfg.store.max_templates,
                      diversity=cfg.store.template_diversity), cfg


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
def people(store: StoreOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Everyone the store remembers, named people and strangers: sightings, first and last seen, cameras."""
    import json

    db, _ = _open_store(store, config)
    try:
        everyone = db.people()
    finally:
        db.close()
    if as_json:
        print(json.dumps({"store": db.location, "people": [
            {"identity": p.label, "named": p.named, "sightings": p.sightings, "templates": p.templates,
             "first_seen": _iso(p.first_seen), "last_seen": _iso(p.last_seen), "cameras": p.cameras}
            for p in everyone]}))
        return
    table = Table(title=f"who was here ({db.location})")
    for column in ("identity", "kind", "sightings", "first seen", "last seen", "cameras", "templates"):
        table.add_column(column)
    for p in everyone:
        table.add_row(p.label, "person" if p.named else "stranger", str(p.sightings), _when(p.first_seen),
                      _when(p.last_seen), ", ".join(p.cameras), str(p.templates))
    out.print(table)


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
    db, _ = _open_store(store, config)
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

    db, _ = _open_store(store, config)
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

    db, _ = _open_store(store, config)
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

    db, _ = _open_store(store, config)
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

    db, cfg = _open_store(store, config)
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


def main() -> None:
    """Entry point: user mistakes print one line and exit non-zero; bugs keep their traceback."""
    try:
        app(standalone_mode=False)
    except FacetrackError as exc:
        console.print(f"[bold red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # Usage errors (missing argument, unknown option) know how to print themselves. They are recognised by
        # that ability rather than by class: older typer raises click's classes, newer typer its own.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
