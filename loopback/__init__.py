"""Real servers on loopback for the live tests and the benchmarks: an RTSP server, an MQTT broker, a webhook
receiver and PostgreSQL.

The RTSP server is GStreamer's gst-rtsp-server driven by the system Python (PyGObject); the broker is
Mosquitto; both come from Debian packages that scripts/test.sh installs. Where one is missing the test is
skipped, or fails when FACETRACK_TEST_ASSETS is set (the full suite must not quietly shrink).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import pytest

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # the interpreter Debian's python3-gi belongs to


def unavailable(what: str) -> None:
    """Skip, or fail where the real test assets are set (the full suite must run then)."""
    message = f"{what} (scripts/test.sh installs it with apt-get)"
    if os.environ.get("FACETRACK_TEST_ASSETS"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_folder(root: Path, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """An HTTP server on loopback serving the files under `root` (a model mirror, a camera's file); yields its
    base URL. With `tls`, HTTPS with that server context (a refused handshake is expected, not reported)."""

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        server.handle_error = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def wait_for_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def looped_clip(clip: Path, target: Path, repeats: int) -> Path:
    """The clip's video repeated `repeats` times, remuxed without re-encoding (a long "camera" feed)."""
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.dts is not None]
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + packets[0].duration
        with av.open(str(target), "w") as dst:
            out = dst.add_stream_from_template(stream)
            for k in range(repeats):
                for packet in packets:
                    copy = av.Packet(bytes(packet))
                    copy.pts, copy.dts = packet.pts + k * span, packet.dts + k * span
                    copy.duration, copy.time_base = packet.duration, packet.time_base
                    copy.is_keyframe = packet.is_keyframe
                    copy.stream = out
                    dst.mux(copy)
    return target


def rtsp_server_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = ("import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "assert all(Gst.ElementFactory.find(e) for e in ('qtdemux','h264parse','rtph264pay'))")
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


class RtspServer:
    """gst-rtsp-server serving `video` at rtsp://127.0.0.1:<port>/clip (and any other `mounts`, all the same
    stream); stop() and start() again at will."""

    def __init__(self, video: Path, port: int | None = None, mounts: tuple[str, ...] = ("/clip",)) -> None:
        if not rtsp_server_available():
            unavailable("no RTSP server: the system python3 lacks PyGObject with gst-rtsp-server "
                        "(python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-good/-bad)")
        self.video = video
        self.port = port or free_port()
        self.mounts = mounts
        self.process: subprocess.Popen[str] | None = None
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - the server's stderr, read when it fails

    def url(self, credentials: str = "") -> str:
        return f"rtsp://{credentials}127.0.0.1:{self.port}/clip"

    def start(self) -> RtspServer:
        self.process = subprocess.Popen(
            [SYSTEM_PYTHON, str(HERE / "rtsp_server.py"), "--port", str(self.port), "--file", str(self.video),
             *(f"--mount={mount}" for mount in self.mounts)],
            stdout=subprocess.PIPE, stderr=self._log, text=True)  # a log file: an unread pipe would fill and stall
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            self._log.seek(0)
            pytest.fail(f"the RTSP server did not start: {line} {self._log.read()}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def rtsp_server(video: Path) -> Iterator[RtspServer]:
    server = RtspServer(video).start()
    try:
        yield server
    finally:
        server.stop("immediate")  # a scratch cluster: nothing to keep
        if server._scratch is not None:
            shutil.rmtree(server._scratch, ignore_errors=True)


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)


@contextmanager
def mosquitto(tmp_path: Path, port: int | None = None, user: tuple[str, str] | None = None) -> Iterator[int]:
    """A Mosquitto broker on loopback (a free port unless given); yields the port. With `user` (name, password)
    it lets in that user only."""
    binary = mosquitto_path()
    if binary is None:
        unavailable("no MQTT broker: mosquitto is not installed")
    port = port or free_port()
    conf = tmp_path / "mosquitto.conf"
    access = "allow_anonymous true\n"
    if user is not None:
        passwords = tmp_path / "mosquitto.passwd"
        subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-c", "-b", str(passwords),
                        *user], check=True, capture_output=True, timeout=30)
        access = f"allow_anonymous false\npassword_file {passwords}\n"
        if os.geteuid() == 0:  # else it drops to user mosquitto, who cannot read the file in root's scratch folder
            access += "user root\n"
    conf.write_text(f"listener {port} 127.0.0.1\n{access}persistence false\n")
    log = open(tmp_path / "mosquitto.log", "w+b")  # noqa: SIM115 - a file, not a pipe nobody reads while it runs
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        if not wait_for_port(port):
            log.seek(0)
            pytest.fail(f"mosquitto did not start: {log.read().decode(errors='replace')}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=5)
        log.close()


class MqttRecorder:
    """A paho subscriber that keeps every message under `topic` (topic, JSON payload, retained flag)."""

    def __init__(self, port: int, topic: str = "facetrack/#", user: tuple[str, str] | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, Any, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-recorder-{port}")
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        if user is not None:
            self._client.username_pw_set(*user)
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "the test subscriber could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[Any]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class WebhookReceiver:
    """An HTTP server on loopback that records JSON posts; `fail_first` answers the first N with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.failures_left = fail_first
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.posts.append({"content_type": self.headers.get("Content-Type"),
                                       "authorization": self.headers.get("Authorization"), **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_until(condition: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresServer:
    """A PostgreSQL 15 cluster in a scratch folder on a loopback port, run by an unprivileged user (the server
    refuses root): password authentication over TCP, user `facetrack`; stop() and start() again at will."""

    user = "facetrack"
    password = "s3cret-pw"

    def __init__(self, root: Path, port: int | None = None) -> None:
        if not (PG_BIN / "initdb").exists():
            unavailable(f"no PostgreSQL server: {PG_BIN}/initdb is missing (Debian package postgresql)")
        self.port = port or free_port()
        self._as: list[str] = []
        self._scratch: Path | None = None
        if os.geteuid() == 0:
            owner = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
            if owner is None:
                pytest.fail("the tests run as root and neither a postgres nor a nobody user exists to run the server")
            # pytest's folders are root's only: the server's user gets a scratch folder of its own.
            import tempfile

            root = self._scratch = Path(tempfile.mkdtemp(prefix="facetrack-pg-"))
            shutil.chown(root, owner)
            self._as = ["runuser", "-u", owner, "--"]
        self.root = root
        self.data = root / "data"
        pwfile = root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as:
            shutil.chown(pwfile, self._as[2])
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", self.user, "--pwfile", str(pwfile),
                   "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                  timeout=60)
        pwfile.unlink()

    def _run(self, command: list[str], timeout: float = 30) -> None:
        result = subprocess.run([*self._as, *command], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(f"{Path(command[0]).name} failed: {result.stderr or result.stdout}")

    def url(self, database: str = "postgres", password: bool = False) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w",
                   "-t", "30", "start"], timeout=40)
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop"],
                      timeout=40)

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL (without the password: the tests pass it in PGPASSWORD)."""
        import psycopg

        with psycopg.connect(self.url(password=True), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server on loopback, stopped at the end; `PGPASSWORD` is set for the clients meanwhile."""
    server = PostgresServer(tmp_path)
    try:
        server.start()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("PGPASSWORD", server.password)
            yield server
    finally:
        server.stop("immediate")  # a scratch cluster: nothing to keep
        if server._scratch is not None:
            shutil.rmtree(server._scratch, ignore_errors=True)
