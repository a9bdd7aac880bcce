"""The four ways `facetrack bench` processes frames, each with its stage times and its own annotated video.

- facetrack: `Pipeline.process`, frame by frame — the library API, and the stages `annotate` and `watch` run
  (there in threads, `facetrack.runner`); this is what the benchmark times;
- every_frame: the same with full-frame detection on every frame;
- naive: detect, then align, embed and match every face in every frame;
- floor: full-frame detection alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.gallery import Gallery
from facetrack.pipeline import Pipeline
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import EventWriter
from facetrack.sinks.video import VideoWriter
from facetrack.sources import Frame, VideoInfo
from facetrack.stats import StageTimes
from facetrack.types import IDENTITY, KNOWN, LANDMARKS, SIMILARITY, frame_event

SPEED_TWIN_MARK = "speed_twin"  # in the graph name written by benchmarks/make_speed_twin.py


def is_speed_twin(embedder: FaceEmbedder) -> bool:
    return SPEED_TWIN_MARK in (embedder.session.get_modelmeta().graph_name or "")


def _with_ids(detections: sv.Detections) -> sv.Detections:
    """The runs without a tracker draw with per-frame numbers in place of track IDs."""
    if detections.tracker_id is None:
        detections.tracker_id = np.arange(len(detections))
    return detections


class BenchRun:
    """One way of processing frames: its work per frame, its stage times, its own annotated video if asked."""

    name = ""

    def __init__(self, config: FacetrackConfig, info: VideoInfo, video_dir: Path | None) -> None:
        self.times = StageTimes()
        self.frames = 0
        self._annotator = FrameAnnotator(config.annotation) if video_dir is not None else None
        self._writer = (VideoWriter(video_dir / f"{self.name}.mp4", info, config.annotation.codec,
                                    config.annotation.crf) if video_dir is not None else None)

    def work(self, frame: Frame) -> sv.Detections:
        raise NotImplementedError

    def embeddings(self) -> int:
        return 0

    def full_detections(self) -> int:
        return self.frames  # a run without a schedule detects on every frame

    def step(self, frame: Frame) -> None:
        detections = self.work(frame)
        if self._writer is not None and self._annotator is not None:
            with self.times.measure("annotate"):
                canvas = self._annotator.annotate(frame.image, _with_ids(detections))
            with self.times.measure("encode"):
                self._writer.write(canvas, frame.pts)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            with self.times.measure("encode"):
                self._writer.close()


class FacetrackRun(BenchRun):
    """The product: `Pipeline.process` (detect, track, throttled align+embed, identify) and its events."""

    name = "facetrack"

    def __init__(self, config: FacetrackConfig, info: VideoInfo, video_dir: Path | None, detector: FaceDetector,
                 embedder: FaceEmbedder, gallery: Gallery | None, events: Path | None = None) -> None:
        super().__init__(config, info, video_dir)
        self.pipeline = Pipeline(config, detector=detector, frame_rate=float(info.fps), embedder=embedder,
                                 gallery=gallery)
        self.times = self.pipeline.times
        # Made and serialised as in the product; kept only when asked for (to score with `facetrack eval`).
        self._events = EventWriter(events or os.devnull)

    def work(self, frame: Frame) -> sv.Detections:
        result = self.pipeline.process(frame)
        self._events.write(result.events)
        return result.detections

    def embeddings(self) -> int:
        return self.pipeline.embeddings

    def full_detections(self) -> int:
        return self.pipeline.schedule.full_detections

    def close(self) -> None:
        super().close()
        self._events.close()


class EveryFrameRun(FacetrackRun):
    """The product's pipeline with full-frame detection on every frame: what the schedule saves."""

    name = "every_frame"

    def __init__(self, config: FacetrackConfig, *args: Any, **kwargs: Any) -> None:
        every = config.model_copy(update={"detector": config.detector.model_copy(update={"interval": 1})})
        super().__init__(every, *args, **kwargs)


class NaiveRun(BenchRun):
    """What most face tools do: detect, then align, embed and match every face in every frame, deciding each
    face of each frame on its own (same threshold, margin and one name per frame as facetrack; no tracking,
    no memory)."""

    name = "naive"

    def __init__(self, config: FacetrackConfig, info: VideoInfo, video_dir: Path | None, detector: FaceDetector,
                 embedder: FaceEmbedder, gallery: Gallery | None, events: Path | None = None) -> None:
        super().__init__(config, info, video_dir)
        self.detector, self.embedder, self.gallery = detector, embedder, gallery
        self.thresholds = config.identity.thresholds_for(embedder.name)
        self._embedded = 0
        self._events = EventWriter(events) if events is not None else None

    def work(self, frame: Frame) -> sv.Detections:
        with self.times.measure("detect"):
            detections = self.detector.detect(frame.image)
        with self.times.measure("embed"):
            vectors = self.embedder.embed(frame.image, detections.data[LANDMARKS])
        with self.times.measure("identify"):
            if self.gallery is not None and len(self.gallery) and len(vectors):
                names = self.gallery.identify(vectors, self.thresholds.threshold, self.thresholds.margin)
                detections.data[IDENTITY] = np.array([name for name, _ in names], dtype=object)
                detections.data[KNOWN] = np.array([name is not None for name, _ in names], dtype=bool)
                detections.data[SIMILARITY] = np.array([sim if name else np.nan for name, sim in names])
        # No tracker: every face of every frame is a sighting of its own.
        detections.tracker_id = frame.index * 1000 + np.arange(len(detections))
        if self._events is not None:
            self._events.write([frame_event(frame.index, frame.pts, detections)])
        self._embedded += len(vectors)
        return detections

    def embeddings(self) -> int:
        return self._embedded

    def close(self) -> None:
        super().close()
        if self._events is not None:
            self._events.close()


class FloorRun(BenchRun):
    """Decode and detect only: no identity pipeline on this detector can be faster."""

    name = "floor"

    def __init__(self, config: FacetrackConfig, info: VideoInfo, video_dir: Path | None,
                 detector: FaceDetector) -> None:
        super().__init__(config, info, video_dir)
        self.detector = detector

    def work(self, frame: Frame) -> sv.Detections:
        with self.times.measure("detect"):
            return self.detector.detect(frame.image)
