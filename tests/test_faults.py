"""One fault stops only itself: a full disk or a size limit mid-run, a failing output in `watch`, a camera that
breaks, an alert sink whose thread fails. Real files, real size limits (RLIMIT_FSIZE), real loopback servers."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import run_cli_here

FRAMES = 40  # of the noise video: 4 s at 10 fps


def _noise_video(path: Path, frames: int = FRAMES, size: tuple[int, int] = (160, 120), fps: int = 10) -> Path:
    """Random pixels: they compress badly, so an annotated copy grows fast (a size limit is met soon)."""
    rng = np.random.default_rng(0)
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def run_limited(limit_bytes: int, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line with every file it writes limited to `limit_bytes` (write() then fails EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of the process being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "facetrack", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, preexec_fn=limit)


def _one_error(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert all(text in errors[0] for text in expected), errors[0]
    return errors[0]


def _whole_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), text[-200:]
    return [json.loads(line) for line in text.splitlines()]


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:  # any decoding error fails the test: the cut file must play cleanly
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _noise_video(tmp_path_factory.mktemp("noise") / "noise.mp4")


# ----- 1. a full disk or a size limit mid-run ------------------------------------------------------------------

def test_events_to_a_full_disk_is_one_error_line(noise: Path, fast_detector_path: Path) -> None:
    result = run_cli_here("annotate", noise, "--events", "/dev/full", "--detector", fast_detector_path)
    _one_error(result, 3, "cannot write events to /dev/full", "the disk is full")


def test_a_size_limit_leaves_whole_event_lines(tmp_path: Path, noise: Path, fast_detector_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run_limited(1000, "annotate", noise, "--events", events, "--detector", fast_detector_path)
    _one_error(result, 3, f"cannot write events to {events}", "size limit")
    lines = _whole_lines(events)
    assert 0 < len(lines) < FRAMES and [e["frame"] for e in lines] == list(range(len(lines)))


def test_a_size_limit_leaves_a_video_that_plays(tmp_path: Path, noise: Path, fast_detector_path: Path) -> None:
    video, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    result = run_limited(300_000, "annotate", noise, "-o", video, "--events", events,
                         "--detector", fast_detector_path)
    _one_error(result, 3, f"cannot write {video}", "size limit", "plays up to where it stopped")
    assert 0 < _decoded_frames(video) < FRAMES
    assert _whole_lines(events)


# ----- 2 and 3. in `watch`, a failed output or camera stops only itself -----------------------------------------

def _truncated_mkv(noise: Path, target: Path) -> Path:
    """The noise video remuxed to Matroska and cut in half: it decodes, then ends early."""
    whole = target.with_name("whole.mkv")
    with av.open(str(noise)) as src, av.open(str(whole), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    target.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return target


@pytest.fixture(scope="module")
def limited_watch(tmp_path_factory: pytest.TempPathFactory, noise: Path, fast_detector_path: Path) -> dict:
    """Two cameras under a 300 kB file-size limit: the good camera's recording meets it, the events file is
    rotated well below it; the other camera is a file that breaks half way. Alerts go to a real broker."""
    from loopback import MqttRecorder, mosquitto, wait_until

    tmp = tmp_path_factory.mktemp("limited_watch")
    bad = _truncated_mkv(_noise_video(tmp / "small.mp4", size=(64, 48)), tmp / "bad.mkv")  # its recording: small
    events = tmp / "events.jsonl"
    with mosquitto(tmp) as port:
        recorder = MqttRecorder(port)
        try:
            result = run_limited(300_000, "watch", f"good={noise}", f"bad={bad}", "--record", tmp / "rec.mp4",
                                 "--events", events, "--events-max-mb", "0.002", "--mqtt", f"mqtt://127.0.0.1:{port}",
                                 "--detector", fast_detector_path)
            wait_until(lambda: recorder.on("facetrack/good/status"), timeout=5)
            messages = list(recorder.messages)
        finally:
            recorder.close()
    return {"result": result, "tmp": tmp, "events": events, "mqtt": messages}


def test_a_recording_that_fails_stops_only_itself(limited_watch: dict) -> None:
    result, tmp = limited_watch["result"], limited_watch["tmp"]
    line = _one_error(result, 3, "cannot write", "rec_good.mp4", "size limit")
    assert "camera bad" in line  # the camera that broke is named in the same summary
    assert result.stderr.count("rec_good.mp4: the file reached the size limit") == 2, result.stderr  # said, summed
    assert "that output is turned off" in result.stderr
    assert 0 < _decoded_frames(tmp / "rec_good.mp4") < FRAMES
    assert _decoded_frames(tmp / "rec_bad.mp4") > 0
    # The events went on after the recording stopped: the good camera's last frame is there.
    last = _whole_lines(limited_watch["events"])
    assert any(e.get("camera") == "good" and e.get("frame") == FRAMES - 1 for e in last), last[-3:]


def test_the_events_file_is_rotated_past_its_size(limited_watch: dict) -> None:
    events = limited_watch["events"]
    older = events.with_name(events.name + ".1")
    assert older.stat().st_size >= 0.002 * 2**20
    assert events.stat().st_size < older.stat().st_size + 2000  # one write past the size at most
    previous, current = _whole_lines(older), _whole_lines(events)
    assert previous and current
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in (events, older)} == {"0o600"}  # both stay private


def test_a_camera_that_breaks_fails_alone_and_says_why(limited_watch: dict) -> None:
    statuses = {(t, p["state"]): p for t, p, _ in limited_watch["mqtt"] if t.endswith("/status")}
    failed = statuses.get(("facetrack/bad/status", "failed"))
    assert failed is not None and "ends early" in failed["reason"], statuses.keys()
    assert ("facetrack/good/status", "offline") in statuses
    assert ("facetrack/bad/status", "offline") not in statuses  # the retained status keeps the failure
    assert "camera bad: the file ends early" in limited_watch["result"].stderr


def test_stats_to_a_full_disk_stop_only_the_stats(tmp_path: Path, noise: Path, fast_detector_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run_cli_here("watch", noise, "--stats", "/dev/full", "--events", events, "--detector", fast_detector_path)
    _one_error(result, 3, "cannot write stats to /dev/full", "the disk is full")
    assert sum(e["type"] == "frame" for e in _whole_lines(events)) == FRAMES


def test_events_to_a_full_disk_stop_only_the_events(tmp_path: Path, noise: Path, fast_detector_path: Path) -> None:
    result = run_cli_here("watch", noise, "--events", "/dev/full", "--record", tmp_path / "rec.mp4",
                          "--record-segment", "0.025", "--detector", fast_detector_path)
    _one_error(result, 3, "cannot write events to /dev/full", "the disk is full")
    assert result.stderr.count("that output is turned off") == 1, result.stderr
    segments = sorted(tmp_path.glob("rec-*.mp4"))
    assert [p.name for p in segments] == ["rec-0001.mp4", "rec-0002.mp4", "rec-0003.mp4"]
    assert sum(_decoded_frames(p) for p in segments) == FRAMES  # the recording went on, cut in 1.5 s files
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in segments} == {"0o600"}  # every segment is private


# ----- 4. an alert sink whose thread meets an exception says so and goes on --------------------------------------

def test_a_message_paho_refuses_is_said_and_the_sender_goes_on(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from facetrack.config import MqttConfig
    from facetrack.sinks.mqtt import MqttPublisher
    from loopback import MqttRecorder, mosquitto, wait_until

    with mosquitto(tmp_path) as port:
        recorder = MqttRecorder(port)
        publisher = MqttPublisher(f"mqtt://127.0.0.1:{port}", MqttConfig())
        try:
            assert wait_until(lambda: publisher.describe().startswith("connected"), timeout=10)
            publisher.publish("door/#", "left", {"n": 1})  # a wildcard in a topic: paho's publish raises
            assert wait_until(lambda: publisher.fault is not None, timeout=5), publisher.describe()
            assert "down (publishing to facetrack/door/#/left" in publisher.describe()
            publisher.publish("door", "left", {"n": 2})
            assert wait_until(lambda: recorder.on("facetrack/door/left"), timeout=10), publisher.describe()
            assert recorder.on("facetrack/door/left") == [{"n": 2}]
            assert publisher.dropped == 1 and publisher.describe().startswith("connected")
        finally:
            publisher.close(timeout=1)
            recorder.close()
    said = [r for r in caplog.records if r.levelname == "ERROR" and "publishing to facetrack/door/#/left" in r.message]
    assert len(said) == 1


def test_a_webhook_answer_that_is_not_http_is_a_failed_delivery(caplog: pytest.LogCaptureFixture) -> None:
    import socket
    import threading

    from facetrack.config import WebhookConfig
    from facetrack.sinks.webhook import WebhookSink
    from loopback import wait_until

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)
    port = server.getsockname()[1]
    answered = []

    def answer_garbage() -> None:
        for _ in range(2):  # the first try and its retry
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")  # a wrong port: not an HTTP answer
                answered.append(1)

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", WebhookConfig(retries=1, backoff=0.05, timeout=2))
    try:
        sink.publish("door", "left", {"n": 1})
        assert wait_until(lambda: sink.failed == 1, timeout=10), sink.describe()
        assert sink.describe().startswith("down") and sink._thread.is_alive()
    finally:
        sink.close(timeout=0.5)
        server.close()
        thread.join(timeout=5)
    assert len(answered) == 2
    assert any("its answer is not HTTP" in r.message for r in caplog.records), [r.message for r in caplog.records]


def test_a_camera_whose_detection_fails_ends_alone(tmp_path: Path, noise: Path, fast_detector_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The real detector, made to fail on one camera's frames (as an inference runtime can on a stream it cannot
    take): that camera ends with its reason, the other is watched to its end."""
    from facetrack.config import load_config
    from facetrack.detect import FaceDetector
    from facetrack.live import CameraSpec, LiveRunner

    class FailsOnSmallFrames(FaceDetector):
        def detect(self, image: np.ndarray, threshold: float | None = None):  # type: ignore[no-untyped-def]
            if image.shape[1] == 64:
                raise RuntimeError("inference failed on this stream")
            return super().detect(image, threshold)

    cfg = load_config(None)
    small = _noise_video(tmp_path / "small.mp4", frames=10, size=(64, 48))
    detector = FailsOnSmallFrames(fast_detector_path, cfg.detector, cfg.runtime)
    events = tmp_path / "events.jsonl"
    runner = LiveRunner(cfg, [CameraSpec("good", str(noise)), CameraSpec("bad", str(small))], events=events,
                        detector=detector)
    summary = runner.run(duration=60)
    assert summary.stop_reason == "end"
    assert summary.errors == ["camera bad: RuntimeError: inference failed on this stream"]
    states = {c.name: (c.state, c.frames) for c in summary.report.cameras}
    assert states == {"good": ("ended", FRAMES), "bad": ("failed", 0)}
    assert any("camera bad failed" in r.getMessage() and "the other cameras go on" in r.getMessage()
               for r in caplog.records)
    assert sum(e.get("camera") == "good" and e["type"] == "frame" for e in _whole_lines(events)) == FRAMES


