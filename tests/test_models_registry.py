"""The model registry: explicit files win, the cache and InsightFace's folder are reused, downloads are
checked before anything is installed, and a missing model offline says which file and how to supply it."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrack.config import ModelsConfig
from facetrack.errors import FacetrackError
from facetrack.models.registry import PACKS, download_pack, resolve_model, verify_pack
from loopback import serve_folder
from tests.conftest import run_cli


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "ft"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACETRACK_DETECTOR", raising=False)
    monkeypatch.delenv("FACETRACK_RECOGNIZER", raising=False)
    return tmp_path


def test_explicit_file_wins_over_env_and_pack(home: Path, detector_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_DETECTOR", str(home / "elsewhere.onnx"))
    assert resolve_model("detector", ModelsConfig(detector=detector_path)) == detector_path


def test_env_var_used_when_no_flag(home: Path, detector_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_DETECTOR", str(detector_path))
    assert resolve_model("detector", ModelsConfig()) == detector_path


def test_insightface_folder_is_reused(home: Path, detector_path: Path) -> None:
    folder = home / "home" / ".insightface" / "models" / "buffalo_l"
    folder.mkdir(parents=True)
    shutil.copy(detector_path, folder / "det_10g.onnx")
    assert resolve_model("detector", ModelsConfig(), download=False) == folder / "det_10g.onnx"


def test_missing_model_offline_message(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_MODEL_MIRROR", "http://127.0.0.1:9")  # nothing listens: offline
    with pytest.raises(FacetrackError) as info:
        resolve_model("recognizer", ModelsConfig())
    message = str(info.value)
    assert "buffalo_l" in message and "w600k_r50.onnx" in message and "--recognizer PATH" in message


@pytest.fixture
def mirror(tmp_path: Path, detector_path: Path, recognizer_path: Path) -> Iterator[str]:
    """A loopback HTTP server holding a buffalo_l.zip that is not the published one."""
    root = tmp_path / "mirror"
    root.mkdir()
    with zipfile.ZipFile(root / "buffalo_l.zip", "w") as bundle:
        bundle.write(detector_path, "buffalo_l/det_10g.onnx")
        bundle.write(recognizer_path, "buffalo_l/w600k_r50.onnx")

    with serve_folder(root) as url:
        yield url


def test_download_with_wrong_checksum_installs_nothing(home: Path, mirror: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_MODEL_MIRROR", mirror)
    with pytest.raises(FacetrackError, match="checksum mismatch"):
        download_pack(PACKS["buffalo_l"])
    assert not (home / "ft" / "models" / "buffalo_l" / "det_10g.onnx").exists()


def test_download_unpacks_a_pack_without_recorded_checksum(home: Path, mirror: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Same archive served under the name of a pack for which no checksum is published.
    shutil.copy(tmp_path / "mirror" / "buffalo_l.zip", tmp_path / "mirror" / "buffalo_sc.zip")
    with zipfile.ZipFile(tmp_path / "mirror" / "buffalo_sc.zip", "a") as bundle:
        bundle.writestr("buffalo_sc/det_500m.onnx", (tmp_path / "mirror" / "buffalo_l.zip").read_bytes()[:10])
    monkeypatch.setenv("FACETRACK_MODEL_MIRROR", mirror)
    target = download_pack(PACKS["buffalo_sc"])
    assert (target / "det_500m.onnx").is_file()
    statuses = {r.model.name: r.status for r in verify_pack(PACKS["buffalo_sc"])}
    assert statuses == {"det_500m.onnx": "unverified", "w600k_mbf.onnx": "missing"}


def test_verify_flags_a_file_that_is_not_the_published_one(home: Path, detector_path: Path) -> None:
    folder = home / "ft" / "models" / "buffalo_l"
    folder.mkdir(parents=True)
    shutil.copy(detector_path, folder / "det_10g.onnx")
    statuses = {r.model.name: r.status for r in verify_pack(PACKS["buffalo_l"])}
    assert statuses == {"det_10g.onnx": "mismatch", "w600k_r50.onnx": "missing"}


def test_models_cli_list_and_verify(home: Path) -> None:
    listed = run_cli("models", "list")
    assert listed.returncode == 0 and "buffalo_l" in listed.stdout and "non-commercial" in listed.stdout
    verified = run_cli("models", "verify", "buffalo_l")
    assert verified.returncode == 2 and "missing" in verified.stderr and "Traceback" not in verified.stderr
