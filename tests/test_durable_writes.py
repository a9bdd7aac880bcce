"""A file renamed into place is on disk first: every rename that makes a gallery, rotates an events file or
installs a model is preceded by an fsync of the file renamed, so a power cut leaves the old file or the new one,
never an empty or half-written one. Seen from the outside: the real command line run under strace."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopback import serve_folder, unavailable
from tests.test_outputs_safe import _tiny_video

_FSYNC = re.compile(r'\b(?:fsync|fdatasync)\(\d+<(?P<path>[^>]+)>')
_RENAME = re.compile(r'\brename(?:at2?)?\((?:AT_FDCWD, )?"(?P<source>[^"]+)", (?:AT_FDCWD, )?"(?P<target>[^"]+)"')


def _traced(tmp_path: Path, *args: str | Path) -> list[tuple[str, str]]:
    """Run the command line under strace; its fsyncs and renames in order: ("fsync", path), ("rename", "a -> b")."""
    strace = shutil.which("strace")
    if strace is None:
        unavailable("strace is not installed (Debian package strace)")
    trace = tmp_path / "trace.txt"
    with open(tmp_path / "console.txt", "w") as console:  # a file, never a pipe nobody reads
        result = subprocess.run([strace, "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
                                 "-o", str(trace), sys.executable, "-m", "facetrack", *map(str, args)],
                                stdout=console, stderr=subprocess.STDOUT, timeout=180,
                                env={**os.environ, "COLUMNS": "200"})
    text = (tmp_path / "console.txt").read_text()
    if result.returncode != 0 and "ptrace" in text and not trace.exists():
        pytest.skip(f"strace cannot trace here: {text.strip()[:200]}")
    assert result.returncode == 0, text
    calls: list[tuple[str, str]] = []
    for line in trace.read_text().splitlines():
        if (found := _FSYNC.search(line)) is not None:
            calls.append(("fsync", os.path.realpath(found["path"])))
        elif (moved := _RENAME.search(line)) is not None:
            calls.append(("rename", f"{os.path.realpath(moved['source'])} -> {os.path.realpath(moved['target'])}"))
    return calls


def _renames_into(calls: list[tuple[str, str]], target: Path) -> list[int]:
    wanted = os.path.realpath(target)
    return [i for i, (kind, what) in enumerate(calls) if kind == "rename" and what.endswith(f" -> {wanted}")]


def _synced_before(calls: list[tuple[str, str]], index: int) -> bool:
    source = calls[index][1].split(" -> ")[0]
    return ("fsync", source) in calls[:index]


def test_a_gallery_is_on_disk_before_it_replaces_the_old_one(tmp_path: Path, gallery_dir: Path,
                                                             fast_detector_path: Path, recognizer_path: Path) -> None:
    photos = tmp_path / "photos" / "ada"
    photos.mkdir(parents=True)
    shutil.copy(sorted((gallery_dir / "obama").iterdir())[0], photos)
    calls = _traced(tmp_path, "gallery", "build", photos.parent, "-o", tmp_path / "people.db",
                    "--detector", fast_detector_path, "--recognizer", recognizer_path)
    renames = _renames_into(calls, tmp_path / "people.db")
    assert len(renames) == 1, calls
    assert _synced_before(calls, renames[0]), calls


def test_an_events_file_is_on_disk_before_it_is_rotated(tmp_path: Path, fast_detector_path: Path) -> None:
    video = _tiny_video(tmp_path / "in.mp4")
    events = tmp_path / "events.jsonl"
    calls = _traced(tmp_path, "watch", video, "--events", events, "--events-max-mb", "0.0002",
                    "--detector", fast_detector_path)
    renames = _renames_into(calls, events.with_name("events.jsonl.1"))
    assert renames, calls
    assert all(_synced_before(calls, i) for i in renames), calls


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback mirror holding a small buffalo_sc pack (its models are stand-in bytes: only installed here)."""
    root = tmp_path / "mirror"
    (root / "packs").mkdir(parents=True)
    with zipfile.ZipFile(root / "packs" / "buffalo_sc.zip", "w") as bundle:
        bundle.writestr("buffalo_sc/det_500m.onnx", b"detector bytes")
        bundle.writestr("buffalo_sc/w600k_mbf.onnx", b"recognizer bytes")

    with serve_folder(root) as url:
        yield f"{url}/packs", root


def test_a_model_is_on_disk_before_it_enters_the_cache(tmp_path: Path, mirror: tuple[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FACETRACK_HOME", str(home))
    monkeypatch.setenv("FACETRACK_MODEL_MIRROR", mirror[0])
    calls = _traced(tmp_path, "models", "download", "buffalo_sc")
    cache = home / "models" / "buffalo_sc"
    for name in ("det_500m.onnx", "w600k_mbf.onnx"):
        renames = _renames_into(calls, cache / name)
        assert len(renames) == 1 and _synced_before(calls, renames[0]), calls
        assert (cache / name).stat().st_size > 0
