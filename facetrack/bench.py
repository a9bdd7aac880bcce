"""`facetrack bench`: how fast facetrack runs, next to what it saves and what it cannot beat.

Four runs over the same frames, with the same model instances (one `FaceDetector`, one `FaceEmbedder`, one
gallery), the same threaded decoder and, with `video=True`, the same drawing and encoding:

- facetrack: the product's `Pipeline.process`, frame by frame — detect (on a schedule, `detector.interval`,
  faces followed in between), track, throttled align+embed, identify, events. This is the library API; the
  `annotate` and `watch` commands run the same stages in threads (`facetrack.runner`), which the benchmark
  does not time;
- every_frame: the same pipeline with full-frame detection on every frame (`detector.interval: 1`);
- naive: detect, then align, embed and match every face in every frame (what most face tools do);
- floor: decode and full-frame detection on every frame — the reference the schedule is measured against: no
  pipeline that detects on every frame can be faster.

By default the runs are made one after the other, each timed end to end (wall time). With `interleave=True`
they share one decoding pass and take turns on blocks of 10 frames, each timed on its own work; on a machine
busy with other work this slows them alike, so their ratios hold where end-to-end runs would each meet a
different load.

Peak memory is the peak resident set size of each run: the kernel's high-water mark (`VmHWM`, reset before
each run through /proc/self/clear_refs) where Linux offers it, else the process's `getrusage` ru_maxrss (which
never goes down, so later runs include earlier peaks); the result says which.

A "speed twin" recognizer (benchmarks/make_speed_twin.py: w600k_r50's architecture with random weights) is
recognised by its graph name, or forced with `speed_twin=True`: then only speed is measured, never identity.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facetrack.bench_runs import BenchRun, EveryFrameRun, FacetrackRun, FloorRun, NaiveRun, is_speed_twin
from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.errors import FacetrackError
from facetrack.models.faces import FaceModels
from facetrack.sources import FileSource, HWAccelMode, ThreadedReader
from facetrack.stats import RunSummary
from facetrack.types import LANDMARKS

if TYPE_CHECKING:
    from rich.table import Table

RUNS = ("facetrack", "every_frame", "naive", "floor")
RUN_TITLES = {"facetrack": "facetrack", "every_frame": "facetrack, detecting every frame",
              "naive": "naive: embed every face", "floor": "detector floor"}
STAGES = {"decode": "decode", "detect": "detect", "track": "track", "embed": "align+embed", "identify": "identify",
          "annotate": "annotate", "encode": "encode"}
INTERLEAVED = "interleaved"  # the progress name of the runs taking turns
INTERLEAVE_BLOCK = 10  # frames per turn
RUN_TITLES[INTERLEAVED] = f"all four, in turns of {INTERLEAVE_BLOCK} frames"
Progress = Callable[[str, int], None]  # (run name, frames done)
# What the "facetrack" run times, said in the table and the JSON.
TIMED = ("facetrack = Pipeline.process frame by frame (the library API; annotate and watch run the same stages "
         "in threads)")
RUN_FIELDS = ("name", "frames", "seconds", "stages", "embeddings", "peak_rss_mb", "fps_all", "full_detections")


@dataclass
class BenchResult:
    input: str
    width: int
    height: int
    frames: int
    detector: str
    recognizer: str
    providers: list[str]
    gallery_people: int
    speed_twin: bool
    video: bool
    repeat: int  # each run was made this many times, in turns; the fastest of each is kept
    interleaved: bool  # the runs took turns on blocks of frames (else: one after the other, end to end)
    memory: str  # how peak memory was measured
    detect_interval: str = "auto"  # facetrack's detector.interval (every_frame: 1)
    runs: dict[str, RunSummary] = field(default_factory=dict)

    @property
    def speedup_vs_naive(self) -> float:
        naive = self.runs["naive"].fps
        return self.runs["facetrack"].fps / naive if naive else 0.0

    @property
    def floor_over_facetrack(self) -> float:
        ours = self.runs["facetrack"].fps
        return self.runs["floor"].fps / ours if ours else 0.0

    @property
    def schedule_speedup(self) -> float:
        """facetrack's fps with detection on a schedule over the same pipeline detecting every frame."""
        every = self.runs["every_frame"].fps
        return self.runs["facetrack"].fps / every if every else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs"] = {name: {**{key: getattr(run, key) for key in RUN_FIELDS}, "fps": round(run.fps, 3),
                               "embeddings_per_frame": round(run.embeddings_per_frame, 3),
                               "full_detections_per_frame": round(run.full_detections_per_frame, 3),
                               "beyond_detection_seconds": round(beyond_detection(run), 4)}
                        for name, run in self.runs.items()}
        data.update(fps=round(self.runs["facetrack"].fps, 3), naive_fps=round(self.runs["naive"].fps, 3),
                    floor_fps=round(self.runs["floor"].fps, 3), speedup_vs_naive=round(self.speedup_vs_naive, 3),
                    floor_over_facetrack=round(self.floor_over_facetrack, 3),
                    every_frame_fps=round(self.runs["every_frame"].fps, 3),
                    schedule_speedup=round(self.schedule_speedup, 3),
                    full_detections_per_frame=round(self.runs["facetrack"].full_detections_per_frame, 3),
                    timed=TIMED,
                    identity_quality_measured=False)  # a benchmark never judges names: see `facetrack eval`
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# --- memory ----------------------------------------------------------------------------------------------------

