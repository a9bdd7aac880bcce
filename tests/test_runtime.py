"""The execution path: which onnxruntime providers run, what is said when a GPU one cannot, TensorRT and CUDA
options, the I/O-bound embedder runner and hardware decoding, all checked with the real onnxruntime of this
install (on a CPU-only build the GPU providers are exactly what is missing)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from insightface.model_zoo.arcface_onnx import ArcFaceONNX

from facetrack.config import load_config
from facetrack.detect import LANDMARKS, FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.errors import FacetrackError
from facetrack.models import runtime
from facetrack.models.runtime import (
    CPU,
    CUDA,
    TENSORRT,
    create_session,
    describe_providers,
    model_inputs,
    provider_options,
    resolve_providers,
    run_with_binding,
)
from facetrack.sources import FileSource
from tests.conftest import run_cli

AVAILABLE = ort.get_available_providers()
cpu_only_build = pytest.mark.skipif(CUDA in AVAILABLE, reason="this onnxruntime has CUDA: nothing is missing")


@pytest.fixture
def dynbatch_path(assets: Path) -> Path:
    path = assets / "models/mobilefacenet_128_dynbatch.onnx"
    if not path.is_file():
        pytest.fail(f"test asset missing: {path}")
    return path


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the process as new: nothing warned about yet."""
    monkeypatch.setattr(runtime, "_warned", set())


def _runtime(**settings: object):  # type: ignore[no-untyped-def]
    return load_config(overrides={"runtime": settings}).runtime


def test_auto_takes_the_best_provider_this_onnxruntime_offers(recognizer_path: Path) -> None:
    best = next(p for p in (TENSORRT, CUDA, CPU) if p in AVAILABLE)
    resolved = resolve_providers("auto")
    assert resolved[0] == best and resolved[-1] == CPU
    assert set(resolved) <= set(AVAILABLE)
    session = create_session(recognizer_path, _runtime(providers="auto"))
    assert set(session.get_providers()) <= set(resolved)
    if best == CPU:
        assert session.get_providers() == [CPU]


def test_short_and_full_provider_names() -> None:
    assert resolve_providers(["cuda"]) == [CUDA, CPU]
    assert resolve_providers(["tensorrt"]) == [TENSORRT, CUDA, CPU]  # CUDA takes what TensorRT cannot
    assert resolve_providers(["CPUExecutionProvider"]) == [CPU]
    assert _runtime(providers="cuda, cpu").providers == ["cuda", "cpu"]
    with pytest.raises(FacetrackError, match="runtime.providers.*unknown provider 'cdua'"):
        _runtime(providers=["cdua"])


@cpu_only_build
@pytest.mark.parametrize("asked", [["cuda"], ["tensorrt"]])
def test_gpu_provider_missing_from_this_build_is_warned_once_and_cpu_runs(
        recognizer_path: Path, asked: list[str], fresh_warnings: None, caplog: pytest.LogCaptureFixture) -> None:
    config = _runtime(providers=asked)
    with caplog.at_level(logging.WARNING, logger="facetrack.models.runtime"):
        sessions = [create_session(recognizer_path, config) for _ in range(2)]
    for session in sessions:
        assert session.get_providers() == [CPU]
        out = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 112, 112), np.float32)})[0]
        assert out.shape == (1, 128)
    expected = [p for p in resolve_providers(asked) if p != CPU]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(expected)  # once per provider, not once per session
    for provider, message in zip(expected, warnings, strict=True):
        assert message.startswith(f"{provider} requested but this onnxruntime")
        assert "pip uninstall -y onnxruntime" in message and "onnxruntime-gpu" in message
        assert message.endswith("running on CPU")


@cpu_only_build
def test_require_gpu_refuses_to_run_on_the_cpu(recognizer_path: Path, fresh_warnings: None) -> None:
    with pytest.raises(FacetrackError, match="require_gpu.*offers only.*pip install --force-reinstall"):
        create_session(recognizer_path, _runtime(providers=["cuda"], require_gpu=True))
    with pytest.raises(FacetrackError, match="onnxruntime-gpu"):
        create_session(recognizer_path, _runtime(providers="auto", require_gpu=True))
    with pytest.raises(FacetrackError, match="asks for none: pass --providers"):
        create_session(recognizer_path, _runtime(providers=["cpu"], require_gpu=True))


