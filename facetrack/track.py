"""Face tracking with `trackers.ByteTrackTracker`, driven by frame timestamps.

ByteTrack returns `detections[idx]`, so everything in `.data` (landmarks, later identity) stays with its box.
This wrapper adds what the tracker does not report: which tracks started and which ended this frame; and it
ends tracks that ByteTrack would carry on to another person. The IDs it shows are its own, mapped from
ByteTrack's: a track can be split (a cut within the same set of faces, or the identity stage finding another
person under the box) and go on under a fresh ID that was never shown before, while ByteTrack keeps following
the box.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from facetrack.config import TrackerConfig
from facetrack.scene import FaceChangeDetector
from facetrack.types import UNTRACKED, with_face_columns


@dataclass
class TrackUpdate:
    """One frame's tracked faces plus the track lifecycle changes it caused."""

    detections: sv.Detections  # confirmed tracks only (tracker_id >= 0)
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)  # tracks whose face changed at once: worth a new look
    cut: bool = False  # every face changed at once: their tracks ended, new ones started


class FaceTracker:
    def __init__(self, config: TrackerConfig, frame_rate: float = 30.0) -> None:
        self.config = config
        self.frame_rate = frame_rate
        self._tracker = self._new_tracker()
        self._alive: set[int] = set()
        self._last_timestamp = float("-inf")
        self._shown: dict[int, int] = {}  # ByteTrack ID → the ID shown for it now
        self._next_id = 0
        self.changes = FaceChangeDetector(config.face_change_correlation, config.face_change_iou,
                                          config.face_change_score_drop, config.face_cut_frame_change
                                          ) if config.face_change_correlation > 0 else None
        self.cuts = 0  # cuts seen by the face comparison
        self._lock = threading.Lock()  # the live runner splits tracks from its identity thread

    def _new_tracker(self) -> ByteTrackTracker:
        c = self.config
        return ByteTrackTracker(
            lost_track_buffer=c.lost_track_buffer,
            frame_rate=self.frame_rate,
            track_activation_threshold=c.track_activation_threshold,
            minimum_consecutive_frames=c.minimum_consecutive_frames,
            minimum_iou_threshold=c.minimum_iou_threshold,
            high_conf_det_threshold=c.high_conf_det_threshold,
        )

    def update(self, detections: sv.Detections, timestamp: float | None, image: np.ndarray | None = None,
               thumbnail: np.ndarray | None = None) -> TrackUpdate:
        """Track this frame's faces; with the frame's `image`, faces are also compared with their last frame
        (`thumbnail`: the frame's `scene.frame_thumbnail`, when the caller has made it)."""
        if timestamp is not None:
            # ByteTrack skips every update older than its last one; the sources give increasing times, and this
            # keeps it so for any caller.
            timestamp = self._last_timestamp = max(timestamp, self._last_timestamp + 1e-6)
        with self._lock:
            return self._update(detections, timestamp, image, thumbnail)

    def _update(self, detections: sv.Detections, timestamp: float | None, image: np.ndarray | None,
                thumbnail: np.ndarray | None) -> TrackUpdate:
        tracked = with_face_columns(self._tracker.update(detections, timestamp=timestamp))
        if len(tracked):
            tracked = tracked[tracked.tracker_id >= 0]
        internal = [int(i) for i in tracked.tracker_id]
        changed: list[int] = []
        cut_ended: list[int] = []
        cut = False
        if self.changes is not None and image is not None:
            faces = self.changes.update(image, tracked.xyxy, tracked.confidence, tracked.tracker_id, thumbnail)
            cut = faces.cut
            if cut:
                # Another shot of the same set: every track ends, the faces go on under new IDs, and tracklets
                # of boxes not seen in this frame (lost faces of the last shot) are dropped.
                self.cuts += 1
                cut_ended = sorted(self._alive)
                self._alive = set()
                self._shown = {}
                self._tracker.tracks = [t for t in self._tracker.tracks if t.tracker_id < 0 or t.tracker_id in internal]
            else:
                changed = [self._shown_id(i) for i, flag in zip(internal, faces.changed, strict=True) if flag]
        tracked.tracker_id = np.array([self._shown_id(i) for i in internal], dtype=int)
        ids = set(int(i) for i in tracked.tracker_id)
        # A track ends when ByteTrack drops it (lost for longer than its buffer), not when it is missed once.
        held = {self._shown[t.tracker_id] for t in self._tracker.tracks if t.tracker_id in self._shown}
        started = sorted(ids - self._alive)
        ended = sorted(self._alive - held - ids)
        self._alive = (self._alive | ids) - set(ended)
        self._shown = {k: v for k, v in self._shown.items() if v in self._alive}
        faces = with_face_columns(tracked)
        faces.metadata[UNTRACKED] = _untracked(detections, faces)
        return TrackUpdate(faces, started, cut_ended + ended, changed, cut)

    def _shown_id(self, internal: int) -> int:
        if internal not in self._shown:
            self._shown[internal] = self._next_id
            self._next_id += 1
        return self._shown[internal]

    def split(self, track_id: int) -> int | None:
        """End track `track_id` and go on following its box under a fresh ID (returned; None when the track has
        ended meanwhile)."""
        with self._lock:
            internal = next((k for k, v in self._shown.items() if v == track_id), None)
            if internal is None:
                return None
            self._shown[internal] = new_id = self._next_id
            self._next_id += 1
            self._alive.discard(track_id)
            self._alive.add(new_id)
            return new_id

    def finish(self) -> list[int]:
        """End every live track (end of stream or shot cut); returns their IDs."""
        with self._lock:
            return self._finish()

    def _finish(self) -> list[int]:
        ended = sorted(self._alive)
        self._alive = set()
        self._shown = {}
        # Dropping the tracklets (not the tracker) keeps its ID counter; shown IDs are never reused either.
        self._tracker.tracks = []
        if self.changes is not None:
            self.changes.reset()
        return ended

    @property
    def alive(self) -> set[int]:
        return set(self._alive)


def _untracked(detected: sv.Detections, tracked: sv.Detections) -> np.ndarray:
    """Boxes of the frame's detected faces that no confirmed track holds (ByteTrack hands back the detected boxes
    of the faces it tracks, unchanged)."""
    if len(detected) == 0:
        return np.empty((0, 4), dtype=np.float32)
    if len(tracked) == 0:
        return detected.xyxy.copy()
    return detected.xyxy[sv.box_iou_batch(detected.xyxy, tracked.xyxy).max(axis=1) < 0.9]
