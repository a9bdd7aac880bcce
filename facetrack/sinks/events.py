"""JSON Lines events: one object per line, written as they happen.

The events are the typed dicts of `facetrack/types.py` (stable; later stages fill more fields, never rename them):
  {"type": "frame", "frame": i, "pts": s, "faces": [{"track_id", "identity", "known", "similarity", "score",
   "box": [x1, y1, x2, y2], "reason"}]}  (reason: why identity is null; null when it is not, or identity is off;
   "ignored": true on people the store ignores)
  {"type": "track_start" | "track_end", "track_id", "frame", "pts"}
  {"type": "identity", "track_id", "identity", "previous", "state", "similarity", "relinked_from", "frame", "pts",
   "candidates": [{"name", "similarity"}]}
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from facetrack.errors import FacetrackError, OutputError, write_problem
from facetrack.private import FILE_MODE
from facetrack.types import Event, face_records, frame_event, to_json, track_event

__all__ = ["Event", "EventWriter", "face_records", "frame_event", "track_event"]

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
        text = "".join(to_json(event) + "\n" for event in events)
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

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