def test_a_camera_that_fails_alone_is_said_in_the_exit_status(tmp_path: Path, noise: Path,
                                                               fast_detector_path: Path) -> None:
    """Beside a camera that breaks and a 2000×2 strip: the good camera is watched to its end, the run exits 3 and
    its one error line names the camera that failed."""
    bad = _truncated_mkv(_noise_video(tmp_path / "small.mp4", size=(64, 48)), tmp_path / "bad.mkv")
    strip = tmp_path / "strip.mkv"
    with av.open(str(strip), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 2000, 2, "bgr0"
        for _ in range(6):
            image = np.full((2, 2000, 3), 120, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    events = tmp_path / "events.jsonl"
    result = run_cli_here("watch", f"good={noise}", f"bad={bad}", f"strip={strip}", "--events", events,
                          "--detector", fast_detector_path)
    line = _one_error(result, 3, "camera bad: the file ends early")
    assert "camera good" not in line and "camera strip" not in line, line
    frames = [e for e in _whole_lines(events) if e["type"] == "frame"]
    assert sum(e["camera"] == "good" for e in frames) == FRAMES
    assert sum(e["camera"] == "strip" for e in frames) == 6


def test_an_exception_in_a_paho_callback_is_said_and_the_client_goes_on(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """paho's network thread would die silently on it; instead the sink reads down, says why once, and once the
    broker is back it delivers again."""
    from facetrack.config import MqttConfig
    from facetrack.sinks.mqtt import MqttPublisher
    from loopback import MqttRecorder, free_port, mosquitto, wait_until

    class FailsOnDisconnect(MqttPublisher):
        def _on_disconnect(self, *args: object) -> None:
            super()._on_disconnect(*args)  # type: ignore[arg-type]
            raise RuntimeError("a bug in the disconnect handler")

    port = free_port()
    with mosquitto(tmp_path, port):
        publisher = FailsOnDisconnect(f"mqtt://127.0.0.1:{port}", MqttConfig())
        try:
            assert wait_until(lambda: publisher.describe().startswith("connected"), timeout=10)
        except BaseException:
            publisher.close(timeout=0.5)
            raise
    try:
        assert wait_until(lambda: publisher.fault is not None, timeout=10), publisher.describe()
        assert publisher.describe().startswith("down (the on_disconnect callback: RuntimeError: a bug in")
        with mosquitto(tmp_path, port):  # the broker is back on the same port: paho's thread still runs
            recorder = MqttRecorder(port)
            try:
                publisher.publish("door", "left", {"n": 1})
                assert wait_until(lambda: recorder.on("facetrack/door/left"), timeout=30), publisher.describe()
                assert publisher.describe().startswith("connected")
                said = [r for r in caplog.records if r.levelname == "ERROR"
                        and "on_disconnect callback failed" in r.getMessage()]
                assert len(said) == 1, [r.getMessage() for r in caplog.records]  # said once, with its traceback
                assert said[0].exc_info is not None
            finally:
                recorder.close()
    finally:
        publisher.close(timeout=1)