class PeakMemory:
    """Peak RSS per run: the kernel's resettable high-water mark where there is one, else getrusage."""

    def __init__(self) -> None:
        self.resettable = self._reset()
        self.method = ("VmHWM, reset before each run (/proc/self/clear_refs)" if self.resettable
                       else "getrusage ru_maxrss of the whole process (never reset: includes earlier runs)")

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def start(self) -> None:
        if self.resettable:
            self._reset()

    def peak_mb(self) -> float | None:
        if self.resettable:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


# --- the runs --------------------------------------------------------------------------------------------------

def _sequential(runner: BenchRun, path: Path, hwaccel: HWAccelMode, max_frames: int | None, memory: PeakMemory,
                progress: Progress | None) -> RunSummary:
    """One run on its own: threaded decoding → the runner per frame; wall time from the first frame asked for
    to the last output closed."""
    memory.start()
    started = time.perf_counter()
    source = FileSource(path, hwaccel=hwaccel)
    reader = ThreadedReader(source)
    try:
        for frame in itertools.islice(reader, max_frames):
            runner.step(frame)
            if progress is not None:
                progress(runner.name, runner.frames)
    finally:
        reader.close()
        runner.close()
    seconds = time.perf_counter() - started
    return RunSummary(runner.frames, seconds, {"decode": source.decode_seconds, **runner.times.spent()},
                      embeddings=runner.embeddings(), full_detections=runner.full_detections(), name=runner.name,
                      peak_rss_mb=memory.peak_mb())


def _interleaved(runners: list[BenchRun], path: Path, hwaccel: HWAccelMode, max_frames: int | None, memory: PeakMemory,
                 progress: Progress | None, block: int = INTERLEAVE_BLOCK) -> list[RunSummary]:
    """All runs on the same decoded frames, taking turns on blocks of `block` frames (who goes first rotates).

    Turns follow the load of the machine closely enough to slow them alike, while within a block each run
    follows its own previous frame as it would alone (a run just after another pays for the other's leftovers:
    evicted caches, inference threads still spinning). Each run's time is its own work; the decoding they
    share is reported but counted in no one's time.
    """
    memory.start()
    spent = dict.fromkeys((r.name for r in runners), 0.0)
    source = FileSource(path, hwaccel=hwaccel)
    frames = itertools.islice(iter(source), max_frames)
    done = 0
    try:
        for number, chunk in enumerate(iter(lambda: list(itertools.islice(frames, block)), [])):
            turn = number % len(runners)
            for runner in runners[turn:] + runners[:turn]:
                started = time.perf_counter()
                for frame in chunk:
                    runner.step(frame)
                spent[runner.name] += time.perf_counter() - started
            done += len(chunk)
            if progress is not None:
                progress(INTERLEAVED, done)
    finally:
        source.close()
        for runner in runners:
            started = time.perf_counter()
            runner.close()
            spent[runner.name] += time.perf_counter() - started
    peak = memory.peak_mb()  # of the runs together
    return [RunSummary(r.frames, spent[r.name], {"decode": source.decode_seconds, **r.times.spent()},
                       embeddings=r.embeddings(), full_detections=r.full_detections(), name=r.name, peak_rss_mb=peak)
            for r in runners]


