"""SCRFD face detection → `sv.Detections` with the 5 landmarks in `data["landmarks"]` (N×5×2).

InsightFace's `SCRFD` class does the decoding (anchors, strides, NMS); this wrapper validates the file, fixes the
input size (one pass per frame, never InsightFace's multi-size mode) and converts to supervision's type. Models
with a dynamic input see the frame's own aspect (`detector.keep_aspect`); a fixed-size model (such as
scrfd_500m_bnkps, 640×640) gets the frame letterboxed.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from insightface.model_zoo.scrfd import SCRFD

from facetrack.config import DetectorConfig, RuntimeConfig
from facetrack.models.runtime import create_session
from facetrack.models.signature import check_role
from facetrack.types import LANDMARKS, empty_faces

log = logging.getLogger(__name__)

_SCRFD_PARAMETERS = inspect.signature(SCRFD.__init__).parameters


class FaceDetector:
    """Finds faces and their 5 landmarks (eyes, nose, mouth corners) in a BGR image."""

    def __init__(self, model_path: Path, config: DetectorConfig, runtime: RuntimeConfig) -> None:
        session = create_session(model_path, runtime, role="detector", input_size=tuple(config.input_size))
        check_role(model_path, session, "detector")
        self.model_path = model_path
        self.config = config
        # InsightFace 2 builds one more session for every other input size (a follow mosaic, a photo) unless told
        # not to: building it costs as much as several detections, running it no less than the dynamic one.
        extra = {"static_shape_sessions": False} if "static_shape_sessions" in _SCRFD_PARAMETERS else {}
        self._scrfd = SCRFD(model_file=str(model_path), session=session, **extra)
        self._scrfd.prepare(0, input_size=tuple(config.input_size), det_thresh=config.score_threshold,
                            nms_thresh=config.nms_threshold)
        fixed = getattr(self._scrfd, "static_input_size", None)
        self.input_size: tuple[int, int] = tuple(fixed) if fixed else tuple(config.input_size)  # type: ignore[assignment]
        if fixed and tuple(fixed) != tuple(config.input_size):
            log.warning("%s has a fixed input size %s; detector.input_size %s is ignored",
                        model_path.name, tuple(fixed), tuple(config.input_size))
        self.session = session
        # The model takes any input size (multiples of 32). TensorRT engines are built for input_size alone, so
        # there the detector keeps that one shape.
        self.dynamic = not fixed and "TensorrtExecutionProvider" not in session.get_providers()
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def input_size_for(self, height: int, width: int) -> tuple[int, int]:
        """The detector input (width, height) for a frame: `input_size`, or with `keep_aspect` on a dynamic
        model the frame's aspect at the scale `input_size` would give, rounded up to multiples of 32."""
        key = (height, width)
        if key not in self._sizes:
            size = self.input_size
            if self.dynamic and self.config.keep_aspect:
                scale = self.scale_for(height, width)
                size = (min(size[0], _round_up(width * scale)), min(size[1], _round_up(height * scale)))
            self._sizes[key] = size
        return self._sizes[key]

    def scale_for(self, height: int, width: int) -> float:
        """Detector pixels per frame pixel of a full-frame detection."""
        return min(self.input_size[0] / width, self.input_size[1] / height)

    def detect(self, image: np.ndarray, threshold: float | None = None) -> sv.Detections:
        """Faces in `image` (BGR, H×W×3), highest score first; from `threshold` up (default `score_threshold`)."""
        image = _pad_extreme_aspect(image)
        return self.detect_at(image, self.input_size_for(*image.shape[:2]), threshold)

    def detect_at(self, image: np.ndarray, input_size: tuple[int, int],
                  threshold: float | None = None) -> sv.Detections:
        """Faces in `image` scaled to fit `input_size` (width, height; multiples of 32)."""
        return to_detections(*self.keep_large(*self.raw(image, input_size, threshold)))

    def raw(self, image: np.ndarray, input_size: tuple[int, int],
            threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """SCRFD's own output for `image` at `input_size`: N×5 boxes with scores, N×5×2 landmarks; faces from
        `threshold` up (default `score_threshold`)."""
        if threshold is None:
            boxes, landmarks = self._scrfd.detect(image, input_size=input_size)
        else:  # insightface before 2 takes no threshold per call: set the model's own for this call
            default, self._scrfd.det_thresh = self._scrfd.det_thresh, threshold
            try:
                boxes, landmarks = self._scrfd.detect(image, input_size=input_size)
            finally:
                self._scrfd.det_thresh = default
        return boxes, (landmarks if landmarks is not None else np.empty((0, 5, 2), np.float32))

    def keep_large(self, boxes: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drops the boxes under `min_face_size` (frame pixels)."""
        if len(boxes) and self.config.min_face_size:
            sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            keep = sides >= self.config.min_face_size
            boxes, landmarks = boxes[keep], landmarks[keep]
        return boxes, landmarks


    def detect_still(self, image: np.ndarray) -> sv.Detections:
        """Like `detect`, for photos: a face that fills the whole picture (a tight crop, an ID photo) is missed
        by SCRFD at its fixed input size, so a photo with no face is looked at again inside a wide border."""
        faces = self.detect(image)
        if len(faces):
            return faces
        height, width = image.shape[:2]
        border = max(height, width) // 2
        padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        faces = self.detect(padded)
        if len(faces):
            faces.xyxy -= border
            faces.data[LANDMARKS] -= border
        return faces


MAX_PHOTO_SIDE = 4000  # larger photos are decoded at 1/2…1/8: faces stay findable, memory stays bounded
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def read_photo(path: Path) -> tuple[np.ndarray, float] | None:
    """A still image as BGR, and the factor from its pixels back to the file's (1 unless it was reduced);
    None when the file is not a readable image."""
    try:
        probe = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)  # an eighth of the decoding work: the size
    except cv2.error:  # a side under 8 pixels cannot be reduced: such a photo is small anyway
        probe = np.zeros((1, 1, 3), np.uint8)
    if probe is None:
        return None
    side = 8 * max(probe.shape[:2])
    if side <= MAX_PHOTO_SIDE:
        image, factor = cv2.imread(str(path)), 1
    else:
        factor = next((f for f in _REDUCED if side / f <= MAX_PHOTO_SIDE), 8)
        image = probe if factor == 8 else cv2.imread(str(path), _REDUCED[factor])
    return (image, float(factor)) if image is not None else None


def _pad_extreme_aspect(image: np.ndarray, most: int = 16) -> np.ndarray:
    """A 2000×2 frame would shrink to zero rows at the detector's input size: pad its short side (bottom or
    right, so boxes keep their coordinates) to at least 1/`most` of the long side."""
    height, width = image.shape[:2]
    short = max(height, width) // most
    if height >= short and width >= short:
        return image
    return cv2.copyMakeBorder(image, 0, max(0, short - height), 0, max(0, short - width), cv2.BORDER_CONSTANT,
                              value=(0, 0, 0))


def _round_up(value: float, step: int = 32) -> int:
    return max(step, int(np.ceil(value / step - 1e-6)) * step)


def to_detections(boxes: np.ndarray, landmarks: np.ndarray | None) -> sv.Detections:
    """SCRFD's (N×5 box+score, N×5×2 landmarks) as `sv.Detections`; landmarks ride along in `.data`."""
    if len(boxes) == 0:
        return empty_faces()
    return sv.Detections(
        xyxy=boxes[:, :4].astype(np.float32),
        confidence=boxes[:, 4].astype(np.float32),
        class_id=np.zeros(len(boxes), dtype=int),
        data={LANDMARKS: np.asarray(landmarks, dtype=np.float32).reshape(-1, 5, 2)},
    )
