"""Outputs stay safe: an output never overwrites an input or another output, outputs are private, and settings
that cannot work are one-line errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError
from loopback import free_port
from tests.conftest import run_cli, run_cli_here


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


@pytest.mark.parametrize(("args", "expected", "run"), [
    (["annotate", "in.mp4", "-o", "in.mp4"], ("-o in.mp4 is the input video in.mp4", "another file name"), run_cli),
    (["annotate", "in.mp4", "--events", "./in.mp4"], ("--events in.mp4 is the input video",), run_cli_here),
    (["annotate", "in.mp4", "--timeline", "link.mp4"], ("--timeline link.mp4 is the input video",),  # a symlink
     run_cli_here),
    (["annotate", "in.mp4", "-o", "hard.mp4"], ("-o hard.mp4 is the input video",), run_cli_here),  # a hard link
    (["annotate", "in.mp4", "-o", "out.mp4", "--events", "sub/../out.mp4"],
     ("-o out.mp4 and --events sub/../out.mp4 name the same file",), run_cli_here),
    (["annotate", "in.mp4", "--events", "in.db", "--gallery", "in.db"], ("--events in.db is the gallery",),
     run_cli_here),
    (["watch", "door=in.mp4", "--record", "./in.mp4"], ("--record in.mp4 is the video of camera door",), run_cli),
    (["watch", "in.mp4", "--record", "out.mp4", "--stats", "out.mp4"],
     ("--record out.mp4 and --stats out.mp4 name the same file",), run_cli_here),
])
def test_an_output_that_would_overwrite_an_input_is_refused(video: Path, fast_detector_path: Path, args: list[str],
                                                            expected: tuple[str, ...], run: Callable[..., Any]) -> None:
    folder = video.parent
    (folder / "sub").mkdir()
    (folder / "link.mp4").symlink_to(video)
    os.link(video, folder / "hard.mp4")
    (folder / "in.db").write_bytes(b"gallery")
    before = {name: _digest(folder / name) for name in ("in.mp4", "in.db")}
    # With the detector given, nothing but this check stands between the command and writing its outputs.
    result = run(*args, "--detector", fast_detector_path, cwd=folder)
    _refused(result, *expected)
    assert {name: _digest(folder / name) for name in before} == before
    assert not (folder / "out.mp4").exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_what_says_who_was_where_is_private(tmp_path: Path, video: Path, fast_detector_path: Path,
                                            recognizer_path: Path, gallery_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "photos" / "obama"
    photos.mkdir(parents=True)
    shutil.copy(next((gallery_dir / "obama").iterdir()), photos)
    home = tmp_path / "home" / "facetrack"  # neither folder exists yet
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("FACETRACK_HOME", str(home))
    monkeypatch.setenv("FACETRACK_MODEL_MIRROR", f"http://127.0.0.1:{free_port()}/models")  # not there
    umask = os.umask(0o022)  # a usual, lenient umask: more than the owner could read what is made
    try:
        watched = run_cli("watch", video, "--events", out / "events.jsonl", "--record", out / "rec.mp4",
                          "--stats", out / "stats.jsonl", "--detector", fast_detector_path, timeout=120)
        identified = run_cli_here("identify", next(photos.iterdir()), "--gallery", tmp_path / "photos", "--json",
                                  "--detector", fast_detector_path, "--recognizer", recognizer_path)
        downloaded = run_cli_here("models", "download", "buffalo_sc")  # makes the model cache, then fails
        annotated = run_cli_here("annotate", video, "-o", out / "annotated.mp4", "--events", out / "a.jsonl",
                                 "--timeline", out / "timeline.png", "--detector", fast_detector_path)
    finally:
        os.umask(umask)
    assert watched.returncode == 0, watched.stderr
    assert annotated.returncode == 0, annotated.stderr
    assert {p.name: _mode(p) for p in out.iterdir()} == {
        "events.jsonl": 0o600, "rec.mp4": 0o600, "stats.jsonl": 0o600,  # watch
        "annotated.mp4": 0o600, "a.jsonl": 0o600, "timeline.png": 0o600}  # annotate
    with av.open(str(out / "rec.mp4")) as recording:  # still a whole, playable recording
        assert sum(1 for _ in recording.decode(video=0)) == 6
    assert identified.returncode == 0 and "obama" in identified.stdout, identified.stderr
    assert downloaded.returncode == 2 and "cannot download" in downloaded.stderr, downloaded.stderr
    caches = [home.parent, home, home / "galleries", home / "models"]
    assert [_mode(p) for p in caches] == [0o700] * 4, [oct(_mode(p)) for p in caches]
    assert {_mode(p) for p in (home / "galleries").iterdir()} == {0o600}


def _config_error(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(FacetrackError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("text", "expected"), [
    ("mqtt: {topic_prefix: 'home/#'}\n", "mqtt.topic_prefix in "),
    ("mqtt: {topic_prefix: 'home/+/cams'}\n", "wildcard +"),
    ("mqtt: {topic_prefix: ''}\n", "the topic prefix is empty"),
    ("mqtt: {topic_prefix: '/'}\n", "the topic prefix is empty"),
    ("annotation: {codec: aac}\n", "aac is an audio codec, not a video encoder"),
    ("annotation: {codec: subrip}\n", "subrip is a subtitle codec"),
])
def test_settings_that_cannot_work_are_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in _config_error(tmp_path, text.encode())


def test_a_config_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    message = _config_error(tmp_path, "detector:\n  score_threshold: 0.3\n# caf\xe9\n".encode("latin-1"))
    assert message == (f"config file {tmp_path / 'bad.yaml'} is not UTF-8 text: byte 0xe9 at line 3, column 6 "
                       "(save the file as UTF-8)")
    assert isinstance(load_config(_write(tmp_path / "bom.yaml", b"\xef\xbb\xbfmqtt: {topic_prefix: home}\n")),
                      FacetrackConfig)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_a_bad_config_is_one_error_line_on_the_command_line(tmp_path: Path) -> None:
    config = _write(tmp_path / "bad.yaml", b"annotation:\n  codec: aac\n")
    result = run_cli_here("watch", "0", "--config", config)
    _refused(result, "invalid setting annotation.codec", "aac is an audio codec")
    config = _write(tmp_path / "latin.yaml", "# \xe9\n".encode("latin-1"))
    _refused(run_cli_here("annotate", "in.mp4", "--events", "e.jsonl", "--config", config),
             "is not UTF-8 text: byte 0xe9")
