"""`eval`, `bench`, `doctor` and `models`: scores, speed, the machine, the model packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facetrack.cli.common import (
    NO_MODEL_FLAGS,
    ConfigOpt,
    DetectIntervalOpt,
    DetectorOpt,
    GalleryOpt,
    ModelOptions,
    ProvidersOpt,
    RequireGpuOpt,
    VerboseOpt,
    app,
    build_config,
    console,
    detect_interval,
    model_options,
    models_app,
    out,
    setup_logging,
)
from facetrack.config import load_config
from facetrack.errors import FacetrackError


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
@model_options
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
    models: ModelOptions = NO_MODEL_FLAGS,
    verbose: VerboseOpt = False,
) -> None:
    """Measure facetrack's fps (detection on a schedule, and on every frame) next to the naive baseline (embed
    every face) and the every-frame detector floor."""
    from facetrack.bench import RUN_TITLES, bench_table, run_bench
    from facetrack.sources import FileSource

    setup_logging(verbose)
    cfg = models.build_config(gallery, extra=detect_interval(detect_every))
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

    setup_logging(False)  # download_pack's warnings: no checksum recorded, a plain-http mirror
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



@models_app.command("quantize")
def models_quantize(
    model: Annotated[Path, typer.Argument(help="ONNX detector (SCRFD) or recognizer (ArcFace family) to copy.",
                                          show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the int8 copy (.onnx).",
                                         show_default=False)],
    calibrate: Annotated[Path, typer.Option("--calibrate", help="Video of the footage the model will see: its "
                                                                "frames set the int8 ranges.", show_default=False)],
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames of the video to calibrate on, spread "
                                                                "over it.")] = 32,
    config: ConfigOpt = None,
    detector: DetectorOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Write an int8 copy of a detector or recognizer (onnxruntime static quantization, calibrated on your
    footage; a recognizer on the faces the detector finds in it)."""
    from facetrack.models.quantize import quantize_model
    from facetrack.sinks.video import check_distinct, check_writable

    setup_logging(verbose)
    if not calibrate.is_file():
        raise FacetrackError(f"--calibrate {calibrate} does not exist: pass a video file of your footage")
    check_distinct([("model", model), ("calibration video", calibrate)], [("-o", output)])
    check_writable(output, flag="-o")
    cfg = build_config(config, detector)
    result = quantize_model(model, output, calibrate, cfg, frames=frames, detector=detector)
    what = "frames" if result.role == "detector" else f"faces from {result.frames} frames"
    out.print(f"{result.role} {model.name} → {output} (int8, calibrated on {result.samples} {what}; "
              f"{result.size_before / 2**20:.1f} → {result.size_after / 2**20:.1f} MiB)", highlight=False)
