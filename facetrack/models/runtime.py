"""onnxruntime sessions are created here and nowhere else: one place decides providers and says what runs.

`auto` takes TensorRT → CUDA → CPU from what this onnxruntime build offers; an explicit list is kept in its order.
Once a session is up, what runs is compared with what was asked: a provider missing from this build, or one that
failed to start, is said aloud once per process with the fix, or refused when `runtime.require_gpu` is set.
TensorRT engines are built with explicit shapes and cached on disk; CUDA gets the recognizer's batches through
I/O binding (`run_with_binding`).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort

from facetrack.config import RuntimeConfig
from facetrack.errors import FacetrackError
from facetrack.models.registry import facetrack_home
from facetrack.private import private_dir

log = logging.getLogger(__name__)

Role = Literal["detector", "recognizer"]
Shape = Sequence[int | None]  # None: a dynamic axis

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
# Short names accepted in config and on the command line.
PROVIDER_ALIASES: dict[str, str] = {"tensorrt": TENSORRT, "cuda": CUDA, "cpu": CPU}
AUTO_ORDER = (TENSORRT, CUDA, CPU)
GPU_PROVIDERS = frozenset({TENSORRT, CUDA, "MIGraphXExecutionProvider", "ROCMExecutionProvider",
                           "DmlExecutionProvider"})
# Distributions that all install the same `onnxruntime` module: two at once overwrite each other's files.
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                     "onnxruntime-rocm")
INSTALL_GPU = ("`pip uninstall -y onnxruntime && pip install --force-reinstall --no-deps onnxruntime-gpu` "
               "(needs an NVIDIA driver, CUDA and cuDNN 9: see the README's GPU section)")
_START_HINTS = {
    CUDA: ("no NVIDIA GPU is visible, or the CUDA/cuDNN 9 libraries this onnxruntime-gpu needs were not found: "
           "check `nvidia-smi`, then `pip install \"onnxruntime-gpu[cuda,cudnn]\"` or put CUDA's and cuDNN's lib "
           "folders on LD_LIBRARY_PATH"),
    TENSORRT: ("the TensorRT libraries (libnvinfer) were not found or do not match this onnxruntime-gpu: install "
               "the TensorRT version its release notes name (`pip install tensorrt`) and put its lib folder on "
               "LD_LIBRARY_PATH, or set runtime.providers: [cuda] to skip TensorRT"),
}

_warned: set[str] = set()  # providers already warned about in this process
_engine_notice_given = False
_preload_notes: list[str] | None = None
_running: dict[str, tuple[str, list[str]]] = {}  # role (or file name) → (model file name, providers that run it)


# --- which providers ---------------------------------------------------------------------------------------------

def resolve_providers(requested: str | Sequence[str]) -> list[str]:
    """Provider names asked for, best first: `auto` → what this onnxruntime offers of TensorRT, CUDA, CPU.

    TensorRT brings CUDA along (for the nodes TensorRT cannot take) and the CPU is always the last resort.
    """
    available = ort.get_available_providers()
    if requested == "auto":
        return [name for name in AUTO_ORDER if name in available] or [CPU]
    names = [requested] if isinstance(requested, str) else list(requested)
    resolved: list[str] = []
    for name in names:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in resolved:
            resolved.append(full)
        if full == TENSORRT and not any(PROVIDER_ALIASES.get(n.lower(), n) == CUDA for n in names):
            resolved.append(CUDA)
    if CPU not in resolved:
        resolved.append(CPU)
    return resolved


def tensorrt_cache_dir(config: RuntimeConfig) -> Path:
    """Where TensorRT engines and the timing cache live: the config, else $FACETRACK_HOME/trt-engines."""
    if config.tensorrt_cache_dir is not None:
        return config.tensorrt_cache_dir.expanduser()
    return facetrack_home() / "trt-engines"


def model_inputs(path: Path) -> list[tuple[str, list[int | None]]]:
    """The model's inputs (name, shape with None for dynamic axes), read from the file without running it."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf's decode errors have no common public type
        raise _load_error(path, exc) from None
    weights = {init.name for init in graph.initializer}  # old exports also list weights as inputs
    return [(value.name, [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                          for d in value.type.tensor_type.shape.dim])
            for value in graph.input if value.name not in weights]