def test_tensorrt_options_for_the_recognizer(dynbatch_path: Path, tmp_path: Path) -> None:
    name = ort.InferenceSession(str(dynbatch_path), providers=[CPU]).get_inputs()[0].name
    inputs = model_inputs(dynbatch_path)
    assert [n for n, _ in inputs] == [name]
    config = _runtime(tensorrt_fp16=True, tensorrt_cache_dir=str(tmp_path / "engines"), device_id=1)
    options = provider_options(TENSORRT, config, role="recognizer", inputs=inputs, input_size=(112, 112),
                               max_batch=24)
    assert options["trt_fp16_enable"] == "True" and options["device_id"] == "1"
    assert options["trt_engine_cache_enable"] == "True" and options["trt_timing_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == options["trt_timing_cache_path"] == str(tmp_path / "engines")
    assert options["trt_profile_min_shapes"] == f"{name}:1x3x112x112"
    assert options["trt_profile_max_shapes"] == f"{name}:24x3x112x112"  # the embedder's largest batch
    opt_batch = int(options["trt_profile_opt_shapes"].split(":")[1].split("x")[0])
    assert 1 <= opt_batch <= 24
    off = provider_options(TENSORRT, _runtime(tensorrt_fp16=False), role="recognizer", inputs=inputs,
                           input_size=(112, 112), max_batch=24)
    assert off["trt_fp16_enable"] == "False"


def test_tensorrt_engines_cached_under_facetrack_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path))
    options = provider_options(TENSORRT, _runtime())
    assert Path(options["trt_engine_cache_path"]) == tmp_path / "trt-engines"


def test_tensorrt_shapes_fixed_for_the_detector_and_left_alone_for_fixed_models(
        detector_path: Path, fast_detector_path: Path, recognizer_path: Path) -> None:
    inputs = model_inputs(detector_path)
    (name, shape), = inputs
    assert shape[2:] == [None, None]  # this export takes any size: TensorRT must be told the one we use
    config = _runtime()
    options = provider_options(TENSORRT, config, role="detector", inputs=inputs, input_size=(640, 480))
    for key in ("min", "opt", "max"):
        assert options[f"trt_profile_{key}_shapes"] == f"{name}:1x3x480x640"  # width 640, height 480
    for fixed in (fast_detector_path, recognizer_path):  # every axis fixed in the file: no profile needed
        options = provider_options(TENSORRT, config, role="detector", inputs=model_inputs(fixed),
                                   input_size=(640, 640))
        assert not any(key.startswith("trt_profile") for key in options)


def test_cuda_options_and_cpu_has_none() -> None:
    options = provider_options(CUDA, _runtime(cudnn_conv_algo_search="exhaustive", device_id=2))
    assert options == {"device_id": "2", "cudnn_conv_algo_search": "EXHAUSTIVE"}
    assert provider_options(CPU, _runtime()) == {}
    with pytest.raises(FacetrackError, match="cudnn_conv_algo_search"):
        _runtime(cudnn_conv_algo_search="fastest")


def test_bound_run_equals_plain_run(dynbatch_path: Path) -> None:
    session = create_session(dynbatch_path, _runtime(providers=["cpu"]), role="recognizer", input_size=(112, 112))
    batch = np.random.default_rng(0).uniform(-1, 1, (5, 3, 112, 112)).astype(np.float32)
    name = session.get_inputs()[0].name
    plain = session.run(None, {name: batch})[0]
    assert np.abs(run_with_binding(session, name, batch, device="cpu") - plain).max() < 1e-6
    assert np.array_equal(run_with_binding(session, name, batch), plain)


@pytest.fixture(scope="module")
def t1_faces(assets: Path, detector_path: Path) -> tuple[np.ndarray, np.ndarray]:
    config = load_config()
    image = cv2.imread(str(assets / "media/images/t1.jpg"))
    return image, FaceDetector(detector_path, config.detector, config.runtime).detect(image).data[LANDMARKS]


def test_batched_embeddings_through_the_runner_equal_one_crop_at_a_time(
        dynbatch_path: Path, t1_faces: tuple[np.ndarray, np.ndarray]) -> None:
    embedder = FaceEmbedder(dynbatch_path, _runtime(providers="auto"), max_batch=4)
    crops = embedder.align(*t1_faces)
    calls = embedder.calls
    batched = embedder.embed_crops(crops)
    assert embedder.calls == calls + 2  # six faces in batches of at most four
    single = np.concatenate([embedder.embed_crops(crops[i:i + 1]) for i in range(len(crops))])
    assert np.abs(batched - single).max() < 1e-5
    # InsightFace's own preprocessing and run give the same vectors: nothing was lost in the runner.
    reference = ArcFaceONNX(model_file=str(dynbatch_path),
                            session=ort.InferenceSession(str(dynbatch_path), providers=[CPU])).get_feat(list(crops))
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    assert np.abs(batched - reference).max() < 1e-5


