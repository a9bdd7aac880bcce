"""A live window per camera (OpenCV HighGUI): the annotated picture with an fps / latency / drops overlay.

HighGUI wants one thread for all its calls (the main thread on macOS), so the runner calls `show` and `poll`
from its main loop only.
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from facetrack.errors import FacetrackError

_QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc


def check_display() -> None:
    """Fail early, with the fix, where no window can open (a server or container without a desktop)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FacetrackError("--display needs a desktop session (DISPLAY is not set): run without --display, "
                             "or record with --record OUT.mp4")


def draw_overlay(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """`image` with `lines` of text on a dark band in its top-left corner (drawn in place)."""
    if not lines:
        return image
    scale, thickness, step = 0.5, 1, 18
    width = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for line in lines)
    band = image[0:step * len(lines) + 8, 0:width + 12]
    band[:] = (band * 0.4).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(image, line, (6, step * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
    return image


class Windows:
    """One window per camera, titled by its name."""

    def __init__(self) -> None:
        check_display()
        self._open: set[str] = set()
        self.closed_by_user = False

    def show(self, camera: str, image: np.ndarray, lines: list[str]) -> None:
        title = f"facetrack: {camera}"
        if title not in self._open:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
            cv2.resizeWindow(title, image.shape[1], image.shape[0])
            self._open.add(title)
        cv2.imshow(title, draw_overlay(image, lines))

    def poll(self) -> bool:
        """Process window events; False once the user pressed q / Esc or closed a window."""
        key = cv2.waitKey(1) & 0xFF
        if key in _QUIT_KEYS:
            self.closed_by_user = True
        for title in self._open:
            if cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:
                self.closed_by_user = True
        return not self.closed_by_user

    def close(self) -> None:
        if self._open:
            cv2.destroyAllWindows()
            cv2.waitKey(1)