def tensorrt_profile(role: Role | None, inputs: Sequence[tuple[str, Shape]], input_size: tuple[int, int] | None,
                     max_batch: int = 1) -> dict[str, str]:
    """TensorRT optimisation-profile shapes for the dynamic axes of NCHW image inputs; {} when all axes are fixed.

    The detector runs one frame at its configured size: one fixed shape. The recognizer runs batches of 1 to
    `max_batch` crops. Without explicit shapes TensorRT would rebuild its engine whenever a larger shape arrives.
    """
    if role is None or input_size is None or not any(None in shape for _, shape in inputs):
        return {}
    width, height = input_size
    top = max(1, max_batch) if role == "recognizer" else 1
    batches = {"min": 1, "opt": min(top, 8), "max": top}  # a few faces per call is the common case
    profile: dict[str, list[str]] = {key: [] for key in batches}
    for name, shape in inputs:
        if len(shape) != 4:
            return {}  # not an image input we know how to fill: TensorRT works the shapes out at run time
        for key, batch in batches.items():
            dims = [dim if dim is not None else fill for dim, fill in zip(shape, (batch, 3, height, width),
                                                                          strict=True)]
            profile[key].append(f"{name}:{'x'.join(str(d) for d in dims)}")
    return {f"trt_profile_{key}_shapes": ",".join(specs) for key, specs in profile.items()}


def provider_options(provider: str, config: RuntimeConfig, *, role: Role | None = None,
                     inputs: Sequence[tuple[str, Shape]] = (), input_size: tuple[int, int] | None = None,
                     max_batch: int = 1) -> dict[str, str]:
    """onnxruntime's options for one provider (a pure function: nothing is created or loaded)."""
    if provider == CUDA:
        return {"device_id": str(config.device_id), "cudnn_conv_algo_search": config.cudnn_conv_algo_search}
    if provider == TENSORRT:
        cache = str(tensorrt_cache_dir(config))
        return {
            "device_id": str(config.device_id),
            "trt_fp16_enable": str(config.tensorrt_fp16),
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True",  # layer timings shared by every engine built on this GPU
            "trt_timing_cache_path": cache,
            **tensorrt_profile(role, inputs, input_size, max_batch),
        }
    return {}


# --- sessions ----------------------------------------------------------------------------------------------------

def create_session(path: Path, config: RuntimeConfig, *, role: Role | None = None,
                   input_size: tuple[int, int] | None = None, max_batch: int = 1) -> ort.InferenceSession:
    """An inference session for the ONNX file at `path` on the configured providers.

    `role`, `input_size` (width, height) and `max_batch` give TensorRT the shapes to build its engine for. A file
    that is not a model gives a clear error; a provider that does not run is said aloud (or refused).
    """
    asked = resolve_providers(config.providers)
    available = ort.get_available_providers()
    usable = [p for p in asked if p in available]
    if config.require_gpu and not GPU_PROVIDERS.intersection(usable):
        raise FacetrackError(_no_gpu_message(config, asked, available, usable, path))
    if GPU_PROVIDERS.intersection(usable):
        _preload_gpu_libraries()
    inputs: list[tuple[str, list[int | None]]] = []
    if TENSORRT in usable:
        inputs = model_inputs(path)
        _prepare_engine_cache(tensorrt_cache_dir(config))
    providers = [(p, provider_options(p, config, role=role, inputs=inputs, input_size=input_size,
                                      max_batch=max_batch)) for p in usable]
    options = ort.SessionOptions()
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.allow_spinning else "0")
    options.log_severity_level = 3  # onnxruntime's own warnings go to stderr unfiltered otherwise
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises several private exception types for a bad file
        raise _load_error(path, exc) from None
    running = session.get_providers()
    problems = provider_problems(asked, available, running, auto=config.providers == "auto")
    if config.require_gpu and not GPU_PROVIDERS.intersection(running):
        raise FacetrackError(_no_gpu_message(config, asked, available, running, path, problems))
    for provider, message in problems.items():
        if provider not in _warned:
            _warned.add(provider)
            log.warning("%s", message)
    _running[role or path.name] = (path.name, running)
    log.info("%s runs on %s", path.name, ", ".join(running))
    return session


