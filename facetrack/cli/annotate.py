"""`facetrack annotate`: one video file in, an annotated video, events and a timeline out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from facetrack.cli.common import (
    NO_MODEL_FLAGS,
    BlurOpt,
    DetectIntervalOpt,
    GalleryOpt,
    ModelOptions,
    StoreIfAskedOpt,
    VerboseOpt,
    app,
    blur_mode,
    build_config,
    console,
    detect_interval,
    input_files,
    model_options,
    print_stage_table,
    setup_logging,
    store_file,
)
from facetrack.config import FacetrackConfig
from facetrack.errors import FacetrackError


@app.command()
@model_options
def annotate(
    input: Annotated[Path, typer.Argument(help="Video file to process.", show_default=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Annotated video to write (.mp4).")] = None,
    events: Annotated[Path | None, typer.Option("--events", help="JSON Lines events file to write.")] = None,
    gallery: GalleryOpt = None,
    models: ModelOptions = NO_MODEL_FLAGS,
    timeline: Annotated[Path | None, typer.Option(
        "--timeline", help="Also draw who was on screen when (.png, .svg or .pdf).")] = None,
    store: StoreIfAskedOpt = None,
    detect_every: DetectIntervalOpt = None,
    blur: BlurOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Detect, track and identify every face in a video file; write an annotated video and/or JSON Lines events.

    Identity runs when a gallery or a recognizer is given: gallery names, or stable `unknown-N` for strangers.
    With --store the strangers' IDs persist across runs and cameras, and the sightings are kept.
    """
    config, detector, recognizer, pack, providers, require_gpu = models.values()
    from facetrack.models.faces import FaceModels
    from facetrack.sinks.video import check_distinct, check_video_output, check_writable
    from facetrack.sources import FileSource

    setup_logging(verbose)
    if output is None and events is None and timeline is None and store is None:
        raise FacetrackError("nothing to write: pass -o OUTPUT.mp4, --events EVENTS.jsonl, --timeline T.png "
                             "and/or --store S.db")
    check_distinct([("input video", input), *input_files(config, detector, recognizer, gallery)],
                   [(flag, path) for flag, path in (("-o", output), ("--events", events), ("--timeline", timeline),
                                                    ("--store", store_file(store))) if path is not None])
    if timeline is not None:
        check_writable(timeline, flag="--timeline")
    blurred = blur_mode(blur)
    if blurred and blurred["annotation"]["blur"] != "none" and output is None:
        raise FacetrackError("--blur pixelates faces in the annotated video: add -o OUTPUT.mp4 (the events and the "
                             "store are not blurred)")
    cfg = build_config(config, detector, recognizer, pack, providers, gallery, require_gpu,
                       extra={**detect_interval(detect_every), **blurred,
                              **({"store": {"path": store}} if store else {})} or None)
    if store is None and cfg.store.path is not None:
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": None})})  # only with --store
    probe = FileSource(input)  # fail on a bad input before loading any model
    total = probe.info.frame_count or None
    probe.close()
    if output is not None:
        check_video_output(output)
    face_models = FaceModels.load(cfg)  # models load (and TensorRT engines build) before the progress bar
    summary = _annotate_run(cfg, input, output, events, timeline, face_models, total)
    if summary.stop_reason in ("SIGINT", "SIGTERM"):
        raise KeyboardInterrupt  # the outputs are finished, and hold the frames before it
    from facetrack.store.postgres import redact

    where = redact(store) if store is not None and "://" in store else store  # a URL's password is never shown
    written = ", ".join(str(p) for p in (output, events, timeline, where) if p is not None)
    embedded = f", {summary.embeddings} embeddings" if summary.embeddings else ""
    console.print(f"[bold green]done[/]: {summary.frames} frames, {summary.faces} faces, {summary.tracks} tracks"
                  f"{embedded} in {summary.seconds:.1f} s ({summary.fps:.1f} fps) → {written}")
    if verbose:
        print_stage_table(summary.stages, summary.seconds)
    if summary.decode_error:
        raise FacetrackError(f"{input}: {summary.decode_error}; the outputs hold the frames before it",
                             exit_code=3)


def _annotate_run(cfg: FacetrackConfig, input: Path, output: Path | None, events: Path | None,
                  timeline: Path | None, models: Any, total: int | None) -> Any:
    import tempfile

    from facetrack.models.runtime import describe_providers
    from facetrack.runner import file_runner

    columns = [TextColumn("[bold]annotate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]} fps"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    progress = Progress(*columns, console=console, transient=False)

    def on_frame(index: int) -> None:
        elapsed = progress.tasks[0].elapsed or 0.0
        progress.update(task, completed=index + 1, fps=f"{(index + 1) / elapsed:.1f}" if elapsed > 0 else "–")

    with tempfile.TemporaryDirectory() as scratch:
        # The timeline is drawn from the events; without --events they go to a scratch file.
        events_path = events if events is not None or timeline is None else Path(scratch) / "events.jsonl"
        # The identity memory opens here: a store of another recognizer is refused before anything is printed.
        runner = file_runner(cfg, input, output, events_path, models=models, on_frame=on_frame)
        console.print(describe_providers(), highlight=False)
        with progress:
            task = progress.add_task("frames", total=total, fps="–")
            summary = runner.run()
            if timeline is not None:
                _draw_annotate_timeline(events_path, timeline, input)
    if runner.memory is not None:
        memory = runner.memory
        console.print(f"store {memory.store.location}: {memory.written} sightings written, {memory.matched} "
                      f"strangers recognised, {memory.minted} new", highlight=False)
    return summary



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

