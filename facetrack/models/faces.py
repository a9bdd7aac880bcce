"""The face models of a run, built in one place: `FaceModels.load(config)`.

The detector always; with identity on (a gallery, a recognizer, `identity.enabled` or a store), the recognizer
and the gallery (a photo folder enrolled once and cached, or a .db). Each file's role is checked against its
ONNX signature as it loads (`models/signature.py`). Several cameras share one `FaceModels`.
"""

from __future__ import annotations

from dataclasses import dataclass

from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.gallery import Enroller, Gallery, open_gallery
from facetrack.models.registry import cache_root, resolve_model


def identity_wanted(config: FacetrackConfig) -> bool:
    """Identity runs when asked for, or when something that needs it is given (gallery, recognizer, store)."""
    return (config.identity.enabled or config.identity.gallery is not None or config.models.recognizer is not None
            or config.store.path is not None)


@dataclass
class FaceModels:
    """Detector, recognizer (None: identity off) and gallery (None: strangers only)."""

    detector: FaceDetector
    embedder: FaceEmbedder | None = None
    gallery: Gallery | None = None

    @classmethod
    def load(cls, config: FacetrackConfig, *, identity: bool | None = None, gallery: bool = True,
             detector: FaceDetector | None = None) -> FaceModels:
        """The models `config` asks for; `identity` forces the recognizer on or off (default: `identity_wanted`);
        `gallery=False` leaves the gallery unopened (to enrol one); a `detector` already loaded is reused."""
        detector = detector or load_detector(config)
        if not (identity_wanted(config) if identity is None else identity):
            return cls(detector)
        embedder = FaceEmbedder(resolve_model("recognizer", config.models), config.runtime, config.embedding.max_batch)
        known = None
        if gallery and config.identity.gallery is not None:
            known = open_gallery(config.identity.gallery, Enroller(detector, embedder),
                                 cache_root(config.models).parent / "galleries")
        return cls(detector, embedder, known)

    @property
    def enroller(self) -> Enroller:
        """Detector and recognizer together, to enrol photos."""
        assert self.embedder is not None, "load with identity=True to enrol"
        return Enroller(self.detector, self.embedder)


def load_detector(config: FacetrackConfig) -> FaceDetector:
    return FaceDetector(resolve_model("detector", config.models), config.detector, config.runtime)
