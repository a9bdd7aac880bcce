"""https:// and rtsps:// cameras verify the server's certificate with the system CA bundle; `live.tls_verify: false`
is the explicit way out. Real TLS servers on loopback with self-signed certificates made by `openssl`."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from facetrack.config import LiveConfig
from facetrack.errors import FacetrackError
from facetrack.sources import open_source
from loopback import serve_folder
from tests.conftest import run_cli

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the certificates")


def _certificate(folder: Path, name: str, subject_alt_name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key,
                    "-out", cert, "-subj", f"/CN={name}", "-addext", f"subjectAltName={subject_alt_name}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    here, here_key = _certificate(folder, "loopback", "IP:127.0.0.1")  # right address, but nobody vouches for it
    other, other_key = _certificate(folder, "other.example", "DNS:other.example")  # another host's certificate
    with av.open(str(folder / "clip.mp4"), "w") as container:  # 20 tiny frames, served as a finite stream
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return {"folder": folder, "here": here, "here_key": here_key, "other": other, "other_key": other_key}


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def https_server(tls: dict[str, Path]) -> Iterator[str]:
    """An HTTPS server with the self-signed loopback certificate, serving clip.mp4."""
    with serve_folder(tls["folder"], _context(tls["here"], tls["here_key"])) as url:
        yield f"{url}/clip.mp4"


def _frames(path: Path) -> list[dict]:
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["type"] == "frame"]


def test_self_signed_https_camera_is_refused_by_default(https_server: str, tmp_path: Path,
                                                        fast_detector_path: Path) -> None:
    result = run_cli("watch", https_server, "--events", tmp_path / "e.jsonl", "--detector", fast_detector_path,
                     "--max-frames", "5", timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "certificate" in errors[0] and "self-signed" in errors[0], errors[0]
    assert "live.tls_verify: false" in errors[0], errors[0]


def test_tls_verify_false_accepts_it(https_server: str, tmp_path: Path, fast_detector_path: Path) -> None:
    config = tmp_path / "insecure.yaml"
    config.write_text("live:\n  tls_verify: false\n")
    events = tmp_path / "e.jsonl"
    result = run_cli("watch", https_server, "-c", config, "--events", events, "--detector", fast_detector_path,
                     "--max-frames", "5", timeout=120)
    assert result.returncode == 0, result.stderr
    assert [e["frame"] for e in _frames(events)] == list(range(5))


def test_a_certificate_the_bundle_trusts_is_accepted(https_server: str, tls: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA bundle is really the one given to FFmpeg: trusting this certificate there makes it pass."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls["here"]))
    source = open_source(https_server, live=LiveConfig(open_timeout=5, read_timeout=5))
    try:
        assert sum(1 for _ in source) == 20
    finally:
        source.close()


def test_a_trusted_certificate_for_another_host_is_refused(tls: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls["other"]))
    with _raw_tls_server(tls["other"], tls["other_key"]) as (port, received):
        with pytest.raises(FacetrackError) as caught:
            open_source(f"https://127.0.0.1:{port}/clip.mp4", live=LiveConfig(open_timeout=5, read_timeout=5))
    message = str(caught.value)
    assert "certificate" in message and "127.0.0.1" in message and "live.tls_verify: false" in message, message
    assert received == []  # no request went out over the unverified connection


@contextlib.contextmanager
def _raw_tls_server(cert: Path, key: Path) -> Iterator[tuple[int, list[bytes]]]:
    """A TLS listener that records what each client sends once the handshake is done (an RTSP camera's first
    request is `OPTIONS rtsps://…`)."""
    context = _context(cert, key)
    received: list[bytes] = []
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with client:
                client.settimeout(5)
                try:
                    with context.wrap_socket(client, server_side=True) as conn:
                        data = conn.recv(200)
                        if data:
                            received.append(data)
                except (ssl.SSLError, OSError):
                    pass  # the client refused the certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_rtsps_camera_is_verified_too(tls: dict[str, Path]) -> None:
    with _raw_tls_server(tls["here"], tls["here_key"]) as (port, received):
        url = f"rtsps://viewer:hunter2@127.0.0.1:{port}/stream"
        with pytest.raises(FacetrackError) as caught:
            open_source(url, live=LiveConfig(open_timeout=3, read_timeout=3))
        message = str(caught.value)
        assert "self-signed" in message and "live.tls_verify: false" in message, message
        assert "hunter2" not in message
        assert received == []  # the camera never saw a request (nor the password in it)
        with pytest.raises(FacetrackError):  # not an RTSP server: it fails later, after TLS
            open_source(url, live=LiveConfig(open_timeout=3, read_timeout=3, tls_verify=False))
        assert received and received[0].startswith(b"OPTIONS rtsps://")


def test_an_http_camera_that_redirects_to_https_is_verified(https_server: str, tls: dict[str, Path]) -> None:
    class Redirect(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(302)
            self.send_header("Location", https_server)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(FacetrackError, match="cannot open stream"):
            open_source(f"http://127.0.0.1:{server.server_address[1]}/clip.mp4",
                        live=LiveConfig(open_timeout=5, read_timeout=5))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
