"""No secret in any output: one `watch` run with a password in every URL style a camera, a broker or a webhook is
given in, and every output it makes searched for each secret.

The run: a real RTSP camera (userinfo, read from the environment), five cameras on a second RTSP server that is
stopped once they stream (so drop, reconnect and "cannot open" messages are printed), a Mosquitto broker that wants
a password over plain mqtt:// (its URL in the config file, from the environment), a webhook with its token in the
path (it answers the first alert 500, so a retry is said), `--stats`, `--events`, `--record`, a store, a gallery
and `--verbose`. Searched: the console (stdout, stderr: FFmpeg's own messages too), the events and stats files,
every MQTT message received, every webhook body and header received, the store file and the recordings (their
bytes and their metadata).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from loopback import MqttRecorder, RtspServer, looped_clip, mosquitto, wait_until

# Every secret is a string no output has any other reason to hold.
MQTT_USER = ("zqMqttUser7", "zqMqttPass7")
HOOK_TOKEN = "zqHookToken8"
PATH_STYLE = "/user=zqUser5_password=zqPass5_channel=1"
SECRETS = ["zqUser1", "zqPass1",  # userinfo
           "zqUser2", "zqPass2",  # ?user=…&password=…
           "zqPass3",  # ?pwd=
           "zqToken4",  # ?token=
           "zqUser5", "zqPass5",  # the user=…_password=…_channel=1 path style
           "zqUser6", "p@zqPass6", "zqPass6",  # a password holding an '@' (FFmpeg splits at the last one)
           *MQTT_USER, HOOK_TOKEN]


def _small_feed(path: Path, seconds: int = 40, fps: int = 10) -> Path:
    """A 160×120 H.264 video with a key frame every second: cheap for five cameras to decode at once."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": str(fps)}
        for i in range(seconds * fps):
            image = np.full((120, 160, 3), (3 * i) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


class _HookRecorder:
    """A loopback webhook that keeps each request's path, headers and body; the first POST gets a 500."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                first = not recorder.requests
                recorder.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                self.send_response(500 if first else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _frames_by_camera(events: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in _text(events).splitlines():
        if line.endswith("}"):
            event = json.loads(line)
            if event["type"] == "frame":
                counts[event["camera"]] = counts.get(event["camera"], 0) + 1
    return counts


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, clip_path: Path, gallery_dir: Path,
            fast_detector_path: Path, recognizer_path: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("secrets_everywhere")
    feed = looped_clip(clip_path, tmp / "feed.mp4", repeats=4)
    small = _small_feed(tmp / "small.mp4")
    photos = tmp / "photos" / "lin_manuel_miranda"
    photos.mkdir(parents=True)
    for photo in (gallery_dir / "lin_manuel_miranda").iterdir():
        shutil.copy(photo, photos)
    config = tmp / "live.yaml"
    config.write_text("live:\n  stats_interval: 1\n  reconnect_initial: 0.25\n  reconnect_max: 1\n"
                      "  read_timeout: 3\n  open_timeout: 10\nmqtt:\n  url: '${FT_SECRET_BROKER}'\n")
    out = tmp / "out"
    out.mkdir()
    events, stats, record, store = out / "events.jsonl", out / "stats.jsonl", out / "rec.mp4", out / "store.db"
    stdout_path, stderr_path = tmp / "stdout.txt", tmp / "stderr.txt"
    hook = _HookRecorder()
    camera = RtspServer(feed).start()
    others = RtspServer(small, mounts=("/q1", "/q2", "/q3", PATH_STYLE, "/at")).start()
    process: subprocess.Popen[str] | None = None
    try:
        with mosquitto(tmp, user=MQTT_USER) as broker:
            recorder = MqttRecorder(broker, user=MQTT_USER)
            try:
                a, b = camera.port, others.port
                cameras = ["door=${FT_SECRET_DOOR}",  # from the environment, as the README advises
                           f"q1=rtsp://127.0.0.1:{b}/q1?user=zqUser2&password=zqPass2",
                           f"q2=rtsp://127.0.0.1:{b}/q2?pwd=zqPass3",
                           f"q3=rtsp://127.0.0.1:{b}/q3?token=zqToken4",
                           f"path=rtsp://127.0.0.1:{b}{PATH_STYLE}",
                           f"at=rtsp://zqUser6:p@zqPass6@127.0.0.1:{b}/at"]
                env = {**os.environ, "COLUMNS": "1000", "FT_SECRET_DOOR": f"rtsp://zqUser1:zqPass1@127.0.0.1:{a}/clip",
                       "FT_SECRET_BROKER": f"mqtt://{MQTT_USER[0]}:{MQTT_USER[1]}@127.0.0.1:{broker}"}  # config's
                args = ["watch", *cameras, "--webhook", f"http://127.0.0.1:{hook.port}/services/T0/B0/{HOOK_TOKEN}",
                        "--stats", stats, "--events", events, "--record", record, "--store", store,
                        "--gallery", photos.parent, "--recognizer", recognizer_path, "--detector", fast_detector_path,
                        "-c", config, "--duration", "50", "--verbose"]  # what is logged at INFO too
                with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:  # files, never pipes
                    process = subprocess.Popen([sys.executable, "-m", "facetrack", *map(str, args)], stdout=stdout,
                                               stderr=stderr, text=True, env=env)
                names = {"door", "q1", "q2", "q3", "path", "at"}
                assert wait_until(lambda: set(_frames_by_camera(events)) == names or process.poll() is not None,
                                  timeout=45), f"not every camera streamed: {_frames_by_camera(events)}"
                assert process.poll() is None, _text(stderr_path)
                others.stop()  # five cameras drop: reconnecting, then "cannot open" while the server stays away
                assert wait_until(lambda: _text(stderr_path).count("retrying every") >= 5, timeout=20), \
                    _text(stderr_path)
                assert wait_until(lambda: len(hook.requests) >= 2 and recorder.on("facetrack/door/unknown")
                                  + recorder.on("facetrack/door/identity"), timeout=30), "no alerts from door"
                process.send_signal(signal.SIGTERM)  # a clean stop: final stats, summary, store and files closed
                code = process.wait(timeout=60)
                wait_until(lambda: recorder.on("facetrack/door/status") and
                           recorder.on("facetrack/door/status")[-1]["state"] == "offline", timeout=5)
                messages = list(recorder.messages)
            finally:
                recorder.close()
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        others.stop()
        camera.stop()
        hook.close()
    return {"code": code, "stdout": _text(stdout_path), "stderr": _text(stderr_path), "out": out,
            "events": events, "stats": stats, "store": store, "mqtt": messages, "hook": hook.requests,
            "ports": (a, b)}


def _leaks(name: str, text: str) -> list[str]:
    """The secrets in `text`, also where a console line wrapped in the middle of one (whitespace left out)."""
    joined = "".join(text.split())
    return [f"{name} holds {secret!r}" for secret in SECRETS if secret in text or secret in joined]


def test_the_run_reached_every_output(watched: dict[str, Any]) -> None:
    """The search below means something only if each output holds what a leak would show up in."""
    assert watched["code"] == 0, watched["stderr"]
    assert "Traceback" not in watched["stderr"]
    a, b = watched["ports"]
    watching = next(line for line in watched["stderr"].splitlines() if line.startswith("watching"))
    for shown in (f"door (rtsp://***@127.0.0.1:{a}/clip)", f"q1 (rtsp://127.0.0.1:{b}/q1)",
                  f"path (rtsp://127.0.0.1:{b}/user=***_password=***_channel=1)", f"at (rtsp://***@127.0.0.1:{b}/at)"):
        assert shown in watching, watching
    stderr = watched["stderr"]
    assert re.search(rf"rtsp://127\.0\.0\.1:{b}/q3: .*; reconnecting", stderr), stderr
    assert f"cannot open stream rtsp://***@127.0.0.1:{b}/at" in stderr, stderr
    assert "clear text" in stderr  # the broker's password warning, without the password
    assert "webhook http://127.0.0.1:" in stderr  # the 500, said with the origin only
    final = [json.loads(line) for line in watched["stats"].read_text().splitlines()][-1]
    assert final["final"] and {c["name"]: c["source"] for c in final["cameras"]}["path"] == \
        f"rtsp://127.0.0.1:{b}/user=***_password=***_channel=1"
    topics = {topic for topic, _, _ in watched["mqtt"]}
    assert {"facetrack/door/status", "facetrack/at/status"} <= topics, topics
    assert all(r["path"] == f"/services/T0/B0/{HOOK_TOKEN}" for r in watched["hook"])  # delivered where it should
    recordings = {p.name for p in watched["out"].glob("rec_*.mp4")}  # drawing may skip a busy camera's few frames
    assert "rec_door.mp4" in recordings and len(recordings) >= 2, recordings
    assert watched["store"].stat().st_size > 0


def test_no_output_holds_a_secret(watched: dict[str, Any]) -> None:
    leaks = _leaks("stdout", watched["stdout"]) + _leaks("stderr", watched["stderr"])
    leaks += _leaks("the events file", _text(watched["events"])) + _leaks("the stats file", _text(watched["stats"]))
    for topic, payload, _ in watched["mqtt"]:
        leaks += _leaks(f"MQTT {topic}", topic + json.dumps(payload))
    for request in watched["hook"]:
        leaks += _leaks("a webhook body", request["body"].decode("utf-8", "replace"))
        leaks += _leaks("webhook headers", json.dumps(request["headers"]))
    for path in sorted(watched["out"].iterdir()):  # the store (and its journal), the recordings
        leaks += _leaks(path.name, path.read_bytes().decode("latin-1"))
        if path.suffix == ".mp4":
            with av.open(str(path)) as video:
                metadata = {**video.metadata, **video.streams.video[0].metadata}
                leaks += _leaks(f"{path.name} metadata", json.dumps(metadata))
    assert leaks == [], "\n".join(leaks)


def test_every_output_is_private(watched: dict[str, Any]) -> None:
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in watched["out"].iterdir()}
    assert set(modes.values()) == {"0o600"}, modes