def test_describe_providers_names_each_model_and_its_providers(recognizer_path: Path) -> None:
    session = create_session(recognizer_path, _runtime(), role="recognizer")
    line = describe_providers()
    assert f"recognizer {recognizer_path.name} on" in line and ort.__version__ in line
    assert runtime._short(session.get_providers()[0]) in line


@pytest.mark.parametrize("hwaccel", ["auto", "cuda"])
def test_hwaccel_falls_back_to_software_and_decodes_every_frame(
        clip_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, hwaccel: str) -> None:
    from facetrack import sources

    monkeypatch.setattr(sources.base, "_said", set())
    with caplog.at_level(logging.INFO, logger="facetrack.sources"):
        source = FileSource(clip_path, hwaccel=hwaccel)  # type: ignore[arg-type]
        pts = [frame.pts for frame in source]
    source.close()
    plain = FileSource(clip_path)
    assert pts == [frame.pts for frame in plain] and len(pts) == 275
    plain.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1  # one line says which decoder runs
    if source.decoder == "software":
        assert "decoding in software" in said[0] and f"decode.hwaccel: {hwaccel}" in said[0]
    else:
        assert "on the GPU" in said[0]


def test_hwaccel_setting_is_checked() -> None:
    assert load_config().decode.hwaccel == "none"
    with pytest.raises(FacetrackError, match="decode.hwaccel"):
        load_config(overrides={"decode": {"hwaccel": "nvdec"}})


@cpu_only_build
def test_cli_require_gpu_on_a_cpu_build_is_one_error_line(tmp_path: Path, clip_path: Path,
                                                          fast_detector_path: Path) -> None:
    out = tmp_path / "o.mp4"
    result = run_cli("annotate", clip_path, "-o", out, "--detector", fast_detector_path, "--providers", "cuda",
                     "--require-gpu")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "require-gpu" in lines[0]
    assert "onnxruntime-gpu" in lines[0]
    assert not out.exists()


def test_cli_providers_cpu_runs_and_says_so(tmp_path: Path, clip_path: Path, fast_detector_path: Path) -> None:
    events, config = tmp_path / "o.jsonl", tmp_path / "c.yaml"
    config.write_text("decode:\n  hwaccel: auto\n")
    result = run_cli("annotate", clip_path, "--events", events, "--detector", fast_detector_path, "--providers", "cpu",
                     "--config", config)
    assert result.returncode == 0, result.stderr
    assert f"detector {fast_detector_path.name} on CPU" in result.stderr
    assert "decoding in software" in result.stderr or "on the GPU" in result.stderr  # the decoder used is said
    frames = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "frame"]
    assert len(frames) == 275


def test_doctor_reports_what_auto_resolves_to() -> None:
    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    auto_line = next(line for line in result.stdout.splitlines() if line.startswith("auto resolves to"))
    assert auto_line.removeprefix("auto resolves to").split(",")[0].strip() == resolve_providers("auto")[0]
    assert ort.__version__ in result.stdout


@cpu_only_build
def test_doctor_require_gpu_fails_on_a_cpu_build() -> None:
    result = run_cli("doctor", "--providers", "cuda", "--require-gpu")
    assert result.returncode == 2
    assert sum(line.startswith("error: ") for line in result.stderr.splitlines()) == 1
    assert "CUDAExecutionProvider requested" in result.stderr


def test_annotate_says_what_each_model_runs_on(clip_run: dict, detector_path: Path, recognizer_path: Path) -> None:
    line = next(line for line in clip_run["stderr"].splitlines() if line.startswith("onnxruntime "))
    best = runtime._short(resolve_providers("auto")[0])
    assert f"detector {detector_path.name} on " in line
    assert f"recognizer {recognizer_path.name} on " in clip_run["stderr"]  # the line may wrap at the terminal width
    if best == "CPU":
        assert f"detector {detector_path.name} on CPU" in line


@pytest.mark.parametrize("spinning", [False, True])
def test_idle_worker_threads_do_not_spin_unless_asked(recognizer_path: Path, spinning: bool) -> None:
    config = load_config(None, {"runtime": {"allow_spinning": spinning}}).runtime
    session = create_session(recognizer_path, config)
    entry = session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
    assert entry == ("1" if spinning else "0")
