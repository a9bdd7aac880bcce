"""Presentation times that always increase, from stream timestamps that may not."""

from __future__ import annotations


class StreamClock:
    """Presentation times that always increase, from stream timestamps that may not.

    A timestamp that goes back or repeats (two recordings joined, a camera's clock reset) or jumps ahead by more
    than `max_gap` seconds is a break: the frame is placed one frame period after the previous one and marked
    as a discontinuity, and later timestamps keep the same offset. Frames without a timestamp are extrapolated.
    """

    def __init__(self, fps: float, max_gap: float = 10.0) -> None:
        self.step = 1.0 / fps if fps > 0 else 1.0 / 30
        self.max_gap = max_gap
        self._offset = 0.0
        self._last: float | None = None

    def place(self, raw: float | None) -> tuple[float, bool]:
        """The frame's time in seconds, and whether the clock broke before it."""
        last = self._last
        if last is None:
            pts, broke = (raw if raw is not None else 0.0), False
        elif raw is None:
            pts, broke = last + self.step, False
        else:
            pts = raw + self._offset
            broke = pts <= last or pts - last > self.max_gap
            if broke:
                self._offset = last + self.step - raw
                pts = last + self.step
        self._last = pts
        return pts, broke