def provider_problems(asked: Sequence[str], available: Sequence[str], running: Sequence[str],
                      auto: bool = False) -> dict[str, str]:
    """For each provider asked for that does not run: why, and the fix (one line each)."""
    problems: dict[str, str] = {}
    fallback = _short(running[0]) if running else "nothing"
    for provider in asked:
        if provider in running or provider == CPU:
            continue
        if provider not in available:
            offered = ", ".join(_short(p) for p in available)
            fix = INSTALL_GPU if provider in (CUDA, TENSORRT) else "install the onnxruntime package that has it"
            problems[provider] = (f"{provider} requested but this onnxruntime ({_package()} {ort.__version__}) "
                                  f"offers only {offered}: {fix}; running on {fallback}")
            continue
        hint = _START_HINTS.get(provider, "see onnxruntime's messages above")
        notes = f" ({'; '.join(_preload_notes)})" if provider == CUDA and _preload_notes else ""
        prefix = "auto: " if auto else ""
        problems[provider] = (f"{prefix}{provider} is installed but did not start{notes}: {hint}; "
                              f"running on {fallback}")
    return problems


def _no_gpu_message(config: RuntimeConfig, asked: Sequence[str], available: Sequence[str],
                    running: Sequence[str], path: Path, problems: dict[str, str] | None = None) -> str:
    head = f"no GPU provider runs {path.name} and require_gpu is set (--require-gpu)"
    if not GPU_PROVIDERS.intersection(asked) and config.providers != "auto":
        return f"{head}, but runtime.providers asks for none: pass --providers auto, cuda or tensorrt"
    if not GPU_PROVIDERS.intersection(available):
        offered = ", ".join(_short(p) for p in available)
        return f"{head}: this onnxruntime ({_package()} {ort.__version__}) offers only {offered}: {INSTALL_GPU}"
    reasons = problems or provider_problems(asked, available, running)
    return (f"{head}: " + " | ".join(reasons.values())) if reasons else head


def _load_error(path: Path, exc: Exception) -> FacetrackError:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FacetrackError(f"cannot load model {path}: not a valid ONNX model ({first_line[:160]})")


def _preload_gpu_libraries() -> None:
    """onnxruntime-gpu finds CUDA and cuDNN installed as pip packages only once they are preloaded (≥ 1.21)."""
    global _preload_notes
    if _preload_notes is not None or not hasattr(ort, "preload_dlls"):
        return
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # it prints its complaints; keep them for our own message
        try:
            ort.preload_dlls()
        except Exception as exc:  # a missing folder or library: the session start below says what runs
            print(exc)
    _preload_notes = [line.strip() for line in printed.getvalue().splitlines() if line.strip()][:3]
    for note in _preload_notes:
        log.info("onnxruntime.preload_dlls: %s", note)


def _prepare_engine_cache(cache: Path) -> None:
    global _engine_notice_given
    try:
        private_dir(cache)
    except OSError as exc:
        raise FacetrackError(f"cannot create the TensorRT engine cache {cache} ({exc.strerror}): set "
                             "runtime.tensorrt_cache_dir to a writable folder") from None
    if not _engine_notice_given and not any(cache.glob("*.engine")):
        _engine_notice_given = True
        log.warning("building TensorRT engines, first run takes minutes; cached in %s", cache)