def _keep_fastest(result: BenchResult, measured: list[RunSummary], as_one: bool) -> None:
    """Keep the fastest of each run (or, for runs that took turns, the fastest pass of them all, so
    that what is shown was measured together); every try's fps is kept in `fps_all`."""
    history = {run.name: [*(result.runs[run.name].fps_all if run.name in result.runs else []), round(run.fps, 3)]
               for run in measured}
    if as_one:
        if not result.runs or sum(r.seconds for r in measured) < sum(r.seconds for r in result.runs.values()):
            result.runs = {run.name: run for run in measured}
    else:
        for run in measured:
            if run.name not in result.runs or run.fps > result.runs[run.name].fps:
                result.runs[run.name] = run
    for name, fps_all in history.items():
        result.runs[name].fps_all = fps_all


def _warm_up(path: Path, hwaccel: HWAccelMode, detector: FaceDetector, embedder: FaceEmbedder) -> None:
    """First inferences and the first read of the file are slow; none of the runs should pay for them."""
    with path.open("rb") as handle:
        while handle.read(1 << 22):
            pass
    source = FileSource(path, hwaccel=hwaccel)
    try:
        frame = next(iter(source), None)
    finally:
        source.close()
    if frame is None:
        raise FacetrackError(f"{path}: no frame could be decoded")
    faces = detector.detect(frame.image)
    embedder.embed_crops(np.zeros((1, 112, 112, 3), np.uint8))
    embedder.embed(frame.image, faces.data[LANDMARKS][:1])


def run_bench(config: FacetrackConfig, input_path: Path, max_frames: int | None = None, video: bool = False,
              speed_twin: bool | None = None, repeat: int = 1, interleave: bool = False,
              progress: Progress | None = None, events_dir: Path | None = None) -> BenchResult:
    """facetrack (detection on a schedule and on every frame), the naive baseline and the detector floor on the
    first `max_frames` frames of `input_path`.

    With `events_dir`, the events of facetrack, of facetrack detecting every frame and of the naive baseline go
    to `facetrack.jsonl`, `every_frame.jsonl` and `naive.jsonl` there, for `facetrack eval` to score them.

    With `repeat` > 1 the runs are made in turn that many times and the fastest of each is kept (of
    interleaved passes, the fastest pass): on a machine shared with other work, the fastest is the least
    disturbed.
    """
    if max_frames is not None and max_frames < 1:
        raise FacetrackError(f"--frames must be 1 or more, got {max_frames}")
    if repeat < 1:
        raise FacetrackError(f"--repeat must be 1 or more, got {repeat}")
    probe = FileSource(input_path, hwaccel=config.decode.hwaccel)  # a bad input fails before any model loads
    info = probe.info
    probe.close()
    memory = PeakMemory()
    models = FaceModels.load(config, identity=True)
    detector, embedder, gallery = models.detector, models.embedder, models.gallery
    assert embedder is not None
    twin = is_speed_twin(embedder) if speed_twin is None else speed_twin
    _warm_up(input_path, config.decode.hwaccel, detector, embedder)
    result = BenchResult(
        input=str(input_path), width=info.width, height=info.height, frames=0, detector=detector.model_path.name,
        recognizer=embedder.model_path.name, providers=list(detector.session.get_providers()),
        gallery_people=len(gallery) if gallery is not None else 0, speed_twin=twin, video=video, repeat=repeat,
        interleaved=interleave, memory=memory.method, detect_interval=str(config.detector.interval))

    makers: list[Callable[[Path | None], BenchRun]] = [
        lambda video_dir: FacetrackRun(config, info, video_dir, detector, embedder, gallery,
                                          events_dir / "facetrack.jsonl" if events_dir else None),
        lambda video_dir: EveryFrameRun(config, info, video_dir, detector, embedder, gallery,
                                           events_dir / "every_frame.jsonl" if events_dir else None),
        lambda video_dir: NaiveRun(config, info, video_dir, detector, embedder, gallery,
                                      events_dir / "naive.jsonl" if events_dir else None),
        lambda video_dir: FloorRun(config, info, video_dir, detector),
    ]

    hwaccel = config.decode.hwaccel
    with tempfile.TemporaryDirectory(prefix="facetrack-bench-") as scratch:
        video_dir = Path(scratch) if video else None
        for _ in range(repeat):
            if interleave:
                measured = _interleaved([make(video_dir) for make in makers], input_path, hwaccel, max_frames,
                                        memory, progress)
            else:  # each run is built just before it runs, so its peak memory is its own
                measured = [_sequential(make(video_dir), input_path, hwaccel, max_frames, memory, progress)
                            for make in makers]
            _keep_fastest(result, measured, as_one=interleave)
    result.frames = result.runs["facetrack"].frames
    return result


