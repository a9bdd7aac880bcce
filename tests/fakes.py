"""A scripted detector and embedder for fast tests of the pipeline's wiring: no model files.

A script says, per frame, which people are in view and where. The detector returns their boxes with plausible
landmarks; the embedder returns each person's own unit vector (plus a little noise), read back from the crop
the pipeline aligned, so the identity stage sees what it would see with real models: consistent evidence per
person, different people far apart.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import supervision as sv

from facetrack.config import DetectorConfig
from facetrack.detect import to_detections
from facetrack.gallery import Gallery
from facetrack.sources import Frame, VideoInfo

CROP = 112
DIM = 32
# Landmarks of a frontal face, relative to its box: eyes, nose, mouth corners.
_FACE = np.array([[0.32, 0.38], [0.68, 0.38], [0.5, 0.56], [0.36, 0.76], [0.64, 0.76]], dtype=np.float32)


@dataclass(frozen=True)
class Face:
    person: int  # who it is (0…P-1); the embedding is that person's vector
    x: float  # top-left corner and side, in pixels
    y: float
    side: float = 80.0
    score: float = 0.9


def person_vector(person: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + person)
    vector = rng.normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


class ScriptedDetector:
    """Returns the faces scripted for each frame index (the image itself is not looked at)."""

    def __init__(self, script: list[list[Face]]) -> None:
        self.script = script
        self.input_size = (640, 640)
        self.config = DetectorConfig()

    def detect(self, image: np.ndarray, threshold: float | None = None, index: int | None = None) -> sv.Detections:
        """The scripted faces, from `threshold` up when one is given (near misses are asked for that way)."""
        faces = self.script[int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])] if index is None else self.script[index]
        if threshold is not None:
            faces = [f for f in faces if f.score >= threshold]
        if not faces:
            return to_detections(np.empty((0, 5), np.float32), None)
        boxes = np.array([[f.x, f.y, f.x + f.side, f.y + f.side, f.score] for f in faces], dtype=np.float32)
        marks = np.stack([_FACE * f.side + (f.x, f.y) for f in faces])
        return to_detections(boxes, marks)


class PersonEmbedder:
    """Aligns by painting the person's number into a textured crop; embeds by reading it back."""

    name = "scripted"
    dim = DIM
    fingerprint = "scripted-embedder"

    def __init__(self, script: list[list[Face]], noise: float = 0.05, seed: int = 0) -> None:
        self.script = script
        self.noise = noise
        self._rng = np.random.default_rng(seed)
        self._texture = np.random.default_rng(7).integers(0, 255, (CROP, CROP, 3), dtype=np.uint8)
        self.calls = 0

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        index = int(image[0, 0, 0]) + 256 * int(image[0, 0, 1])
        crops = []
        for marks in landmarks:
            face = min(self.script[index], key=lambda f: abs(f.x - (marks[2, 0] - 0.5 * f.side)))
            crop = self._texture.copy()
            crop[0, 0, 0] = face.person
            crops.append(crop)
        return np.stack(crops) if crops else np.empty((0, CROP, CROP, 3), np.uint8)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        vectors = np.stack([person_vector(int(c[0, 0, 0])) for c in crops]) if len(crops) else np.empty((0, DIM))
        vectors = vectors + self._rng.normal(scale=self.noise, size=vectors.shape)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def gallery_of(people: dict[str, int]) -> Gallery:
    """A gallery enrolling scripted people under names."""
    names = list(people)
    templates = np.stack([person_vector(people[n]) for n in names]) if names else np.empty((0, DIM), np.float32)
    return Gallery(names, np.arange(len(names)), templates, "scripted-embedder", "scripted")


def frames_of(script: list[list[Face]], times: list[float], size: tuple[int, int] = (360, 640)) -> list[Frame]:
    """Frames whose first pixel carries their script index (the fakes read it back)."""
    frames = []
    for index, pts in enumerate(times):
        image = np.zeros((*size, 3), np.uint8)
        image[0, 0, 0], image[0, 0, 1] = index % 256, index // 256
        frames.append(Frame(image, index, pts))
    return frames


class ScriptedSource:
    """A file-like source of scripted frames for the runner (every frame, in order; not live)."""

    live = False
    connected = True
    reconnects = 0
    last_reconnect_seconds: float | None = None
    error: str | None = None
    read_timeout = 0.0

    def __init__(self, frames: list[Frame], source_id: str = "0", fps: int = 30) -> None:
        self.frames = frames
        self.source_id = source_id
        self.path = Path(f"scripted-{source_id}.mp4")
        height, width = frames[0].image.shape[:2] if frames else (360, 640)
        self.info = VideoInfo(width, height, Fraction(fps), Fraction(1, fps), len(frames), False)
        self.decode_seconds = 0.0
        self.closed = False

    def __iter__(self) -> Iterator[Frame]:
        yield from self.frames

    @property
    def label(self) -> str:
        return str(self.path)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True
