"""JSON Lines events: one object per line, written as they happen.

Schema (stable; later stages fill more fields, never rename them):
  {"type": "frame", "frame": i, "pts": s, "faces": [{"track_id", "identity", "known", "similarity", "score",
   "box": [x1, y1, x2, y2]}]}
  {"type": "track_start" | "track_end", "track_id", "frame", "pts"}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import supervision as sv

from facetrack.errors import FacetrackError
from facetrack.private import open_private
from facetrack.types import IDENTITY, KNOWN, SIMILARITY

Event = dict[str, Any]


def _round(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def face_records(detections: sv.Detections) -> list[dict[str, Any]]:
    """The `faces` list of a frame event."""
    n = len(detections)
    names = detections.data.get(IDENTITY, [None] * n)
    known = detections.data.get(KNOWN, [False] * n)
    sims = detections.data.get(SIMILARITY, [None] * n)
    scores = detections.confidence if detections.confidence is not None else np.ones(n)
    faces = []
    for i in range(n):
        sim = sims[i]
        faces.append({
            "track_id": int(detections.tracker_id[i]),
            "identity": str(names[i]) if names[i] else None,
            "known": bool(known[i]),
            "similarity": None if sim is None or np.isnan(sim) else _round(sim, 3),
            "score": _round(scores[i], 3),
            "box": [_round(v, 1) for v in detections.xyxy[i]],
        })
    return faces


def frame_event(index: int, pts: float, detections: sv.Detections) -> Event:
    return {"type": "frame", "frame": index, "pts": round(pts, 4), "faces": face_records(detections)}


def track_event(kind: str, track_id: int, index: int, pts: float) -> Event:
    return {"type": kind, "track_id": int(track_id), "frame": index, "pts": round(pts, 4)}


class EventWriter:
    """Appends events to a .jsonl file (or stdout for `-`), flushed so a crash loses at most one frame.

    A new file is created readable by its owner only: it says who was seen where and when.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._own = self.path != "-"
        self._handle: TextIO
        if self._own:
            try:
                self._handle = open_private(self.path, "w")  # closed in close(); only its owner reads it
            except OSError as exc:
                raise FacetrackError(
                    f"cannot write events to {self.path}: {exc.strerror} (choose a writable path for --events)"
                ) from None
        else:
            self._handle = sys.stdout
        self.count = 0

    def write(self, events: list[Event]) -> None:
        for event in events:
            self._handle.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.count += len(events)
        self._handle.flush()

    def close(self) -> None:
        if self._own and not self._handle.closed:
            self._handle.close()
