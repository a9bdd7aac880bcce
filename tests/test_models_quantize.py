"""`facetrack models quantize`: an int8 copy of the small detector, calibrated on a few frames of the clip, that
`FaceDetector` loads and that still finds the clip's faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from tests.conftest import run_cli, run_cli_here


@pytest.fixture(scope="module")
def int8_detector(tmp_path_factory: pytest.TempPathFactory, fast_detector_path: Path, clip_path: Path) -> dict:
    target = tmp_path_factory.mktemp("quantize") / "scrfd_500m_int8.onnx"
    result = run_cli("models", "quantize", fast_detector_path, "-o", target, "--calibrate", clip_path,
                     "--frames", "3", timeout=240)
    return {"result": result, "path": target}


def test_int8_copy_is_written_smaller_and_said(int8_detector: dict, fast_detector_path: Path) -> None:
    result = int8_detector["result"]
    assert result.returncode == 0, result.stderr
    assert "int8, calibrated on 3 frames" in result.stdout
    assert int8_detector["path"].stat().st_size < fast_detector_path.stat().st_size / 2


def test_int8_detector_finds_the_faces_the_float_one_finds(int8_detector: dict, fast_detector_path: Path,
                                                           clip_path: Path) -> None:
    from facetrack.config import load_config
    from facetrack.detect import FaceDetector
    from facetrack.models.quantize import sample_frames

    assert int8_detector["result"].returncode == 0, int8_detector["result"].stderr
    config = load_config(None)
    exact = FaceDetector(fast_detector_path, config.detector, config.runtime)
    int8 = FaceDetector(int8_detector["path"], config.detector, config.runtime)
    found = matched = 0
    for image in sample_frames(clip_path, 6):
        reference, faces = exact.detect(image), int8.detect(image)
        confident = reference[reference.confidence >= 0.6]
        found += len(confident)
        if len(confident) and len(faces):
            matched += int((sv.box_iou_batch(confident.xyxy, faces.xyxy).max(axis=1) >= 0.5).sum())
        if len(faces):
            assert faces.data["landmarks"].shape == (len(faces), 5, 2)
            assert np.isfinite(faces.xyxy).all()
    assert found >= 4
    assert matched >= 0.75 * found  # the confident faces survive int8


def test_not_a_model_is_one_line_error(tmp_path: Path, clip_path: Path) -> None:
    bogus = tmp_path / "notes.onnx"
    bogus.write_text("not a model")
    result = run_cli_here("models", "quantize", bogus, "-o", tmp_path / "out.onnx", "--calibrate", clip_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "notes.onnx" in result.stderr
