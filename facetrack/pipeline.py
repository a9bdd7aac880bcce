"""The pipeline: frames in → tracked faces (`sv.Detections`) and events out, for one stream, frame by frame.

`Pipeline` is the Python API under every command: feed it `Frame`s, read back a `FrameResult` per frame.
`facetrack.runner.Runner` drives it in threads for `annotate` and `watch`; `bench` times `Pipeline.process`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.follow import DetectionSchedule
from facetrack.gallery import Gallery
from facetrack.identify_stage import IdentityStage
from facetrack.models.faces import FaceModels, load_detector
from facetrack.scene import CutDetector, frame_thumbnail
from facetrack.sources import Frame
from facetrack.stats import StageTimes
from facetrack.store.memory import IdentityMemory
from facetrack.track import FaceTracker
from facetrack.types import Event, TrackEvent, frame_event, track_event


@dataclass
class FrameResult:
    frame: Frame
    detections: sv.Detections  # tracked faces: tracker_id, data["landmarks"] (+ identity fields when enabled)
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    identity_events: list[Event] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)  # tracks whose face changed at once (worth a new look)

    @property
    def events(self) -> list[Event]:
        """This frame's events in order: tracks that start, identity changes, the frame, tracks that end."""
        index, pts = self.frame.index, self.frame.pts
        return ([track_event("track_start", t, index, pts) for t in self.started] + self.identity_events
                + [frame_event(index, pts, self.detections)]
                + [track_event("track_end", t, index, pts) for t in self.ended])


class Pipeline:
    """Detection → tracking → (throttled embedding → identity) for one video source, frame by frame.

    `process` runs every stage in turn (the library API, and what `bench` times). A runner calls them apart:
    `detect_track` in one thread, then the identity stage (`identity`: plan, one embedding call for several
    cameras, apply) in another. With an identity memory (`memory`, or `store.path` in the config) strangers get
    persistent IDs and every ended track's sighting is written (`camera` names them); `close()` releases what
    it opened.
    """

    def __init__(self, config: FacetrackConfig, detector: FaceDetector | None = None, frame_rate: float = 30.0,
                 embedder: FaceEmbedder | None = None, gallery: Gallery | None = None,
                 memory: IdentityMemory | None = None, camera: str = "cam0", live: bool = False,
                 models: FaceModels | None = None) -> None:
        self.config = config
        if models is None:  # the models given one by one, the rest loaded as the config asks
            models = (FaceModels(detector or load_detector(config), embedder, gallery) if embedder is not None
                      else FaceModels.load(config, detector=detector))
        self.models = models
        self.detector = models.detector
        self.schedule = DetectionSchedule(self.detector, config.detector, frame_rate, live)
        self.tracker = FaceTracker(config.tracker, frame_rate=frame_rate)
        self.cuts = CutDetector(config.tracker.cut_threshold) if config.tracker.cut_threshold > 0 else None
        self.times = StageTimes()
        self.frames = 0
        self.faces = 0
        self.tracks_seen: set[int] = set()
        self.identity: IdentityStage | None = None
        if models.embedder is not None:
            self.identity = IdentityStage(config, models.embedder, models.gallery, self._split_track, memory,
                                          camera, self.times,
                                          want_fresh=self.schedule.want_fresh)

    @property
    def embedder(self) -> FaceEmbedder | None:
        return self.models.embedder

    @property
    def memory(self) -> IdentityMemory | None:
        return self.identity.memory if self.identity is not None else None

    @property
    def embeddings(self) -> int:
        return self.identity.embeddings if self.identity is not None else 0

    def process(self, frame: Frame) -> FrameResult:
        result = self.detect_track(frame)
        if self.identity is not None:
            plan = self.identity.plan(result)
            self.identity.apply(result, plan, self.identity.embed(plan))
        return result

    def detect_track(self, frame: Frame) -> FrameResult:
        with self.times.measure("track"):
            looked_at = self.cuts is not None or self.tracker.changes is not None
            thumbnail = frame_thumbnail(frame.image) if looked_at else None
            cut = self.cuts is not None and self.cuts.is_cut(frame.image, thumbnail)
        with self.times.measure("detect"):  # on the whole frame when due, else faces followed (facetrack/follow.py)
            detections = self.schedule.detect(frame, restart=cut or frame.discontinuity)
        ended: list[int] = []
        with self.times.measure("track"):
            if cut or frame.discontinuity:
                ended = self.tracker.finish()
            update = self.tracker.update(detections, timestamp=frame.pts, image=frame.image, thumbnail=thumbnail)
        self.frames += 1
        self.faces += len(update.detections)
        self.tracks_seen.update(update.started)
        return FrameResult(frame, update.detections, update.started, ended + update.ended, changed=update.changed)

    def _split_track(self, track_id: int) -> int | None:
        new = self.tracker.split(track_id)
        if new is not None:
            self.tracks_seen.add(new)
        return new

    def end_tracks(self) -> list[int]:
        """Every live track ends in the tracker (the stream ended, or a camera dropped); hand them to the
        identity stage's `expire` next (a runner does so in its identity thread)."""
        return self.tracker.finish()

    def finish(self, last_index: int, last_pts: float) -> list[TrackEvent]:
        """The end of the stream: every live track ends and is expired; returns their `track_end` events."""
        ended = self.end_tracks()
        if self.identity is not None:
            self.identity.expire(ended, last_pts)
        return [track_event("track_end", t, last_index, last_pts) for t in ended]

    def close(self) -> None:
        """Release what this pipeline opened itself (its identity memory)."""
        if self.identity is not None:
            self.identity.close()
