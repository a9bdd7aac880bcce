"""Throttled embedding: which tracked faces to embed this frame.

Embedding every face every frame is what makes face tools slow; a track's identity needs only a few good looks.
A track is embedded when it is new, every `undecided_interval` while its identity is open, rarely once decided
(to catch a mistake), at once when its face clearly improves, and soon (`change_check_gap`) when a decided track
shows signs of being someone else (its face changed at once, or its last look did not match it). A per-frame
budget caps the work; the most needed go first. Faces too small or too blurred to trust are never embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from facetrack.config import EmbeddingConfig
from facetrack.embed import FaceQuality, face_quality


@dataclass
class _TrackSchedule:
    last_pts: float  # when the track was last embedded, or last found too blurred
    view: float  # size-and-pose quality of the face last embedded


Gate = Literal["small", "turned", "blurred"]  # the quality gate a face failed

# Priorities, highest first.
NEW, IMPROVED, CHECK, UNDECIDED, RECHECK = 5, 4, 3, 2, 1


class EmbeddingScheduler:
    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self._tracks: dict[int, _TrackSchedule] = {}
        self._suspect: set[int] = set()  # signs of change not looked at yet
        self._blurred: set[int] = set()  # tracks whose last look that was due was too blurred

    def gate(self, quality: FaceQuality) -> Gate | None:
        """The quality gate a face fails (None: it may be embedded): too small, turned too far, or (once its crop
        is looked at) too blurred."""
        c = self.config
        if quality.size < c.min_face_size:
            return "small"
        if quality.frontal < c.min_frontal:
            return "turned"
        if quality.sharpness is not None and quality.sharpness < c.min_sharpness:
            return "blurred"
        return None

    def trusted(self, quality: FaceQuality) -> bool:
        """Large, frontal (and, once its crop is looked at, sharp) enough for its embedding to count as evidence."""
        return self.gate(quality) is None

    def gates(self, track_ids: list[int], boxes: np.ndarray, landmarks: np.ndarray) -> list[Gate | None]:
        """Per face of a frame, the gate that keeps it from being embedded now: too small or turned (from its box
        and landmarks), or too blurred (its last look that was due); None where it may be embedded."""
        views = face_quality(boxes, landmarks) if len(track_ids) else []
        return [self.gate(view) or ("blurred" if track_id in self._blurred else None)
                for track_id, view in zip(track_ids, views, strict=True)]

    def priority(self, track_id: int, quality: FaceQuality, pts: float, decided: bool,
                 suspect: bool = False) -> float:
        """0 when the face need not be embedded now; else higher for more urgent (fractions break ties).

        `suspect`: a decided track that may have become another person; it is checked soon (a sign stays until
        the track's next embedding).
        """
        suspect = suspect or track_id in self._suspect
        if not self.trusted(quality):
            return 0.0
        state = self._tracks.get(track_id)
        if state is None:
            return NEW + quality.view / 10
        since = pts - state.last_pts
        interval = self.config.decided_interval if decided else self.config.undecided_interval
        clearly_better = quality.view >= max(state.view * self.config.improvement, state.view + 0.1)
        if clearly_better and since >= self.config.improvement_gap:
            return IMPROVED + min(since / interval, 1.0) / 10
        if decided and suspect and since >= self.config.change_check_gap:
            return CHECK + min(since / interval, 1.0) / 10
        if since >= interval:
            return (RECHECK if decided else UNDECIDED) + min(since / interval / 10, 0.099)
        return 0.0

    def select(self, track_ids: list[int], qualities: list[FaceQuality], pts: float,
               decided: set[int], suspect: set[int] | None = None) -> list[int]:
        """Positions (into `track_ids`) of the faces due for an embedding, most needed first.

        The caller aligns them in this order, drops the blurred ones (`too_blurred`) and stops at the budget.
        """
        self._suspect |= (suspect or set()) & decided
        scored = [(self.priority(t, q, pts, t in decided), i)
                  for i, (t, q) in enumerate(zip(track_ids, qualities, strict=True))]
        return [i for _, i in sorted((item for item in scored if item[0] > 0), reverse=True)]

    def embedded(self, track_id: int, quality: FaceQuality, pts: float) -> None:
        self._tracks[track_id] = _TrackSchedule(pts, quality.view)
        self._suspect.discard(track_id)
        self._blurred.discard(track_id)

    def too_blurred(self, track_id: int, pts: float) -> None:
        """The face was due but its crop is too blurred: look again after an interval, not every frame."""
        previous = self._tracks.get(track_id)
        self._tracks[track_id] = _TrackSchedule(pts, previous.view if previous else 0.0)
        self._blurred.add(track_id)

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)
        self._suspect.discard(track_id)
        self._blurred.discard(track_id)
