"""Model packs fetched from a mirror: an unverified pack or a plain-http mirror is said every time, and an archive
that would fill the disk or write outside its folder is refused before anything is installed. The archives are
small zip files made here, served by a real HTTP server on loopback."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrack.config import ModelsConfig
from facetrack.errors import FacetrackError
from facetrack.models.registry import MAX_MODEL_BYTES, PACKS, download_pack, resolve_model
from loopback import serve_folder
from tests.conftest import run_cli_here


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "ft"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACETRACK_DETECTOR", raising=False)
    monkeypatch.delenv("FACETRACK_RECOGNIZER", raising=False)
    return tmp_path / "ft"


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A loopback HTTP mirror serving what the test puts in the folder it yields; FACETRACK_MODEL_MIRROR set."""
    root = tmp_path / "mirror"
    root.mkdir()

    (root / "packs").mkdir()
    with serve_folder(root) as url:
        monkeypatch.setenv("FACETRACK_MODEL_MIRROR", f"{url}/packs")
        yield root / "packs"


def _pack(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


def _declare_size(path: Path, member: str, size: int) -> None:
    """Make the archive's central directory claim `size` bytes for `member` (what a zip bomb declares)."""
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")
    while entry != -1:
        name_length = int.from_bytes(data[entry + 28:entry + 30], "little")
        if data[entry + 46:entry + 46 + name_length].decode() == member:
            data[entry + 24:entry + 28] = size.to_bytes(4, "little")
            break
        entry = data.find(b"PK\x01\x02", entry + 4)
    assert entry != -1, member
    path.write_bytes(bytes(data))


GOOD = {"buffalo_sc/det_500m.onnx": b"detector bytes", "buffalo_sc/w600k_mbf.onnx": b"recognizer bytes"}


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_an_unverified_pack_fetched_on_first_use_is_said_every_time(home: Path, mirror: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    _pack(mirror / "buffalo_sc.zip", GOOD)
    for turn in range(2):  # two caches, two downloads, two warnings
        cache = ModelsConfig(pack="buffalo_sc", cache_dir=tmp_path / f"cache{turn}")
        assert resolve_model("detector", cache).read_bytes() == b"detector bytes"
    assert _warnings(caplog, "no published checksum is recorded for buffalo_sc") == 2
    assert _warnings(caplog, "is plain http://") == 2


def test_models_download_says_both_on_one_line_each(home: Path, mirror: Path) -> None:
    _pack(mirror / "buffalo_sc.zip", GOOD)
    result = run_cli_here("models", "download", "buffalo_sc")
    assert result.returncode == 0, result.stderr
    assert "no published checksum is recorded for buffalo_sc" in result.stderr
    assert "plain http://" in result.stderr and "use https://" in result.stderr
    assert (home / "models" / "buffalo_sc" / "w600k_mbf.onnx").read_bytes() == b"recognizer bytes"


@pytest.mark.parametrize(("members", "expected"), [
    ({"buffalo_sc/../../evil.onnx": b"x", **GOOD}, "a path outside its folder"),
    ({"/etc/evil.onnx": b"x", **GOOD}, "a path outside its folder"),
    ({**GOOD, "other/det_500m.onnx": b"second"}, "holds det_500m.onnx twice"),
])
def test_archives_that_write_outside_or_twice_are_refused(home: Path, mirror: Path, members: dict[str, bytes],
                                                          expected: str) -> None:
    _pack(mirror / "buffalo_sc.zip", members)
    with pytest.raises(FacetrackError, match=expected) as caught:
        download_pack(PACKS["buffalo_sc"])
    assert "nothing was installed" in str(caught.value)
    assert not (home / "models" / "buffalo_sc").exists()
    assert not list(home.rglob("evil.onnx")) and not (home.parent / "evil.onnx").exists()


def test_a_zip_bomb_is_refused_by_its_declared_size(home: Path, mirror: Path) -> None:
    archive = _pack(mirror / "buffalo_sc.zip", {**GOOD, "buffalo_sc/w600k_mbf.onnx": bytes(1 << 20)})
    _declare_size(archive, "buffalo_sc/w600k_mbf.onnx", MAX_MODEL_BYTES + 1)
    result = run_cli_here("models", "download", "buffalo_sc")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert "would unpack to 1,024 MiB, more than a model is" in errors[0] and "nothing was installed" in errors[0]
    assert not (home / "models" / "buffalo_sc").exists()


def test_a_member_larger_than_it_says_is_refused(home: Path, mirror: Path) -> None:
    archive = _pack(mirror / "buffalo_sc.zip", {**GOOD, "buffalo_sc/w600k_mbf.onnx": bytes(1 << 20)})
    _declare_size(archive, "buffalo_sc/w600k_mbf.onnx", 1000)  # the data unpacks to a MiB
    with pytest.raises(FacetrackError):
        download_pack(PACKS["buffalo_sc"])
    assert not (home / "models" / "buffalo_sc").exists()
