"""Secrets stay secret: no password, token or query string of a camera or endpoint URL is ever printed."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from facetrack.config import MqttConfig, WebhookConfig
from facetrack.sinks.mqtt import MqttPublisher
from facetrack.sinks.webhook import WebhookSink
from facetrack.urls import hide_secrets, label, origin, scrub
from loopback import free_port, wait_until
from tests.conftest import run_cli, run_cli_here


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:hunter2@10.0.0.1:554/stream1", "rtsp://***@10.0.0.1:554/stream1"),
    ("rtsp://admin:p@ss@10.0.0.1/x", "rtsp://***@10.0.0.1/x"),  # split at the last '@', as FFmpeg does
    ("rtsp://admin:p%40ss@10.0.0.1/x", "rtsp://***@10.0.0.1/x"),
    ("rtsp://admin@cam/x", "rtsp://***@cam/x"),
    ("rtsp://10.0.0.1:554/s1?user=admin&password=hunter2", "rtsp://10.0.0.1:554/s1"),  # no query string at all
    ("https://cam.example/live#token=hunter2", "https://cam.example/live"),
    ("rtsp://cam/user=admin_password=hunter2_channel=1", "rtsp://cam/user=***_password=***_channel=1"),
    ("rtsp://cam/user=admin_password=hun_ter2_channel=1&stream=0.sdp",
     "rtsp://cam/user=***_password=***_channel=1&stream=0.sdp"),
    ("rtsp://cam/pwd=hunter2/passwd=hunter2;token=hunter2", "rtsp://cam/pwd=***/passwd=***;token=***"),
    ("http://cam/key=hunter2&auth=hunter2&secret=hunter2/x", "http://cam/key=***&auth=***&secret=***/x"),
    ("http://cam/monkey=1/keyframe/x", "http://cam/monkey=1/keyframe/x"),  # only whole parameter names
    ("rtsp://admin:pa/ss@10.0.0.1/x", "rtsp://***@10.0.0.1/x"),  # a '/' in the password hides, not leaks
    ("rtsp://admin:hunter2/x", "rtsp://admin/x"),  # no '@': the "port" is not a port, it is not shown
    ("rtsp://u:hunter2@[::1]:8554/x", "rtsp://***@[::1]:8554/x"),
    ("RTSP://Cam:554/a", "rtsp://Cam:554/a"),
    ("/dev/video0", "/dev/video0"),
    ("clip.mp4", "clip.mp4"),
])
def test_labels_show_scheme_host_port_and_a_masked_path_only(url: str, shown: str) -> None:
    assert label(url) == shown
    assert "hunter2" not in shown and "ss@" not in shown


def test_endpoints_are_shown_as_their_origin() -> None:
    assert origin("https://hooks.slack.com/services/T000/B000/XXXXhunter2") == "https://hooks.slack.com"
    assert origin("https://u:hunter2@discord.com/api/webhooks/1/hunter2?wait=true") == "https://discord.com"
    assert origin("http://127.0.0.1:8080/hook") == "http://127.0.0.1:8080"


def test_urls_inside_a_message_are_replaced_by_their_labels() -> None:
    text = "cannot open 'rtsp://admin:p@ss@10.0.0.1/x?token=hunter2': refused; http://a:hunter2@h/ down"
    assert scrub(text) == "cannot open 'rtsp://***@10.0.0.1/x': refused; http://***@h/ down"


@pytest.mark.parametrize(("url", "run"), [("rtsp://127.0.0.1:{port}/s1?user=admin&password=hunter2", run_cli),
                                          ("rtsp://admin:p@ss@127.0.0.1:{port}/x", run_cli),
                                          ("rtsp://127.0.0.1:{port}/user=admin_password=hunter2_channel=1",
                                           run_cli_here),
                                          ("rtsp://127.0.0.1:{port}/s1?pwd=hunter2", run_cli_here),
                                          ("rtsp://127.0.0.1:{port}/s1?channel=1&token=hunter2", run_cli_here),
                                          ("rtsp://admin:hunter2@127.0.0.1:{port}/s1", run_cli_here),
                                          ("http://admin:hunter2@127.0.0.1:{port}/video.mjpg?auth=hunter2",
                                           run_cli_here)])
def test_watch_never_prints_the_secret_of_a_camera_it_cannot_open(url: str, run: Callable[..., Any]) -> None:
    url = url.format(port=free_port())  # nothing listens there
    result = run("watch", f"door={url}", "--max-frames", "1")  # a new process: FFmpeg's own messages too
    assert result.returncode == 2, result.stderr
    output = result.stdout + result.stderr
    assert "hunter2" not in output and "ss@" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot open stream {url.split(':')[0]}://"), \
        result.stderr
    assert "Traceback" not in output


@pytest.mark.parametrize(("text", "shown"), [
    ("input file not found: rtsp:/admin:hunter2@10.0.0.1/s1", "input file not found: rtsp://***@10.0.0.1/s1"),
    ("folder /data/rtsp:/u:hunter2@cam does not exist", "folder /data/rtsp://***@cam does not exist"),
    ("cannot write events to http://cam/x?token=hunter2: gone", "cannot write events to http://cam/x: gone"),
    ("image not found: http:/cam/user=admin_password=hunter2_channel=1",
     "image not found: http://cam/user=***_password=***_channel=1"),
    # Without a secret a URL or a path is left as it is, in the spelling the user gave.
    ("the store postgresql://facetrack@db:5432/people", "the store postgresql://facetrack@db:5432/people"),
    ("use one of rtsp://, rtsps://; e.g. rtsp://host:554/path",) * 2,
    ("C:/videos/in.mp4, /srv/a:/b, clip:1.mp4 and /srv/dir:/x?",) * 2,
])
def test_an_error_line_never_quotes_a_secret(text: str, shown: str) -> None:
    assert hide_secrets(text) == shown


@pytest.mark.parametrize("args", [["annotate", "rtsp://admin:hunter2@10.0.0.1/s1?token=hunter2", "-o", "out.mp4"],
                                  ["bench", "http://admin:hunter2@10.0.0.1/clip.mp4"],
                                  ["identify", "https://u:hunter2@10.0.0.1/face.jpg", "-g", "g.db"],
                                  ["watch", "clip.mp4", "--record", "rtsp://u:hunter2@10.0.0.1/x.mp4"],
                                  ["watch", "clip.mp4", "--events", "rtsp://u:hunter2@10.0.0.1/x"],
                                  ["annotate", "clip.mp4", "-o", "out.mp4", "--gallery",
                                   "http://u:hunter2@10.0.0.1/g.db", "--recognizer", "{R}"]])
def test_a_url_given_where_a_file_belongs_is_not_quoted_with_its_secret(tmp_path: Path, fast_detector_path: Path,
                                                                      recognizer_path: Path, args: list[str]) -> None:
    """Messages that expect a file name quote what they were given: a camera URL passed by mistake keeps its
    password all the same (even folded into a path: rtsp:/admin:…)."""
    from tests.test_outputs_safe import _tiny_video

    _tiny_video(tmp_path / "clip.mp4")
    args = [str(recognizer_path) if a == "{R}" else a for a in args]
    result = run_cli_here(*args, "--detector", fast_detector_path, cwd=tmp_path)
    _one_error(result)
    assert "hunter2" not in result.stdout + result.stderr
    assert "://***@10.0.0.1/" in result.stderr, result.stderr


@pytest.mark.parametrize("args", [["rtsp://admin:hunter2/x"], ["0", "--mqtt", "mqtt://alerts:hunter2"],
                                  ["0", "--webhook", "https://hook:hunter2/x"]])
def test_a_url_whose_password_lost_its_at_sign_is_not_quoted(args: list[str]) -> None:
    result = run_cli_here("watch", *args)  # the password reads as a port: the error must not quote it
    assert result.returncode == 2 and "port is not a number" in result.stderr, result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_webhook_messages_name_the_origin_only(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens: the sink says so, once
    url = f"http://hook:hunter2@127.0.0.1:{port}/services/T0/B0/hunter2?token=hunter2"
    caplog.set_level(logging.WARNING, logger="facetrack.sinks.webhook")
    sink = WebhookSink(url, WebhookConfig(backoff=0.05))
    try:
        sink.publish("door", "unknown", {"track_id": 1})
        assert wait_until(lambda: "cannot be reached" in caplog.text, timeout=5)
    finally:
        started = time.monotonic()
        sink.close(timeout=0.5)
        assert time.monotonic() - started < 2
    assert f"webhook http://127.0.0.1:{port}:" in caplog.text
    assert "hunter2" not in caplog.text and "services" not in caplog.text


def _watch_with_env(monkeypatch: pytest.MonkeyPatch, *args: str | Path,
                    env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name in [name for name in os.environ if name.startswith("FT_TEST_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return run_cli_here("watch", *args)


def _one_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_camera_urls_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # closed: the error names the URL that was tried, so the variable was read
    result = _watch_with_env(monkeypatch, "door=${FT_TEST_DOOR}",
                             env={"FT_TEST_DOOR": f"rtsp://admin:hunter2@127.0.0.1:{port}/x"})
    assert f"cannot open stream rtsp://***@127.0.0.1:{port}/x" in _one_error(result)
    assert "hunter2" not in result.stdout + result.stderr


def test_an_unset_variable_is_one_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    error = _one_error(_watch_with_env(monkeypatch, "door=rtsp://admin:${FT_TEST_DOOR_PASSWORD}@127.0.0.1/x",
                                       env={}))
    assert error == ("error: camera door: environment variable FT_TEST_DOOR_PASSWORD is not set "
                     "(export FT_TEST_DOOR_PASSWORD=...)")
    error = _one_error(_watch_with_env(monkeypatch, "0", "--mqtt", "mqtt://u:${FT_TEST_MQTT}@127.0.0.1", env={}))
    assert "--mqtt: environment variable FT_TEST_MQTT is not set (export FT_TEST_MQTT=...)" in error
    error = _one_error(_watch_with_env(monkeypatch, "0", "--webhook", "${FT_TEST_HOOK}", env={"FT_TEST_HOOK": ""}))
    assert "--webhook: environment variable FT_TEST_HOOK is empty" in error


def test_config_urls_are_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text("cameras:\n  - {name: door, url: '${FT_TEST_DOOR}'}\n"
                      "mqtt: {url: 'mqtt://u:${FT_TEST_MQTT}@127.0.0.1'}\nwebhook: {url: '${FT_TEST_HOOK}'}\n")
    error = _one_error(_watch_with_env(monkeypatch, "--config", config, env={}))
    assert "camera door: environment variable FT_TEST_DOOR is not set" in error
    error = _one_error(_watch_with_env(monkeypatch, "--config", config, env={"FT_TEST_DOOR": "rtsp://127.0.0.1:1/x"}))
    assert "mqtt.url: environment variable FT_TEST_MQTT is not set" in error
    error = _one_error(_watch_with_env(monkeypatch, "--config", config, env={"FT_TEST_DOOR": "rtsp://127.0.0.1:1/x",
                                                                 "FT_TEST_MQTT": "hunter2"}))
    assert "webhook.url: environment variable FT_TEST_HOOK is not set" in error
    error = _one_error(_watch_with_env(monkeypatch, "--config", config, env={"FT_TEST_DOOR": "rtsp://127.0.0.1:1/x",
                                                                 "FT_TEST_MQTT": "hunter2",
                                                                 "FT_TEST_HOOK": "ftp://127.0.0.1/hunter2"}))
    assert "webhook URL ftp://127.0.0.1 must be http(s)" in error  # the variable's value was used


class _Recorder:
    """A loopback HTTP server that records every request; `redirect_to` answers each POST with a 302 there."""

    def __init__(self, redirect_to: str | None = None, code: int = 302) -> None:
        self.requests: list[dict[str, str | None]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append({"method": self.command, "path": self.path,
                                          "authorization": self.headers.get("Authorization")})
                if redirect_to is not None:
                    self.send_response(code)
                    self.send_header("Location", redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = _answer  # noqa: N815 - http.server's naming

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_webhook_redirects_are_failed_deliveries_and_credentials_stay_home(code: int,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = _Recorder()
    hook = _Recorder(redirect_to=f"{elsewhere.url}/collect?token=hunter2", code=code)
    caplog.set_level(logging.WARNING, logger="facetrack.sinks.webhook")
    sink = WebhookSink(hook.url.replace("http://", "http://hook:hunter2@") + "/hook",
                       WebhookConfig(retries=2, backoff=0.05))
    try:
        for i in range(2):
            sink.publish("door", "unknown", {"track_id": i})
        assert wait_until(lambda: sink.failed == 2, timeout=10)
    finally:
        sink.close(timeout=0.5)
        hook.close()
        elsewhere.close()
    assert sink.sent == 0 and sink.failed == 2
    assert [r["method"] for r in hook.requests] == ["POST", "POST"]  # refused, not retried
    assert all(r["authorization"] for r in hook.requests)
    assert elsewhere.requests == []  # neither the alert nor the Authorization header went to the other host
    assert str(code) in caplog.text and f"redirect to {elsewhere.url}" in caplog.text and "hunter2" not in caplog.text


def test_a_password_over_plain_mqtt_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="facetrack.sinks.mqtt")
    port = free_port()  # no broker: the warning is about the URL, before any connection
    publishers = [MqttPublisher(url, MqttConfig()) for url in (
        f"mqtt://alerts:hunter2@127.0.0.1:{port}", f"mqtt://alerts:hunter2@127.0.0.1:{port}",
        f"mqtts://alerts:hunter2@localhost:{port}", f"mqtt://127.0.0.1:{free_port()}")]
    try:
        clear = [r.getMessage() for r in caplog.records if "clear text" in r.getMessage()]
    finally:
        for publisher in publishers:
            publisher.close(timeout=0.2)
    assert clear == [f"MQTT broker 127.0.0.1:{port}: the password travels in clear text over mqtt:// "
                     "(use mqtts:// to encrypt it)"]
    assert "hunter2" not in caplog.text


def test_a_broker_that_refuses_the_password_is_said_without_it(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from loopback import mosquitto

    caplog.set_level(logging.WARNING, logger="facetrack.sinks.mqtt")
    with mosquitto(tmp_path, user=("alerts", "the-right-one")) as port:
        publisher = MqttPublisher(f"mqtt://alerts:hunter2@127.0.0.1:{port}", MqttConfig())
        try:
            assert wait_until(lambda: "refused the connection" in caplog.text, timeout=10), caplog.text
            assert publisher.describe().startswith("down")
        finally:
            publisher.close(timeout=0.5)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and refused[0].startswith(f"MQTT broker 127.0.0.1:{port}: the broker refused"), refused
    assert "hunter2" not in caplog.text


def test_the_printed_live_view_address_carries_the_token_whole(tmp_path: Path, fast_detector_path: Path,
                                                               recognizer_path: Path) -> None:
    """`watch --serve --serve-token T` prints the one address to open: the live view with T as its query, not T
    with the page's name glued to it."""
    pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
    from tests.test_outputs_safe import _tiny_video

    token = "t0ken-" + "x" * 26
    result = run_cli_here("watch", _tiny_video(tmp_path / "in.mp4"), "--store", tmp_path / "store.db", "--serve",
                          "--serve-port", "0", "--serve-token", token, "--detector", fast_detector_path,
                          "--recognizer", recognizer_path)
    assert result.returncode == 0, result.stderr
    import re

    found = re.search(r"live view on\s+(http://127\.0\.0\.1:\d+/\S*)", result.stdout + result.stderr)
    assert found is not None, result.stdout + result.stderr
    assert found[1].endswith(f"/live?token={token}"), found[1]


def test_a_log_line_never_shows_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever a module logs (a library's message quoting the URL it was given), the command line shows the
    URL's label."""
    from facetrack.cli.common import setup_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        setup_logging(verbose=False)
        logging.getLogger("facetrack.test").warning("could not reach %s: %s", "rtsp://admin:hunter2@10.0.0.1/s1",
                                                    "timed out")
        logging.getLogger("facetrack.test").warning("plain %s stays as it is", "clips/door.mp4")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    shown = capsys.readouterr().err
    assert "could not reach rtsp://***@10.0.0.1/s1: timed out" in shown and "plain clips/door.mp4 stays" in shown
    assert "hunter2" not in shown
