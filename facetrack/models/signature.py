"""What an ONNX face model is, read from its signature (inputs and outputs), in one place.

As InsightFace's `model_zoo` router does: an SCRFD detector has one image input and 9 or 15 outputs (3 or 5
strides × score, box, landmarks); an ArcFace-family recognizer has one 3×112×112 input and one output, the
embedding. A file given in the wrong role fails here, with the flag that fits, not with a shape error later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from facetrack.errors import FacetrackError

ModelRole = Literal["detector", "recognizer"]
CROP_SIZE = 112  # recognizers take aligned 112×112 crops
# SCRFD exports have 3 or 5 strides × (score, box[, landmarks]) outputs; 9 and 15 are the ones with landmarks.
_DETECTOR_OUTPUTS = (9, 15)


def is_dynamic(dim: object) -> bool:
    return not isinstance(dim, int) or dim <= 0


@dataclass(frozen=True)
class ModelSignature:
    role: ModelRole | None  # None: neither a face detector nor a face recognizer
    outputs: int
    batch_dynamic: bool  # the first input axis takes any batch size
    embedding_dim: int | None  # a recognizer's embedding size, where the graph fixes it

    @classmethod
    def of(cls, session: Any) -> ModelSignature:
        """The signature of an onnxruntime session's model."""
        inputs, outputs = session.get_inputs(), session.get_outputs()
        shape = list(inputs[0].shape) if inputs else []
        role: ModelRole | None = None
        if len(outputs) in _DETECTOR_OUTPUTS and len(shape) == 4:
            role = "detector"
        elif (len(inputs) == 1 and len(outputs) == 1 and len(shape) == 4 and shape[1] == 3
              and shape[2:] == [CROP_SIZE, CROP_SIZE]):
            role = "recognizer"
        dim = outputs[0].shape[-1] if role == "recognizer" else None
        return cls(role, len(outputs), bool(shape) and is_dynamic(shape[0]),
                   None if dim is None or is_dynamic(dim) else int(dim))


def check_role(path: Path, session: Any, role: ModelRole) -> ModelSignature:
    """The model's signature; a `FacetrackError` naming the right flag when it is not a model for `role`."""
    signature = ModelSignature.of(session)
    if signature.role == role:
        return signature
    if role == "detector":
        hint = " (it looks like a face recognizer: pass it to --recognizer)" if signature.outputs == 1 else ""
        raise FacetrackError(f"{path} is not an SCRFD face detector with 5 landmarks{hint}: "
                             "pass an InsightFace SCRFD model such as det_10g.onnx to --detector")
    hint = " (it looks like a face detector: pass it to --detector)" if signature.outputs >= 6 else ""
    raise FacetrackError(f"{path} is not an ArcFace-family face recognizer with 112×112 input{hint}: "
                         "pass a model such as w600k_r50.onnx to --recognizer")
