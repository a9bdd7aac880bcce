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

import numpy as np
import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.embed import CROP_SIZE, FaceEmbedder, FaceQuality, face_quality
from facetrack.follow import DetectionSchedule
from facetrack.gallery import Enroller, Gallery, open_gallery
from facetrack.identity import IdentityManager
from facetrack.models.registry import cache_root, resolve_model
from facetrack.scene import CutDetector
from facetrack.schedule import EmbeddingScheduler
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import Event, EventWriter, frame_event, track_event
from facetrack.sinks.video import VideoWriter, check_video_output
from facetrack.sources import FileSource, Frame, ThreadedReader
from facetrack.track import FaceTracker
from facetrack.types import FRESH, LANDMARKS, set_identity_columns


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
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    identity_events: list[Event] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        """This frame's events in order: tracks that start, identity changes, the frame, tracks that end."""
        index, pts = self.frame.index, self.frame.pts
        return ([track_event("track_start", t, index, pts) for t in self.started] + self.identity_events
                + [frame_event(index, pts, self.detections)]
                + [track_event("track_end", t, index, pts) for t in self.ended])


@dataclass
class EmbeddingPlan:
    """The faces of one frame chosen for embedding, aligned and ready for one batched call."""

    positions: list[int]  # rows of the frame's detections
    crops: np.ndarray  # N×112×112×3
    qualities: list[FaceQuality]


