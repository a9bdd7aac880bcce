"""The `facetrack` command line (typer). Each command is a thin layer over the Python API."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Who is on camera, live: detect, track and identify faces in video.")
models_app = typer.Typer(no_args_is_help=True, help="List, download and verify model packs.")
app.add_typer(models_app, name="models")

console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (see configs/).")]
DetectorOpt = Annotated[Path | None, typer.Option("--detector", help="SCRFD detector ONNX file.")]
RecognizerOpt = Annotated[Path | None, typer.Option("--recognizer", help="ArcFace-family recognizer ONNX file.")]
PackOpt = Annotated[str | None, typer.Option("--pack", help="Model pack: buffalo_l, buffalo_s, buffalo_sc.")]
ProvidersOpt = Annotated[str | None, typer.Option(
    "--providers", help="auto, cpu, cuda, tensorrt, or a comma-separated list.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what runs where.")]
GalleryOpt = Annotated[Path | None, typer.Option(
    "--gallery", "-g", help="Gallery: a folder of per-person photo folders, or a .db built from one.")]


def build_config(config: Path | None, detector: Path | None = None, recognizer: Path | None = None,
                 pack: str | None = None, providers: str | None = None, gallery: Path | None = None,
                 extra: dict[str, Any] | None = None) -> FacetrackConfig:
    """The config file with CLI flags laid over it (a flag always wins)."""
    provider_list: str | list[str] | None = None
    if providers is not None:
        provider_list = "auto" if providers == "auto" else [p.strip() for p in providers.split(",") if p.strip()]
    overrides: dict[str, Any] = {
        "models": {"detector": detector, "recognizer": recognizer, "pack": pack},
        "runtime": {"providers": provider_list},
        "identity": {"gallery": gallery},
    }
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    return load_config(config, overrides)


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
    timeline: Annotated[Path | None, typer.Option(
        "--timeline", help="Also draw who was on screen when (.png, .svg or .pdf).")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Detect, track and identify every face in a video file; write an annotated video and/or JSON Lines events.

    Identity runs when a gallery or a recognizer is given: gallery names, or stable `unknown-N` for strangers.
    """
    import tempfile

    from facetrack.pipeline import annotate_file
    from facetrack.sinks.video import check_writable
    from facetrack.sources import FileSource

    _setup_logging(verbose)
    if output is None and events is None and timeline is None:
        raise FacetrackError("nothing to write: pass -o OUTPUT.mp4, --events EVENTS.jsonl and/or --timeline T.png")
    if timeline is not None:
        check_writable(timeline, flag="--timeline")
    cfg = build_config(config, detector, recognizer, pack, providers, gallery)
    probe = FileSource(input)  # fail on a bad input before loading any model
    total = probe.info.frame_count or None
    probe.close()
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
            summary = annotate_file(cfg, input, output, events_path, on_frame=on_frame)
            if timeline is not None:
                _draw_annotate_timeline(events_path, timeline, input)
    written = ", ".join(str(p) for p in (output, events, timeline) if p is not None)
    embedded = f", {summary.embeddings} embeddings" if summary.embeddings else ""
    console.print(f"[bold green]done[/]: {summary.frames} frames, {summary.faces} faces, {summary.tracks} tracks"
                  f"{embedded} in {summary.seconds:.1f} s ({summary.fps:.1f} fps) → {written}")
    if verbose:
        _print_stage_table(summary.stage_seconds, summary.seconds)
    if summary.decode_error:
        raise FacetrackError(f"{input}: {summary.decode_error}; the outputs hold the frames before it",
                             exit_code=3)


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
    from facetrack.sinks.video import check_writable
    from facetrack.timeline import draw_timeline

    if plot is not None:
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
    repeat: Annotated[int, typer.Option("--repeat", help="Make the three runs in turn N times; keep the fastest of "
                                                         "each (steadier on a busy machine).")] = 1,
    interleave: Annotated[bool, typer.Option(
        "--interleave", help="The three runs share one decoding pass and take turns on blocks of 10 frames: "
                             "fair ratios on a machine busy with other work.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table.")] = False,
    config: ConfigOpt = None,
    detector: DetectorOpt = None,
    recognizer: RecognizerOpt = None,
    pack: PackOpt = None,
    providers: ProvidersOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Measure facetrack's fps next to the naive baseline (embed every face) and the detector floor."""
    from facetrack.bench import RUN_TITLES, bench_table, run_bench
    from facetrack.sources import FileSource

    _setup_logging(verbose)
    cfg = build_config(config, detector, recognizer, pack, providers, gallery)
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

        result = run_bench(cfg, input, frames, video=video, speed_twin=speed_twin, repeat=repeat,
                           interleave=interleave, progress=on_frame)
    if result.speed_twin:
        console.print(f"[yellow]speed twin[/]: {result.recognizer} has random weights; identity quality is not "
                      "measured in this mode (names are meaningless), only speed")
    if json_out:
        out.print_json(result.to_json())
    else:
        out.print(bench_table(result))


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

    cfg = load_config(config)
    model_pack = get_pack(pack)
    if model_pack.archive_sha256 is None:
        console.print(f"[yellow]warning[/]: no published checksum is recorded for {pack}; it is not verified")
    target = download_pack(model_pack, cfg.models)
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


def main() -> None:
    """Entry point: user mistakes print one line and exit non-zero; bugs keep their traceback."""
    try:
        app(standalone_mode=False)
    except FacetrackError as exc:
        console.print(f"[bold red]error[/]: {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):  # usage errors: click's own one-liner
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
