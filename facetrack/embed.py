"""Face embeddings: align each face on its 5 landmarks to 112×112, run an ArcFace-family ONNX model, L2-normalise.

Alignment is InsightFace's `face_align.norm_crop`; the model's preprocessing (mean/std, MXNet-style graphs) is
read by InsightFace's `ArcFaceONNX`. What is added here: validation of the file, the embedding size read from
the model, batching (one call for many faces where the batch axis is dynamic), and a per-face quality score
that the scheduler and the identity stage weigh evidence by.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.utils import face_align

from facetrack.config import RuntimeConfig
from facetrack.models.registry import sha256_of
from facetrack.models.runtime import create_session, run_with_binding
from facetrack.models.signature import CROP_SIZE, check_role

# scikit-image 0.26 deprecates the call InsightFace's norm_crop makes; the result is unchanged.
warnings.filterwarnings("ignore", category=FutureWarning, module="insightface.utils.face_align")


class FaceEmbedder:
    """Turns aligned face crops into unit-length embedding vectors."""

    def __init__(self, model_path: Path, runtime: RuntimeConfig, max_batch: int = 32) -> None:
        session = create_session(model_path, runtime, role="recognizer", input_size=(CROP_SIZE, CROP_SIZE),
                                 max_batch=max_batch)
        signature = check_role(model_path, session, "recognizer")
        self.model_path = model_path
        self.session = session
        self._model = ArcFaceONNX(model_file=str(model_path), session=session)
        # A fixed batch axis of 1 (many small exports) means one call per face; dynamic means one call in all.
        self.batchable = signature.batch_dynamic
        self.max_batch = max_batch if self.batchable else 1
        self.dim = signature.embedding_dim or self._embed_batch(
            np.zeros((1, CROP_SIZE, CROP_SIZE, 3), np.uint8)).shape[1]
        self.fingerprint = model_fingerprint(model_path)
        self.calls = 0  # inference calls made, for the stats

    @property
    def name(self) -> str:
        return self.model_path.stem

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """N×112×112×3 BGR crops, one per face (landmarks N×5×2 in image pixels)."""
        if len(landmarks) == 0:
            return np.empty((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
        return np.stack([face_align.norm_crop(image, points, image_size=CROP_SIZE) for points in landmarks])

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """N×D float32 unit vectors for N aligned crops."""
        if len(crops) == 0:
            return np.empty((0, self.dim), np.float32)
        parts = [self._embed_batch(crops[i:i + self.max_batch]) for i in range(0, len(crops), self.max_batch)]
        vectors = np.concatenate(parts).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def _embed_batch(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        # ArcFaceONNX's own preprocessing (mean/std read from the graph); the runner binds the batch on CUDA.
        model = self._model
        blob = cv2.dnn.blobFromImages(list(crops), 1.0 / model.input_std, tuple(model.input_size),
                                      (model.input_mean,) * 3, swapRB=True)
        dtype = np.float16 if self.session.get_inputs()[0].type == "tensor(float16)" else np.float32
        out = run_with_binding(self.session, model.input_name, np.ascontiguousarray(blob, dtype=dtype))
        return np.asarray(out, dtype=np.float32).reshape(len(crops), -1)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.embed_crops(self.align(image, landmarks))


def model_fingerprint(path: Path) -> str:
    """SHA-256 of the model file: a gallery is only ever compared with embeddings of the same model."""
    return sha256_of(path)


@dataclass(frozen=True)
class FaceQuality:
    """How far a face can be trusted for identity, in [0, 1] overall."""

    size: float  # shorter side of the box, pixels
    frontal: float  # 1 = frontal, 0 = full profile (from the landmarks' symmetry)
    sharpness: float | None = None  # variance of the Laplacian of the aligned crop; None: not looked at yet

    @property
    def view(self) -> float:
        """Size and pose alone: known from the landmarks, before any crop is made."""
        size_term = min(1.0, self.size / 80.0)  # faces of 80 px and more are as good as it gets here
        return float(size_term * (0.3 + 0.7 * self.frontal))

    @property
    def score(self) -> float:
        sharp_term = 1.0 if self.sharpness is None else min(1.0, self.sharpness / 150.0)
        return self.view * (0.5 + 0.5 * sharp_term)


def frontalness(landmarks: np.ndarray) -> np.ndarray:
    """Per face, 1 when the nose sits midway between the eyes, 0.5 when it is in line with one eye (a three-quarter
    view), 0 at full profile."""
    left_eye, right_eye, nose = landmarks[:, 0], landmarks[:, 1], landmarks[:, 2]
    eye_span = np.linalg.norm(right_eye - left_eye, axis=1)
    along = np.einsum("ij,ij->i", nose - left_eye, right_eye - left_eye) / np.maximum(eye_span**2, 1e-6)
    return np.clip(1.0 - np.abs(along - 0.5), 0.0, 1.0)


def sharpness(crops: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian per crop: low for blurred or out-of-focus faces."""
    return np.array([cv2.Laplacian(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for c in crops])


def face_quality(boxes: np.ndarray, landmarks: np.ndarray, crops: np.ndarray | None = None) -> list[FaceQuality]:
    """Quality per face; sharpness only where the aligned crops are given."""
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    fronts = frontalness(landmarks)
    sharp: list[float | None] = [float(v) for v in sharpness(crops)] if crops is not None else [None] * len(boxes)
    return [FaceQuality(float(s), float(f), h) for s, f, h in zip(sizes, fronts, sharp, strict=True)]