class Pipeline:
    """Detection → tracking → (throttled embedding → identity) for one video source, frame by frame.

    `process` runs every stage; the live runner calls the stages separately (`detect_track`, `plan`, the
    shared embedder, `apply`) so that stages run in their own threads and crops of several cameras share one
    embedding call.
    """

    def __init__(self, config: FacetrackConfig, detector: FaceDetector | None = None, frame_rate: float = 30.0,
                 embedder: FaceEmbedder | None = None, gallery: Gallery | None = None, live: bool = False) -> None:
        self.config = config
        self.detector = detector or FaceDetector(resolve_model("detector", config.models), config.detector,
                                                 config.runtime)
        self.schedule = DetectionSchedule(self.detector, config.detector, frame_rate, live)
        self.tracker = FaceTracker(config.tracker, frame_rate=frame_rate)
        self.cuts = CutDetector(config.tracker.cut_threshold) if config.tracker.cut_threshold > 0 else None
        self.times = StageTimes()
        self.frames = 0
        self.faces = 0
        self.embeddings = 0
        self.tracks_seen: set[int] = set()
        self.embedder = embedder
        self.gallery = gallery
        if self.embedder is None and identity_wanted(config):
            self.embedder, self.gallery = load_identity_models(config, self.detector)
        self.identity: IdentityManager | None = None
        self.scheduler: EmbeddingScheduler | None = None
        if self.embedder is not None:
            thresholds = config.identity.thresholds_for(self.embedder.name)
            self.identity = IdentityManager(config.identity, thresholds, self.gallery)
            self.scheduler = EmbeddingScheduler(config.embedding)

    def process(self, frame: Frame) -> FrameResult:
        result = self.detect_track(frame)
        plan = self.plan(result)
        vectors = None
        if plan is not None and self.embedder is not None:
            with self.times.measure("embed"):
                vectors = self.embedder.embed_crops(plan.crops)
        self.apply(result, plan, vectors)
        return result

    def detect_track(self, frame: Frame) -> FrameResult:
        with self.times.measure("track"):
            cut = self.cuts is not None and self.cuts.is_cut(frame.image)
        with self.times.measure("detect"):  # on the whole frame when due, else faces followed (facetrack/follow.py)
            detections = self.schedule.detect(frame, restart=cut or frame.discontinuity)
        ended: list[int] = []
        with self.times.measure("track"):
            if cut or frame.discontinuity:
                ended = self.tracker.finish()
            update = self.tracker.update(detections, timestamp=frame.pts)
        self.frames += 1
        self.faces += len(update.detections)
        self.tracks_seen.update(update.started)
        return FrameResult(frame, update.detections, update.started, ended + update.ended)

    def plan(self, result: FrameResult) -> EmbeddingPlan | None:
        """Which faces to embed now (throttled), aligned; None when identity is off."""
        if self.scheduler is None or self.embedder is None or self.identity is None:
            return None
        with self.times.measure("embed"):
            detections, pts = result.detections, result.frame.pts
            boxes, landmarks = detections.xyxy, detections.data[LANDMARKS]
            track_ids = [int(t) for t in detections.tracker_id]
            # Size and pose come free with the landmarks; sharpness needs the aligned crop, so only the faces
            # that are due get aligned, in order of need, until the budget is filled.
            views = face_quality(boxes, landmarks)
            plan = EmbeddingPlan([], np.empty((0, CROP_SIZE, CROP_SIZE, 3), np.uint8), [])
            crops = []
            fresh = detections.data.get(FRESH)  # faces followed on a reduced crop wait for a full detection
            for i in self.scheduler.select(track_ids, views, pts, self.identity.decided_tracks()):
                if fresh is not None and not fresh[i]:
                    continue
                crop = self.embedder.align(result.frame.image, landmarks[i:i + 1])
                quality = face_quality(boxes[i:i + 1], landmarks[i:i + 1], crop)[0]
                if not self.scheduler.trusted(quality):
                    self.scheduler.too_blurred(track_ids[i], pts)
                    continue
                plan.positions.append(i)
                plan.qualities.append(quality)
                crops.append(crop[0])
                if len(crops) == self.config.embedding.max_per_frame:
                    break
            if crops:
                plan.crops = np.stack(crops)
        return plan

    def apply(self, result: FrameResult, plan: EmbeddingPlan | None, vectors: np.ndarray | None) -> None:
        """Feed the new embeddings to the identity stage and label the frame's faces."""
        if self.identity is None or self.scheduler is None:
            return
        with self.times.measure("identify"):
            detections, frame = result.detections, result.frame
            track_ids = [int(t) for t in detections.tracker_id]
            self.identity.begin_frame(frame.index, frame.pts, track_ids)
            if plan is not None and vectors is not None:
                for position, vector, quality in zip(plan.positions, vectors, plan.qualities, strict=True):
                    track_id = track_ids[position]
                    self.scheduler.embedded(track_id, quality, frame.pts)
                    result.identity_events += self.identity.observe(track_id, vector, quality.score)
                self.embeddings += len(plan.positions)
            identities, known, sims, states = self.identity.labels(track_ids)
            set_identity_columns(detections, identities, known, sims, states)
            self.close_tracks(result.ended, frame.pts)

    def finish(self, last_index: int, last_pts: float) -> list[Event]:
        """Events that close the stream: every live track ends."""
        return [track_event("track_end", t, last_index, last_pts) for t in self.tracker.finish()]

    def close_tracks(self, track_ids: list[int], pts: float) -> None:
        """The identity stage remembers ended tracks for re-linking: those a frame ended (`apply`) and those
        ended outside a frame (`finish`: end of stream, a camera that dropped; the live runner calls it then)."""
        if self.identity is None or self.scheduler is None:
            return
        for track_id in track_ids:
            self.identity.end(track_id, pts)
            self.scheduler.forget(track_id)


def identity_wanted(config: FacetrackConfig) -> bool:
    return config.identity.enabled or config.identity.gallery is not None or config.models.recognizer is not None


def load_identity_models(config: FacetrackConfig, detector: FaceDetector) -> tuple[FaceEmbedder, Gallery | None]:
    """The recognizer, and the gallery (built from a photo folder and cached, or read from a .db)."""
    embedder = FaceEmbedder(resolve_model("recognizer", config.models), config.runtime, config.embedding.max_batch)
    gallery = None
    if config.identity.gallery is not None:
        gallery = open_gallery(config.identity.gallery, Enroller(detector, embedder),
                               cache_root(config.models).parent / "galleries")
    return embedder, gallery


@dataclass
class RunSummary:
    frames: int
    faces: int
    tracks: int
    seconds: float
    stage_seconds: dict[str, float]
    decode_error: str | None = None
    embeddings: int = 0

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
        check_video_output(output_path)
    source = FileSource(input_path, hwaccel=config.decode.hwaccel)
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
                      stages, source.error, pipeline.embeddings)
