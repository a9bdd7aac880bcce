"""The pipeline: frames in → tracked faces (`sv.Detections`) and events out.

`Pipeline` is the Python API under every command: feed it `Frame`s, read back a `FrameResult` per frame.
`annotate_file` wires a file source, the pipeline and the sinks together for `facetrack annotate`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.models.registry import resolve_model
from facetrack.scene import CutDetector
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import Event, EventWriter, frame_event, track_event
from facetrack.sinks.video import VideoWriter, check_writable
from facetrack.sources import FileSource, Frame, ThreadedReader
from facetrack.track import FaceTracker


class StageTimes:
    """Wall time spent per stage, summed over frames."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass
class FrameResult:
    frame: Frame
    detections: sv.Detections  # tracked faces: tracker_id, data["landmarks"] (+ identity fields when enabled)
    events: list[Event] = field(default_factory=list)


class Pipeline:
    """Detection → tracking for one video source, frame by frame."""

    def __init__(self, config: FacetrackConfig, detector: FaceDetector | None = None,
                 frame_rate: float = 30.0) -> None:
        self.config = config
        self.detector = detector or FaceDetector(resolve_model("detector", config.models), config.detector,
                                                 config.runtime)
        self.tracker = FaceTracker(config.tracker, frame_rate=frame_rate)
        self.cuts = CutDetector(config.tracker.cut_threshold) if config.tracker.cut_threshold > 0 else None
        self.times = StageTimes()
        self.frames = 0
        self.faces = 0
        self.tracks_seen: set[int] = set()

    def process(self, frame: Frame) -> FrameResult:
        with self.times.measure("detect"):
            detections = self.detector.detect(frame.image)
        events: list[Event] = []
        with self.times.measure("track"):
            if self.cuts is not None and self.cuts.is_cut(frame.image):
                events += [track_event("track_end", t, frame.index, frame.pts) for t in self.tracker.finish()]
            update = self.tracker.update(detections, timestamp=frame.pts)
        events += [track_event("track_start", t, frame.index, frame.pts) for t in update.started]
        events.append(frame_event(frame.index, frame.pts, update.detections))
        events += [track_event("track_end", t, frame.index, frame.pts) for t in update.ended]
        self.frames += 1
        self.faces += len(update.detections)
        self.tracks_seen.update(update.started)
        return FrameResult(frame, update.detections, events)

    def finish(self, last_index: int, last_pts: float) -> list[Event]:
        """Events that close the stream: every live track ends."""
        return [track_event("track_end", t, last_index, last_pts) for t in self.tracker.finish()]


@dataclass
class RunSummary:
    frames: int
    faces: int
    tracks: int
    seconds: float
    stage_seconds: dict[str, float]
    decode_error: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def annotate_file(
    config: FacetrackConfig,
    input_path: Path,
    output_path: Path | None,
    events_path: Path | None = None,
    on_frame: Callable[[int], None] | None = None,
    pipeline: Pipeline | None = None,
) -> RunSummary:
    """Run the pipeline over every frame of `input_path`, writing the annotated video and/or events."""
    if output_path is not None:
        check_writable(output_path)
    source = FileSource(input_path)
    reader: ThreadedReader | None = None
    video: VideoWriter | None = None
    events: EventWriter | None = None
    started = time.perf_counter()
    try:
        pipeline = pipeline or Pipeline(config, frame_rate=float(source.info.fps))
        annotator = FrameAnnotator(config.annotation)
        events = EventWriter(events_path) if events_path is not None else None
        if output_path is not None:
            video = VideoWriter(output_path, source.info, config.annotation.codec, config.annotation.crf,
                                audio_from=input_path)
        reader = ThreadedReader(source)
        last = (0, 0.0)
        for frame in reader:
            result = pipeline.process(frame)
            if video is not None:
                with pipeline.times.measure("annotate"):
                    canvas = annotator.annotate(frame.image, result.detections)
                with pipeline.times.measure("encode"):
                    video.write(canvas, frame.pts)
            if events is not None:
                events.write(result.events)
            last = (frame.index, frame.pts)
            if on_frame is not None:
                on_frame(frame.index)
        if events is not None:
            events.write(pipeline.finish(*last))
    finally:
        # Outputs are finished even when a stage fails, so what was written stays playable.
        if reader is not None:
            reader.close()
        else:
            source.close()
        if video is not None:
            video.close()
        if events is not None:
            events.close()
    stages = {"decode": source.decode_seconds, **pipeline.times.seconds}
    return RunSummary(pipeline.frames, pipeline.faces, len(pipeline.tracks_seen), time.perf_counter() - started,
                      stages, source.error)
