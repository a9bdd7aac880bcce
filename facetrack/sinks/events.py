"""JSON Lines events: one object per line, written as they happen.

Schema (stable; later stages fill more fields, never rename them):
  {"type": "frame", "frame": i, "pts": s, "faces": [{"track_id", "identity", "known", "similarity", "score",
   "box": [x1, y1, x2, y2]}]}
  {"type": "track_start" | "track_end", "track_id", "frame", "pts"}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from facetrack.errors import FacetrackError, OutputError, write_problem
from facetrack.private import FILE_MODE
from facetrack.types import IDENTITY, IGNORED, KNOWN, SIMILARITY

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
        if IGNORED in detections.data and detections.data[IGNORED][i]:
            faces[-1]["ignored"] = True  # marked ignored in the identity store
    return faces


def frame_event(index: int, pts: float, detections: sv.Detections) -> Event:
    return {"type": "frame", "frame": index, "pts": round(pts, 4), "faces": face_records(detections)}


def track_event(kind: str, track_id: int, index: int, pts: float) -> Event:
    return {"type": kind, "track_id": int(track_id), "frame": index, "pts": round(pts, 4)}


class EventWriter:
    """Appends events to a .jsonl file (or stdout for `-`), written at once so a crash loses at most one frame.

    A new file is created readable by its owner only: it says who was seen where and when. A write that fails
    (a full disk, a size limit) cuts the file back to its last whole line and raises `OutputError`: what is left
    parses line by line. With `max_bytes`, a file that passes that size is renamed EVENTS.1 (replacing an older
    one) and a new EVENTS is started, so a run of weeks keeps at most about twice that on disk.
    """

    def __init__(self, path: Path | str, max_bytes: int | None = None, flag: str = "--events") -> None:
        self.path = str(path)
        self.flag = flag
        self.max_bytes = max_bytes
        self._own = self.path != "-"
        self._fd: int | None = None
        self._size = 0  # bytes of whole lines in the current file
        self.count = 0
        self.rotations = 0
        if self._own:
            self._open()

    def _open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        except OSError as exc:
            raise FacetrackError(
                f"cannot write events to {self.path}: {exc.strerror} (choose a writable path for {self.flag})"
            ) from None
        self._size = 0

    def write(self, events: list[Event]) -> None:
        if not events:
            return
        text = "".join(json.dumps(event, separators=(",", ":")) + "\n" for event in events)
        if not self._own:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.count += len(events)
            return
        if self._fd is None:
            raise OutputError(f"events file {self.path} is closed")
        encoded = text.encode()
        data = memoryview(encoded)
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            self._cut()
            raise OutputError(f"cannot write events to {self.path}: {write_problem(exc.strerror, exc.errno, self.flag)}"
                              f"; the {self.count} events before it are kept, in whole lines") from None
        self._size += len(encoded)
        self.count += len(events)
        if self.max_bytes is not None and self._size >= self.max_bytes:
            self._rotate()

    def _cut(self) -> None:
        """Back to the last whole line: a half-written line would break every reader of the file."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass  # a device such as /dev/full: nothing was kept anyway
        os.close(self._fd)
        self._fd = None

    def _rotate(self) -> None:
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError:
            pass  # not a regular file
        os.close(self._fd)
        self._fd = None
        try:
            os.replace(self.path, f"{self.path}.1")
        except OSError as exc:
            raise OutputError(f"cannot rotate events file {self.path} to {self.path}.1: {exc.strerror} "
                              f"(give {self.flag} a path in a writable folder)") from None
        self.rotations += 1
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
