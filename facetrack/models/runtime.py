"""onnxruntime sessions are created here and nowhere else: one place decides providers and says what runs."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from facetrack.config import RuntimeConfig
from facetrack.errors import FacetrackError

log = logging.getLogger(__name__)

# Short names accepted in config and on the command line.
PROVIDER_ALIASES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def resolve_providers(requested: str | list[str]) -> list[str]:
    """Turn `auto` or a list of short/long provider names into onnxruntime provider names, best first."""
    available = ort.get_available_providers()
    if requested == "auto":
        return [name for name in AUTO_ORDER if name in available] or ["CPUExecutionProvider"]
    names = [requested] if isinstance(requested, str) else list(requested)
    resolved = [PROVIDER_ALIASES.get(name.lower(), name) for name in names]
    if "CPUExecutionProvider" not in resolved:
        resolved.append("CPUExecutionProvider")  # the last resort onnxruntime always has
    return resolved


def create_session(path: Path, config: RuntimeConfig) -> ort.InferenceSession:
    """An inference session for the ONNX file at `path`; a file that is not a model gives a clear error."""
    options = ort.SessionOptions()
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    options.log_severity_level = 3  # onnxruntime's own warnings go to stderr unfiltered otherwise
    providers = [p for p in resolve_providers(config.providers) if p in ort.get_available_providers()]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises several private exception types for a bad file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FacetrackError(f"cannot load model {path}: not a valid ONNX model ({first_line[:160]})") from None
    log.info("%s runs on %s", path.name, ", ".join(session.get_providers()))
    return session