# --- the table -------------------------------------------------------------------------------------------------

def bench_table(result: BenchResult) -> Table:
    """One table: the four runs side by side, per-stage time and share of each run's wall time."""
    from rich.table import Table

    title = (f"facetrack bench: {Path(result.input).name} ({result.width}×{result.height}), {result.frames} frames"
             f" — {result.detector} + {result.recognizer} on {', '.join(result.providers)}"
             f", gallery of {result.gallery_people}" + (", annotated video written" if result.video else "")
             + (f", the four taking turns on blocks of {INTERLEAVE_BLOCK} frames" if result.interleaved else "")
             + f", detector.interval {result.detect_interval}"
             + (f", fastest of {result.repeat}" if result.repeat > 1 else ""))
    table = Table(title=title, title_justify="left", caption_justify="left",
                  caption=(f"{TIMED}.  facetrack / naive: {result.speedup_vs_naive:.2f}× the fps;  "
                           f"floor / facetrack: {result.floor_over_facetrack:.2f}×;  "
                           f"schedule / every frame: {result.schedule_speedup:.2f}×.  "
                           + _time_note(result) + f"  Peak memory: {result.memory}"
                           + (", of the four together." if result.interleaved else ".")))
    table.add_column("")
    for name in RUNS:
        table.add_column(RUN_TITLES[name], justify="right")
    runs = [result.runs[name] for name in RUNS]
    table.add_row("[bold]fps" + ("" if result.interleaved else " (end to end)"),
                  *(f"[bold]{r.fps:.1f}" for r in runs))
    table.add_row("time" if result.interleaved else "wall time", *(f"{r.seconds:.2f} s" for r in runs))
    for stage, label in STAGES.items():
        if stage in ("annotate", "encode") and not result.video:
            continue
        table.add_row(label, *(_stage_cell(r, stage) for r in runs))
    for stage in sorted({s for r in runs for s in r.stages} - set(STAGES)):
        table.add_row(stage, *(_stage_cell(r, stage) for r in runs))
    table.add_row("beyond decode+detect", *(_beyond_cell(r) for r in runs))
    table.add_row("full detections per frame", *(f"{r.full_detections_per_frame:.2f}" for r in runs))
    table.add_row("embeddings per frame", *(f"{r.embeddings_per_frame:.2f}" if r.name != "floor" else "–"
                                            for r in runs))
    table.add_row("peak memory", *(f"{r.peak_rss_mb:.0f} MiB" if r.peak_rss_mb is not None else "–" for r in runs))
    return table


def _time_note(result: BenchResult) -> str:
    if result.interleaved:
        return ("Each run's time is its own work on its frames; the decoding the runs share is not counted in "
                "it (its share is of that time too).")
    return ("Stage shares are of each run's wall time; decoding runs in its own thread, so they can add up to "
            "more than 100 %.")


def beyond_detection(run: RunSummary) -> float:
    """Seconds of work besides decoding and detection: what a run adds to the detector floor."""
    return sum(seconds for stage, seconds in run.stages.items() if stage not in ("decode", "detect"))


def _beyond_cell(run: RunSummary) -> str:
    return f"{1000 * beyond_detection(run) / max(run.frames, 1):.1f} ms/frame"


def _stage_cell(run: RunSummary, stage: str) -> str:
    if stage not in run.stages:
        return "–"
    seconds = run.stages[stage]
    share = 100 * seconds / run.seconds if run.seconds else 0.0
    return f"{seconds:.2f} s · {share:.0f} %"
