"""Sections of the models and how they run: model files, onnxruntime providers, video decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from facetrack.config.base import Section


class ModelsConfig(Section):
    """Which model files to run. Explicit files win over the pack."""

    pack: str = Field("buffalo_l", description=(
        "Model pack: buffalo_l (SCRFD det_10g + ArcFace w600k_r50), buffalo_s or buffalo_sc; downloaded and "
        "verified on first use."))
    detector: Path | None = Field(None, description=(
        "An SCRFD detector .onnx file; wins over the pack's (or set FACETRACK_DETECTOR)."))
    recognizer: Path | None = Field(None, description=(
        "An ArcFace-family recognizer .onnx file; wins over the pack's (or set FACETRACK_RECOGNIZER)."))
    cache_dir: Path | None = Field(None, description=(
        "Where packs are kept; default $FACETRACK_HOME/models or ~/.cache/facetrack/models."))


PROVIDER_SHORT_NAMES = ("cpu", "cuda", "tensorrt")


class RuntimeConfig(Section):
    """How onnxruntime runs the models: which execution providers, and their GPU settings."""

    providers: Literal["auto"] | list[str] = Field("auto", description=(
        "\"auto\" picks TensorRT → CUDA → CPU from what onnxruntime offers; or an explicit list such as [\"cuda\", "
        "\"cpu\"] (short names cpu/cuda/tensorrt or onnxruntime's full names such as CUDAExecutionProvider)."))
    require_gpu: bool = Field(False, description=(
        "Refuse to start when no GPU provider runs, instead of warning and using the CPU."))
    intra_op_threads: int = Field(0, description="Threads per model inference; 0: onnxruntime's default (all cores).")
    allow_spinning: bool = Field(False, description=(
        "onnxruntime's worker threads busy-wait after each run by default; on a few cores that steals the CPU from the "
        "next stage (measured: a detection right after two embeddings took 55 ms instead of 31 ms)."))
    device_id: int = Field(0, ge=0, description="Which GPU, for CUDA and TensorRT.")
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field("HEURISTIC", description=(
        "cuDNN's convolution search: EXHAUSTIVE benchmarks every new input shape (a stall per new batch size), "
        "HEURISTIC picks at once, DEFAULT takes the first algorithm."))
    tensorrt_fp16: bool = Field(True, description=(
        "Half precision in TensorRT engines: faster on tensor-core GPUs."))
    tensorrt_cache_dir: Path | None = Field(None, description=(
        "Engines and timing cache; default $FACETRACK_HOME/trt-engines."))

    @field_validator("providers", mode="before")
    @classmethod
    def _provider_list(cls, value: object) -> object:
        # A single name or a comma-separated string is a list of one or more.
        if isinstance(value, str) and value.strip().lower() != "auto":
            value = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, str):
            return "auto"
        if isinstance(value, list):
            for name in value:
                if not isinstance(name, str) or not (
                        name.lower() in PROVIDER_SHORT_NAMES or name.endswith("ExecutionProvider")):
                    raise ValueError(f"unknown provider {name!r}: use auto, cpu, cuda, tensorrt, or an onnxruntime "
                                     "name such as CUDAExecutionProvider")
            if not value:
                raise ValueError("name at least one provider, or auto")
        return value

    @field_validator("cudnn_conv_algo_search", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DecodeConfig(Section):
    """How video is decoded."""

    hwaccel: Literal["none", "auto", "cuda"] = Field("none", description=(
        "Hardware decoding through FFmpeg: \"cuda\" (NVDEC) or \"auto\" (cuda where FFmpeg offers it); falls back to "
        "software decoding, saying so. Frames are copied back to memory either way."))
