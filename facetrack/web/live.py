"""Live tiles for `facetrack watch --serve`: the newest annotated frame of each camera as a small JPEG, kept in
memory only (never written), refreshed at most `max_fps` times a second per camera."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Tile:
    jpeg: bytes
    updated: float  # wall clock, Unix seconds
    width: int
    height: int


class LiveTiles:
    """Filled from the runner's render thread (`put`), read by the web app's threads (`get`)."""

    def __init__(self, cameras: list[str], max_fps: float = 4.0, max_width: int = 960, quality: int = 80) -> None:
        self.names = list(cameras)
        self.min_interval = 1.0 / max_fps
        self.max_width = max_width
        self.quality = quality
        self._tiles: dict[str, Tile] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def put(self, camera: str, image: np.ndarray) -> None:
        now = time.monotonic()
        if now - self._last.get(camera, -1e9) < self.min_interval:
            return
        self._last[camera] = now
        height, width = image.shape[:2]
        if width > self.max_width:
            height, width = round(height * self.max_width / width), self.max_width
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._lock:
                self._tiles[camera] = Tile(encoded.tobytes(), time.time(), width, height)

    def get(self, camera: str) -> Tile | None:
        with self._lock:
            return self._tiles.get(camera)
