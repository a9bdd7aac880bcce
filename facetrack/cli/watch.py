"""`facetrack watch`: cameras (or files) watched live, with alerts, recordings and live tiles."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrack.cli.common import (
    NO_MODEL_FLAGS,
    BlurOpt,
    DetectIntervalOpt,
    GalleryOpt,
    ModelOptions,
    StoreOpt,
    VerboseOpt,
    app,
    blur_mode,
    build_config,
    console,
    default_store,
    detect_interval,
    input_files,
    model_options,
    setup_logging,
)
from facetrack.config import FacetrackConfig
from facetrack.errors import FacetrackError


@app.command()
@model_options
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
    blur: BlurOpt = None,
    gallery: GalleryOpt = None,
    models: ModelOptions = NO_MODEL_FLAGS,
    verbose: VerboseOpt = False,
) -> None:
    """Watch live cameras (or files): track and identify faces, write events, record, show, send alerts.

    Identity runs when a gallery or a recognizer is given; the models and the gallery are shared by all cameras.
    With identity on, strangers keep their unknown-N across runs and cameras and sightings are recorded in the
    store ($FACETRACK_HOME/store.db unless --store or --no-store says otherwise).
    """
    config, detector, recognizer, pack, providers, require_gpu = models.values()
    import json

    from facetrack.live import CameraSpec, name_sources
    from facetrack.models.faces import identity_wanted
    from facetrack.sinks.alerts import Publisher
    from facetrack.stats import StatsReport, render_report
    from facetrack.urls import expand_env

    setup_logging(verbose)
    if store is not None and no_store:
        raise FacetrackError("--store and --no-store contradict each other: pass one")
    if record_segment is not None and record_segment <= 0:
        raise FacetrackError("--record-segment must be a positive number of minutes")
    if events_max_mb is not None and events_max_mb <= 0:
        raise FacetrackError("--events-max-mb must be a positive size in MiB")
    bounds = {k: v for k, v in (("record_segment_minutes", record_segment), ("events_max_mb", events_max_mb))
              if v is not None}
    blurred = blur_mode(blur)
    if blurred and blurred["annotation"]["blur"] != "none" and record is None and not display and not serve:
        raise FacetrackError("--blur pixelates faces in what is drawn: add --record OUT.mp4, --display or --serve "
                             "(the events and the store are not blurred)")
    extra: dict[str, Any] = {**detect_interval(detect_every), **blurred, **({"live": bounds} if bounds else {})}
    if store is not None:
        extra["store"] = {"path": store}
    cfg = build_config(config, detector, recognizer, pack, providers, gallery, require_gpu, extra=extra or None)
    if no_store:
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": None})})
    elif cfg.store.path is None and identity_wanted(cfg):
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": default_store(create=True)})})
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
    from facetrack.sinks.recorder import recording_paths

    recordings = recording_paths(record, [c.name for c in cameras])
    outputs = [*(("--record", path) for path in recordings.values()),
               *([("--events", Path(events))] if events not in (None, "-") else []),
               *([("--stats", stats)] if stats is not None else [])]
    check_distinct([*watched, *input_files(config, detector, recognizer, gallery)], outputs)
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
        from facetrack.runner import Runner

        runner = Runner(cfg, cameras, events=events, record=record, display=display, publishers=publishers,
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
    from facetrack.models.faces import identity_wanted
    from facetrack.web import require_extra

    require_extra()
    from facetrack.web.live import LiveTiles
    from facetrack.web.server import bind, check_bind

    check_bind(host, token, ("--serve-host", "--serve-token"))
    if cfg.store.path is None or not identity_wanted(cfg):
        raise FacetrackError("--serve shows the identity memory: turn identity on (--gallery or --recognizer) and "
                             "keep the store (drop --no-store)")
    return LiveTiles([c.name for c in cameras]), bind(host, port, ("--serve-host", "--serve-port"))

