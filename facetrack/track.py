"""Face tracking with `trackers.ByteTrackTracker`, driven by frame timestamps.

ByteTrack returns `detections[idx]`, so everything in `.data` (landmarks, later identity) stays with its box.
This wrapper adds what the tracker does not report: which tracks started and which ended this frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import supervision as sv
from trackers import ByteTrackTracker

from facetrack.config import TrackerConfig
from facetrack.types import with_face_columns


@dataclass
class TrackUpdate:
    """One frame's tracked faces plus the track lifecycle changes it caused."""

    detections: sv.Detections  # confirmed tracks only (tracker_id >= 0)
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


class FaceTracker:
    def __init__(self, config: TrackerConfig, frame_rate: float = 30.0) -> None:
        self.config = config
        self.frame_rate = frame_rate
        self._tracker = self._new_tracker()
        self._alive: set[int] = set()
        self._last_timestamp = float("-inf")

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

    def update(self, detections: sv.Detections, timestamp: float | None) -> TrackUpdate:
        if timestamp is not None:
            # ByteTrack skips every update older than its last one; the sources give increasing times, and this
            # keeps it so for any caller.
            timestamp = self._last_timestamp = max(timestamp, self._last_timestamp + 1e-6)
        tracked = with_face_columns(self._tracker.update(detections, timestamp=timestamp))
        if len(tracked):
            tracked = tracked[tracked.tracker_id >= 0]
        ids = set(int(i) for i in tracked.tracker_id)
        # A track ends when ByteTrack drops it (lost for longer than its buffer), not when it is missed once.
        held = {int(t.tracker_id) for t in self._tracker.tracks if t.tracker_id >= 0}
        started = sorted(ids - self._alive)
        ended = sorted(self._alive - held - ids)
        self._alive = (self._alive | ids) - set(ended)
        return TrackUpdate(with_face_columns(tracked), started, ended)

    def finish(self) -> list[int]:
        """End every live track (end of stream or shot cut); returns their IDs."""
        ended = sorted(self._alive)
        self._alive = set()
        # Dropping the tracklets (not the tracker) keeps its ID counter: IDs are never reused.
        self._tracker.tracks = []
        return ended

    @property
    def alive(self) -> set[int]:
        return set(self._alive)
