"""Outputs never destroy inputs: an output naming an input (or another output) is refused before anything opens."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import run_cli


def _tiny_video(path: Path, frames: int = 6) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), 20 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    return _tiny_video(tmp_path / "in.mp4")


def _refused(result, *expected: str) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(text in lines[0] for text in expected), lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["annotate", "in.mp4", "-o", "in.mp4"], ("-o in.mp4 is the input video in.mp4", "another file name")),
    (["annotate", "in.mp4", "--events", "./in.mp4"], ("--events in.mp4 is the input video",)),
    (["annotate", "in.mp4", "--timeline", "link.mp4"], ("--timeline link.mp4 is the input video",)),  # a symlink
    (["annotate", "in.mp4", "-o", "hard.mp4"], ("-o hard.mp4 is the input video",)),  # a hard link
    (["annotate", "in.mp4", "-o", "out.mp4", "--events", "sub/../out.mp4"],
     ("-o out.mp4 and --events sub/../out.mp4 name the same file",)),
    (["annotate", "in.mp4", "--events", "in.db", "--gallery", "in.db"], ("--events in.db is the gallery",)),
    (["watch", "door=in.mp4", "--record", "./in.mp4"], ("--record in.mp4 is the video of camera door",)),
    (["watch", "in.mp4", "--record", "out.mp4", "--stats", "out.mp4"],
     ("--record out.mp4 and --stats out.mp4 name the same file",)),
])
def test_an_output_that_would_overwrite_an_input_is_refused(video: Path, fast_detector_path: Path,
                                                            args: list[str], expected: tuple[str, ...]) -> None:
    folder = video.parent
    (folder / "sub").mkdir()
    (folder / "link.mp4").symlink_to(video)
    os.link(video, folder / "hard.mp4")
    (folder / "in.db").write_bytes(b"gallery")
    before = {name: _digest(folder / name) for name in ("in.mp4", "in.db")}
    # With the detector given, nothing but this check stands between the command and writing its outputs.
    result = run_cli(*args, "--detector", fast_detector_path, cwd=folder, timeout=120)
    _refused(result, *expected)
    assert {name: _digest(folder / name) for name in before} == before
    assert not (folder / "out.mp4").exists()
