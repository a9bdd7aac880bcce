"""`facetrack models quantize`: an int8 copy of a detector or recognizer, calibrated on the user's own footage.

onnxruntime's static quantization (QDQ format: int8 weights per output channel, uint8 activations) needs the
range of every activation; those come from running the float model on frames of a video the model will see:
whole frames at the detector's input size for an SCRFD detector, aligned 112×112 faces (found by a detector on
the same frames) for an ArcFace-family recognizer. The result is an ordinary ONNX file that `--detector` or
`--recognizer` takes like any other.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from facetrack.config import FacetrackConfig
from facetrack.errors import FacetrackError

log = logging.getLogger(__name__)

Role = Literal["detector", "recognizer"]
MIN_OPSET = 13


@dataclass
class QuantizeResult:
    role: Role
    output: Path
    samples: int  # calibration inputs (frames for a detector, faces for a recognizer)
    frames: int  # video frames looked at
    size_before: int  # bytes
    size_after: int


def _require_quantization() -> None:
    """onnx is one of facetrack's own dependencies, and onnxruntime ships its quantization tools; an install that
    lost either (a CPU-less onnxruntime build, a broken environment) is told what to reinstall."""
    try:
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        raise FacetrackError(f"int8 quantization needs onnx and onnxruntime's quantization tools ({exc}): "
                             "pip install --force-reinstall onnx onnxruntime") from None


def model_role(path: Path) -> Role:
    """Whether the ONNX file at `path` is an SCRFD detector or an ArcFace-family recognizer (by its outputs)."""
    import onnxruntime as ort

    if not path.is_file():
        raise FacetrackError(f"model {path} does not exist: pass an ONNX detector or recognizer file")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises several private exception types for a bad file
        raise FacetrackError(f"{path} is not an ONNX model onnxruntime can load: pass a detector or recognizer "
                             ".onnx file") from None
    outputs, inputs = session.get_outputs(), session.get_inputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    if len(outputs) in (6, 9, 10, 15) and len(shape) == 4:
        return "detector"
    if len(outputs) == 1 and len(shape) == 4 and shape[2:] == [112, 112]:
        return "recognizer"
    raise FacetrackError(f"{path} is neither an SCRFD face detector nor a 112×112 face recognizer: only those "
                         "can be quantized")


def sample_frames(video: Path, count: int) -> list[np.ndarray]:
    """`count` frames spread evenly over `video` (BGR)."""
    from facetrack.sources import FileSource

    source = FileSource(video)
    try:
        total = source.info.frame_count
        step = max(1, total // count) if total else 1
        images = [frame.image for n, frame in enumerate(source) if n % step == 0]
    finally:
        source.close()
    if not images:
        raise FacetrackError(f"--calibrate {video} has no frames to calibrate on: pass a video with some")
    return images[:count]


def quantize_model(model: Path, output: Path, video: Path, config: FacetrackConfig, frames: int = 32,
                   detector: Path | None = None) -> QuantizeResult:
    """Write an int8 copy of `model` to `output`, calibrated on `frames` frames of `video`.

    A recognizer is calibrated on the faces `detector` (default: the configured one) finds in those frames."""
    _require_quantization()
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if output.resolve() == model.resolve():
        raise FacetrackError(f"-o {output} is the model itself: pass another file for the int8 copy")
    role = model_role(model)
    images = sample_frames(video, frames)
    blobs = _detector_blobs(model, images, config) if role == "detector" else _face_blobs(
        model, images, config, detector, video)
    input_name = _input_name(model)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items: Iterator[np.ndarray] = iter(blobs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(self._items, None)
            return None if blob is None else {input_name: blob}

        def rewind(self) -> None:
            self._items = iter(blobs)

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = _preprocessed(model, Path(tmp))
        quantize_static(str(source), str(output), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm", "Add", "Mul", "Relu", "PRelu",
                                              "LeakyRelu", "Sigmoid", "Concat", "Resize", "MaxPool",
                                              "AveragePool", "GlobalAveragePool"],
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    return QuantizeResult(role, output, len(blobs), len(images), model.stat().st_size, output.stat().st_size)


def _input_name(model: Path) -> str:
    import onnxruntime as ort

    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()[0].name


def _preprocessed(model: Path, folder: Path) -> Path:
    """The model ready to quantize: at opset 13 at least (int8 weights per output channel need it; older SCRFD
    and ArcFace exports are at 9–11), after onnxruntime's pre-quantization pass (shape inference, graph
    optimisation) where that pass can run on it."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = model
    graph = onnx.load(str(model))
    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        source = folder / "opset.onnx"
        onnx.save(version_converter.convert_version(graph, MIN_OPSET), str(source))
    target = folder / "pre.onnx"
    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    except Exception as exc:  # the pass is an optimisation: quantizing works without it
        log.info("pre-quantization pass skipped for %s: %s", model.name, exc)
        return source
    return target


def _detector_blobs(model: Path, images: list[np.ndarray], config: FacetrackConfig) -> list[np.ndarray]:
    """SCRFD's own input for each frame: the frame at the detector's input size (its aspect kept where the model
    allows it, else letterboxed), normalised as InsightFace's SCRFD does."""
    from facetrack.detect import FaceDetector

    detector = FaceDetector(model, config.detector, config.runtime)
    blobs = []
    for image in images:
        width, height = detector.input_size_for(*image.shape[:2])
        scale = min(width / image.shape[1], height / image.shape[0])
        resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[:resized.shape[0], :resized.shape[1]] = resized
        blobs.append(cv2.dnn.blobFromImage(canvas, 1.0 / 128, (width, height), (127.5, 127.5, 127.5), swapRB=True))
    return blobs


def _face_blobs(model: Path, images: list[np.ndarray], config: FacetrackConfig, detector_path: Path | None,
                video: Path) -> list[np.ndarray]:
    """The recognizer's input for each face found in the frames: aligned 112×112 crops normalised as the
    embedder normalises them for this model, one blob a face."""
    from facetrack.detect import FaceDetector
    from facetrack.embed import FaceEmbedder
    from facetrack.models.registry import resolve_model
    from facetrack.types import LANDMARKS

    embedder = FaceEmbedder(model, config.runtime)
    mean, std = embedder._model.input_mean, embedder._model.input_std
    detector = FaceDetector(detector_path or resolve_model("detector", config.models), config.detector,
                            config.runtime)
    blobs = []
    for image in images:
        faces = detector.detect(image)
        if not len(faces):
            continue
        for crop in embedder.align(image, faces.data[LANDMARKS]):
            blobs.append(cv2.dnn.blobFromImage(crop, 1.0 / std, (112, 112), (mean,) * 3, swapRB=True))
    if not blobs:
        raise FacetrackError(f"--calibrate {video}: no face found in {len(images)} frames to calibrate a recognizer "
                             "on: pass footage with faces in it")
    return blobs