def run_with_binding(session: ort.InferenceSession, input_name: str, array: np.ndarray,
                     device: str | None = None) -> np.ndarray:
    """The session's first output for `array`.

    Where CUDA runs (alone or under TensorRT) the input is bound once and the output allocated on the GPU, so a
    batch crosses to the device in one copy; elsewhere a plain `run`. `device` forces the bound path.
    """
    running = session.get_providers()
    if device is None:
        if not {CUDA, TENSORRT}.intersection(running):
            return session.run(None, {input_name: array})[0]
        device = "cuda"
    device_id = 0
    if device == "cuda":
        gpu_options = session.get_provider_options()
        device_id = int((gpu_options.get(CUDA) or gpu_options.get(TENSORRT) or {}).get("device_id", 0))
    binding = session.io_binding()
    binding.bind_cpu_input(input_name, np.ascontiguousarray(array))
    binding.bind_output(session.get_outputs()[0].name, device, device_id)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


# --- saying what runs --------------------------------------------------------------------------------------------

def describe_providers() -> str:
    """One line: this onnxruntime, and the providers each model loaded so far runs on."""
    models = "; ".join(f"{role if role != name else 'model'} {name} on {', '.join(_short(p) for p in running)}"
                       for role, (name, running) in _running.items())
    return f"onnxruntime {ort.__version__} ({_package()}): {models or 'no model loaded yet'}"


def _short(provider: str) -> str:
    return {TENSORRT: "TensorRT", CUDA: "CUDA", CPU: "CPU"}.get(provider, provider.removesuffix("ExecutionProvider"))


def _package() -> str:
    return getattr(ort, "package_name", None) or "onnxruntime"


def installed_distributions() -> dict[str, str]:
    """onnxruntime distributions installed here (name → version); more than one is a broken install."""
    found: dict[str, str] = {}
    for name in ORT_DISTRIBUTIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


@dataclass
class Diagnosis:
    """What `facetrack doctor` reports about onnxruntime and its providers."""

    package: str
    version: str
    cuda_version: str | None
    distributions: dict[str, str]
    available: list[str]
    auto: list[str]
    asked: list[str]
    running: list[str]  # what a real session on the configured providers started
    tensorrt_cache: Path
    engines: int
    problems: list[str] = field(default_factory=list)

    @property
    def gpu(self) -> bool:
        return bool(GPU_PROVIDERS.intersection(self.running))


def _probe_model() -> bytes:
    """A one-node model: enough for onnxruntime to start each provider, as a real model would."""
    tensor = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [1, 8]) for n in ("x", "y")]
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "probe", [tensor[0]], [tensor[1]])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime this package supports
    return model.SerializeToString()


def diagnose(config: RuntimeConfig) -> Diagnosis:
    """Which onnxruntime is installed, what it offers, and what a session on the configured providers runs on."""
    available = ort.get_available_providers()
    asked = resolve_providers(config.providers)
    usable = [p for p in asked if p in available]
    if GPU_PROVIDERS.intersection(usable):
        _preload_gpu_libraries()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    providers = [(p, {"device_id": str(config.device_id)} if p in (CUDA, TENSORRT) else {}) for p in usable]
    running = ort.InferenceSession(_probe_model(), sess_options=options, providers=providers).get_providers()
    problems = list(provider_problems(asked, available, running, auto=config.providers == "auto").values())
    distributions = installed_distributions()
    if len(distributions) > 1:
        names = ", ".join(f"{n} {v}" for n, v in distributions.items())
        problems.append(f"several onnxruntime packages are installed ({names}); they overwrite each other's files: "
                        "keep one, e.g. `pip uninstall -y onnxruntime && pip install --force-reinstall --no-deps "
                        "onnxruntime-gpu`")
    if not GPU_PROVIDERS.intersection(available) and not any(INSTALL_GPU in p for p in problems):
        problems.append(f"this onnxruntime has no GPU provider, so models run on the CPU; for an NVIDIA GPU: "
                        f"{INSTALL_GPU}")
    cache = tensorrt_cache_dir(config)
    engines = sum(1 for _ in cache.glob("*.engine")) if cache.is_dir() else 0
    return Diagnosis(_package(), ort.__version__, getattr(ort, "cuda_version", None) or None, distributions,
                     available, resolve_providers("auto"), asked, running, cache, engines, problems)
