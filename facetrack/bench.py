"""`facetrack bench`: how fast facetrack runs, next to what it saves and what it cannot beat.

Three runs over the same frames, with the same model instances (one `FaceDetector`, one `FaceEmbedder`, one
gallery), the same threaded decoder and, with `video=True`, the same drawing and encoding:

- facetrack: the product's `Pipeline` — detect, track, throttled align+embed, identify, events;
- naive: detect, then align, embed and match every face in every frame (what most face tools do);
- floor: decode and detect only — no identity pipeline can be faster than its detector.

Peak memory is the peak resident set size of each run: the kernel's high-water mark (`VmHWM`, reset before
each run through /proc/self/clear_refs) where Linux offers it, else the process's `getrusage` ru_maxrss (which
never goes down, so later runs include earlier peaks); the result says which.

A "speed twin" recognizer (benchmarks/make_speed_twin.py: w600k_r50's architecture with random weights) is
recognised by its graph name, or forced with `speed_twin=True`: then only speed is measured, never identity.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.detect import LANDMARKS, FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.errors import FacetrackError
from facetrack.gallery import Gallery
from facetrack.models.registry import resolve_model
from facetrack.pipeline import Pipeline, StageTimes, load_identity_models
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import EventWriter
from facetrack.sinks.video import VideoWriter
from facetrack.sources import FileSource, Frame, ThreadedReader

if TYPE_CHECKING:
    from rich.table import Table

RUNS = ("facetrack", "naive", "floor")
RUN_TITLES = {"facetrack": "facetrack", "naive": "naive: embed every face", "floor": "detector floor"}
STAGES = {"decode": "decode", "detect": "detect", "track": "track", "embed": "align+embed", "identify": "identify",
          "annotate": "annotate", "encode": "encode"}
SPEED_TWIN_MARK = "speed_twin"  # in the graph name written by benchmarks/make_speed_twin.py
Progress = Callable[[str, int], None]  # (run name, frames done)


@dataclass
class RunResult:
    name: str
    frames: int
    seconds: float  # wall time, from the first frame asked for to the last output closed
    stages: dict[str, float]  # seconds per stage (decode runs in its own thread, overlapping the others)
    embeddings: int
    peak_rss_mb: float | None
    fps_all: list[float] = field(default_factory=list)  # every repeat's fps; this result is the fastest

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def embeddings_per_frame(self) -> float:
        return self.embeddings / self.frames if self.frames else 0.0


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
    repeat: int  # each run was made this many times, interleaved; the fastest of each is kept
    memory: str  # how peak memory was measured
    runs: dict[str, RunResult] = field(default_factory=dict)

    @property
    def speedup_vs_naive(self) -> float:
        naive = self.runs["naive"].fps
        return self.runs["facetrack"].fps / naive if naive else 0.0

    @property
    def floor_over_facetrack(self) -> float:
        ours = self.runs["facetrack"].fps
        return self.runs["floor"].fps / ours if ours else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs"] = {name: {**asdict(run), "fps": round(run.fps, 3),
                               "embeddings_per_frame": round(run.embeddings_per_frame, 3)}
                        for name, run in self.runs.items()}
        data.update(fps=round(self.runs["facetrack"].fps, 3), naive_fps=round(self.runs["naive"].fps, 3),
                    floor_fps=round(self.runs["floor"].fps, 3), speedup_vs_naive=round(self.speedup_vs_naive, 3),
                    floor_over_facetrack=round(self.floor_over_facetrack, 3),
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

def is_speed_twin(embedder: FaceEmbedder) -> bool:
    return SPEED_TWIN_MARK in (embedder.session.get_modelmeta().graph_name or "")


def _with_ids(detections: sv.Detections) -> sv.Detections:
    """The runs without a tracker draw with per-frame numbers in place of track IDs."""
    if detections.tracker_id is None:
        detections.tracker_id = np.arange(len(detections))
    return detections


def _run(name: str, path: Path, max_frames: int | None, work: Callable[[Frame], sv.Detections], times: StageTimes,
         config: FacetrackConfig, video_dir: Path | None, memory: PeakMemory, embeddings: Callable[[], int],
         progress: Progress | None) -> RunResult:
    """Decode (threaded) → `work` per frame → optionally draw and encode; timed from the first frame."""
    memory.start()
    source = FileSource(path)
    annotator = FrameAnnotator(config.annotation) if video_dir is not None else None
    writer = (VideoWriter(video_dir / f"{name}.mp4", source.info, config.annotation.codec, config.annotation.crf)
              if video_dir is not None else None)
    frames = 0
    started = time.perf_counter()
    reader = ThreadedReader(source)
    try:
        for frame in reader:
            if max_frames is not None and frames >= max_frames:
                break
            detections = work(frame)
            if writer is not None and annotator is not None:
                with times.measure("annotate"):
                    canvas = annotator.annotate(frame.image, _with_ids(detections))
                with times.measure("encode"):
                    writer.write(canvas, frame.pts)
            frames += 1
            if progress is not None:
                progress(name, frames)
    finally:
        reader.close()
        if writer is not None:
            with times.measure("encode"):
                writer.close()
    seconds = time.perf_counter() - started
    stages = {"decode": source.decode_seconds, **times.seconds}
    return RunResult(name, frames, seconds, stages, embeddings(), memory.peak_mb())


def _warm_up(path: Path, detector: FaceDetector, embedder: FaceEmbedder) -> None:
    """First inferences and the first read of the file are slow; none of the runs should pay for them."""
    with path.open("rb") as handle:
        while handle.read(1 << 22):
            pass
    source = FileSource(path)
    try:
        frame = next(iter(source), None)
    finally:
        source.close()
    if frame is None:
        raise FacetrackError(f"{path}: no frame could be decoded")
    faces = detector.detect(frame.image)
    crops = np.zeros((1, 112, 112, 3), np.uint8)
    embedder.embed_crops(crops)
    embedder.embed(frame.image, faces.data[LANDMARKS][:1])


def run_bench(config: FacetrackConfig, input_path: Path, max_frames: int | None = None, video: bool = False,
              speed_twin: bool | None = None, repeat: int = 1, progress: Progress | None = None) -> BenchResult:
    """facetrack, the naive baseline and the detector floor on the first `max_frames` frames of `input_path`.

    With `repeat` > 1 the three runs are made in turn that many times and the fastest of each is kept: on a
    machine shared with other work, the fastest run is the one least disturbed, and turns spread the
    disturbance evenly over the three.
    """
    if max_frames is not None and max_frames < 1:
        raise FacetrackError(f"--frames must be 1 or more, got {max_frames}")
    if repeat < 1:
        raise FacetrackError(f"--repeat must be 1 or more, got {repeat}")
    probe = FileSource(input_path)  # a bad input fails before any model loads
    info = probe.info
    probe.close()
    memory = PeakMemory()
    detector = FaceDetector(resolve_model("detector", config.models), config.detector, config.runtime)
    embedder, gallery = load_identity_models(config, detector)
    twin = is_speed_twin(embedder) if speed_twin is None else speed_twin
    _warm_up(input_path, detector, embedder)

    result = BenchResult(
        input=str(input_path), width=info.width, height=info.height, frames=0, detector=detector.model_path.name,
        recognizer=embedder.model_path.name, providers=list(detector.session.get_providers()),
        gallery_people=len(gallery) if gallery is not None else 0, speed_twin=twin, video=video, repeat=repeat,
        memory=memory.method)
    runs: dict[str, Callable[[Path | None], RunResult]] = {
        "facetrack": lambda video_dir: _facetrack_run(config, input_path, float(info.fps), detector, embedder,
                                                      gallery, max_frames, video_dir, memory, progress),
        "naive": lambda video_dir: _naive_run(config, input_path, detector, embedder, gallery, max_frames,
                                              video_dir, memory, progress),
        "floor": lambda video_dir: _floor_run(config, input_path, detector, max_frames, video_dir, memory,
                                              progress),
    }
    with tempfile.TemporaryDirectory(prefix="facetrack-bench-") as scratch:
        video_dir = Path(scratch) if video else None
        for _ in range(repeat):
            for name, run in runs.items():
                measured = run(video_dir)
                best = result.runs.get(name)
                measured.fps_all = [*(best.fps_all if best else []), round(measured.fps, 3)]
                if best is None or measured.fps > best.fps:
                    result.runs[name] = measured
                else:
                    best.fps_all = measured.fps_all
    result.frames = result.runs["facetrack"].frames
    return result


def _facetrack_run(config: FacetrackConfig, path: Path, frame_rate: float, detector: FaceDetector,
                   embedder: FaceEmbedder, gallery: Gallery | None, max_frames: int | None, video_dir: Path | None,
                   memory: PeakMemory, progress: Progress | None) -> RunResult:
    pipeline = Pipeline(config, detector=detector, frame_rate=frame_rate, embedder=embedder, gallery=gallery)
    events = EventWriter(os.devnull)  # events are made and serialised as in the product, then dropped

    def work(frame: Frame) -> sv.Detections:
        result = pipeline.process(frame)
        events.write(result.events)
        return result.detections

    try:
        return _run("facetrack", path, max_frames, work, pipeline.times, config, video_dir, memory,
                    lambda: pipeline.embeddings, progress)
    finally:
        events.close()


def _naive_run(config: FacetrackConfig, path: Path, detector: FaceDetector, embedder: FaceEmbedder,
               gallery: Gallery | None, max_frames: int | None, video_dir: Path | None, memory: PeakMemory,
               progress: Progress | None) -> RunResult:
    times = StageTimes()
    count = [0]

    def work(frame: Frame) -> sv.Detections:
        with times.measure("detect"):
            detections = detector.detect(frame.image)
        with times.measure("embed"):
            vectors = embedder.embed(frame.image, detections.data[LANDMARKS])
        with times.measure("identify"):
            if gallery is not None and len(gallery) and len(vectors):
                best = gallery.similarities(vectors).argmax(axis=1)  # nearest person, face by face
                detections.data["identity"] = np.array([gallery.names[i] for i in best], dtype=object)
        count[0] += len(vectors)
        return detections

    return _run("naive", path, max_frames, work, times, config, video_dir, memory, lambda: count[0], progress)


def _floor_run(config: FacetrackConfig, path: Path, detector: FaceDetector, max_frames: int | None,
               video_dir: Path | None, memory: PeakMemory, progress: Progress | None) -> RunResult:
    times = StageTimes()

    def work(frame: Frame) -> sv.Detections:
        with times.measure("detect"):
            return detector.detect(frame.image)

    return _run("floor", path, max_frames, work, times, config, video_dir, memory, lambda: 0, progress)


# --- the table -------------------------------------------------------------------------------------------------

def bench_table(result: BenchResult) -> Table:
    """One table: the three runs side by side, per-stage time and share of each run's wall time."""
    from rich.table import Table

    title = (f"facetrack bench: {Path(result.input).name} ({result.width}×{result.height}), {result.frames} frames"
             f" — {result.detector} + {result.recognizer} on {', '.join(result.providers)}"
             f", gallery of {result.gallery_people}" + (", annotated video written" if result.video else "")
             + (f", fastest of {result.repeat} turns" if result.repeat > 1 else ""))
    table = Table(title=title, title_justify="left", caption_justify="left",
                  caption=(f"facetrack / naive: {result.speedup_vs_naive:.2f}× the fps;  "
                           f"floor / facetrack: {result.floor_over_facetrack:.2f}×.  "
                           "Stage shares are of each run's wall time; decoding runs in its own thread, so they "
                           f"can add up to more than 100 %.  Peak memory: {result.memory}."))
    table.add_column("")
    for name in RUNS:
        table.add_column(RUN_TITLES[name], justify="right")
    runs = [result.runs[name] for name in RUNS]
    table.add_row("[bold]fps (end to end)", *(f"[bold]{r.fps:.1f}" for r in runs))
    table.add_row("wall time", *(f"{r.seconds:.2f} s" for r in runs))
    for stage, label in STAGES.items():
        if stage in ("annotate", "encode") and not result.video:
            continue
        table.add_row(label, *(_stage_cell(r, stage) for r in runs))
    for stage in sorted({s for r in runs for s in r.stages} - set(STAGES)):
        table.add_row(stage, *(_stage_cell(r, stage) for r in runs))
    table.add_row("embeddings per frame", *(f"{r.embeddings_per_frame:.2f}" if r.name != "floor" else "–"
                                            for r in runs))
    table.add_row("peak memory", *(f"{r.peak_rss_mb:.0f} MiB" if r.peak_rss_mb is not None else "–" for r in runs))
    return table


def _stage_cell(run: RunResult, stage: str) -> str:
    if stage not in run.stages:
        return "–"
    seconds = run.stages[stage]
    share = 100 * seconds / run.seconds if run.seconds else 0.0
    return f"{seconds:.2f} s · {share:.0f} %"
