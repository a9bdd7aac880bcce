"""`facetrack watch` on a real RTSP server (loopback): tracking, the newest-frame policy, surviving a server
restart, and a clean finish on Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pytest

from loopback import RtspServer, looped_clip, wait_until

SECRET = "s3cret-pw"


@pytest.fixture(scope="module")
def camera_feed(tmp_path_factory: pytest.TempPathFactory, clip_path: Path) -> Path:
    """The test clip looped for a bit over a minute: the "camera" the RTSP server streams in real time."""
    return looped_clip(clip_path, tmp_path_factory.mktemp("feed") / "feed.mp4", repeats=8)


def _watch(*args: str | Path) -> subprocess.Popen[str]:
    """`facetrack watch` in the background; its console goes to a file (a pipe nobody reads while the test waits
    would fill with stats tables and stall the run)."""
    env = {**os.environ, "COLUMNS": "200"}
    console = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read and closed in _finish
    process = subprocess.Popen([sys.executable, "-m", "facetrack", "watch", *map(str, args)],
                               stdout=subprocess.DEVNULL, stderr=console, text=True, env=env)
    process.console = console  # type: ignore[attr-defined]
    return process


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _frames(path: Path) -> list[dict]:
    return [e for e in _lines(path) if e["type"] == "frame"]


def _finish(process: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    console = process.console  # type: ignore[attr-defined]
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        console.seek(0)
        pytest.fail(f"watch did not finish in time:\n{console.read()}")
    console.seek(0)
    stderr = console.read()
    console.close()
    return process.returncode, stderr


def test_rtsp_stream_is_tracked_and_survives_a_server_restart(tmp_path: Path, camera_feed: Path,
                                                              detector_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text("live:\n  stats_interval: 1\n  reconnect_initial: 0.25\n  reconnect_max: 1\n"
                      "  read_timeout: 3\n")
    events, stats, record = tmp_path / "events.jsonl", tmp_path / "stats.jsonl", tmp_path / "rec.mp4"
    server = RtspServer(camera_feed).start()
    try:
        # SCRFD-2.5G runs below the stream's 30 fps on a small CPU: the newest-frame policy must show.
        process = _watch(server.url(f"viewer:{SECRET}@"), "--events", events, "--stats", stats, "--record", record,
                         "--detector", detector_path, "-c", config, "--duration", "22")
        assert wait_until(lambda: len(_frames(events)) >= 20, timeout=60), "no frames from the RTSP stream"
        server.stop()  # the camera goes away…
        time.sleep(2.0)
        before = len(_frames(events))
        server.start()  # …and comes back on the same address
        code, stderr = _finish(process, timeout=90)
    finally:
        server.stop()
    assert code == 0, stderr
    frames = _frames(events)
    assert len(frames) >= before + 20, "events did not resume after the server came back"

    # The gap: the longest wait between two processed frames is the outage.
    pts = np.array([e["pts"] for e in frames])
    gap = int(np.argmax(np.diff(pts)))
    assert pts[gap + 1] - pts[gap] >= 1.5
    assert sum(len(e["faces"]) for e in frames[gap + 1:]) >= 10, "no faces tracked after the reconnect"
    # Tracks alive when the stream dropped ended at the drop, not when it came back.
    lines = _lines(events)
    started_before = {e["track_id"] for e in lines if e["type"] == "track_start" and e["frame"] <= frames[gap]["frame"]}
    ended = {e["track_id"]: e["frame"] for e in lines if e["type"] == "track_end"}
    assert started_before and all(ended[t] <= frames[gap]["frame"] for t in started_before)
    # Newest frame only: frames skipped while detection was busy are counted, and the indices jump over them.
    final = [s for s in _lines(stats) if s.get("final")][-1]
    camera = final["cameras"][0]
    assert camera["reconnects"] >= 1 and camera["last_reconnect_s"] >= 2.0
    assert camera["dropped"] > 0
    indices = [e["frame"] for e in frames]
    assert indices == sorted(indices) and indices[-1] + 1 > len(indices)
    assert all(e["camera"] == "cam0" for e in lines)
    # Said once per drop, and never with the password.
    assert "reconnecting" in stderr and "reconnected after" in stderr
    assert SECRET not in stderr and SECRET not in events.read_text() and SECRET not in stats.read_text()
    with av.open(str(record)) as video:
        assert sum(1 for _ in video.decode(video=0)) >= 40


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_leaves_playable_recording_and_complete_events(tmp_path: Path, camera_feed: Path,
                                                                fast_detector_path: Path, signum: int) -> None:
    events, record = tmp_path / "events.jsonl", tmp_path / "rec.mp4"
    with_server = RtspServer(camera_feed).start()
    try:
        process = _watch(with_server.url(), "--events", events, "--record", record, "--detector", fast_detector_path)
        assert wait_until(lambda: len(_frames(events)) >= 30, timeout=60), "no frames from the RTSP stream"
        process.send_signal(signum)
        code, stderr = _finish(process, timeout=60)
    finally:
        with_server.stop()
    assert code == 0, stderr
    assert "stopping" in stderr and "Traceback" not in stderr
    frames = _frames(events)
    with av.open(str(record)) as video:
        decoded = [f.pts for f in video.decode(video=0)]
    assert len(decoded) >= 30 and decoded == sorted(decoded)
    assert len(decoded) <= len(frames)  # drawing may skip frames under load, never invent any
    lines = _lines(events)
    assert len(lines) == len(events.read_text().splitlines())  # no half-written line
    started = {e["track_id"] for e in lines if e["type"] == "track_start"}
    ended = {e["track_id"] for e in lines if e["type"] == "track_end"}
    assert started and started == ended  # every track was closed before exit
