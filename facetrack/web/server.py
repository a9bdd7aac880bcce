"""`facetrack serve`: the review page on uvicorn, bound to loopback unless a token guards it."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from facetrack.config import StoreConfig
from facetrack.errors import FacetrackError
from facetrack.web.enrol import Enrolment
from facetrack.web.live import LiveTiles

MIN_TOKEN = 12


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None, flags: tuple[str, str] = ("--host", "--token")) -> None:
    """Faces never reach the network unguarded: a bind beyond loopback needs a token, and a token is long.
    `flags` are the options of the address and the token as the command names them."""
    host_flag, token_flag = flags
    if token is not None and len(token) < MIN_TOKEN:
        raise FacetrackError(f"{token_flag} is too short to guard faces: use at least {MIN_TOKEN} random characters "
                             "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)")
    if token is None and not is_loopback(host):
        raise FacetrackError(f"{host_flag} {host} lets other machines see faces: pass {token_flag} T too (a long "
                             f"random secret), or keep the default {host_flag} 127.0.0.1")


def bind(host: str, port: int, flags: tuple[str, str] = ("--host", "--port")) -> socket.socket:
    """The listening socket, opened here so that a taken port is one clear error. `flags` name the address and
    the port options as the command calls them."""
    host_flag, port_flag = flags
    if not 0 <= port <= 65535:
        raise FacetrackError(f"{port_flag} {port}: give a port between 1 and 65535 (0: any free one)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise FacetrackError(f"{host_flag} {host}: not an address of this machine ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = f"pass another {port_flag}" if exc.errno == 98 else f"pick an address of this machine with {host_flag}"
        raise FacetrackError(f"cannot listen on {host}:{port} ({exc.strerror}): {hint}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url(host: str, port: int, token: str | None, page: str = "") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/{page}" + (f"?token={token}" if token else "")


def serve(store: Path | str, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          config: StoreConfig | None = None, enrolment: Enrolment | None = None, announce: object = print) -> None:
    """Serve the review page on `store` until interrupted."""
    from facetrack.web import require_extra

    require_extra()
    check_bind(host, token)
    import uvicorn

    from facetrack.web.app import create_app

    # A bad store fails before the port is taken.
    app = create_app(store, token=token, config=config, enrolment=enrolment)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    where = app.state.store.location  # a database URL without its password
    announce(f"facetrack serve: {where} on {url(host, port, token)}  (Ctrl-C stops)")  # type: ignore[operator]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                                           date_header=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class Background:
    """The page served from a thread beside a run (`watch --serve`); `stop` ends it."""

    def __init__(self, app: object, sock: socket.socket) -> None:
        import threading

        import uvicorn

        self.sock = sock
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,  # type: ignore[arg-type]
                                                    server_header=False, date_header=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="serve",
                                       daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()


def serve_beside(store: Path | str, sock: socket.socket, host: str, token: str | None, config: StoreConfig | None,
                 tiles: LiveTiles, announce: object = print) -> Background:
    """Start the page with live tiles in a thread, on the store a run is writing, listening on `sock`."""
    from facetrack.web.app import create_app

    try:
        app = create_app(store, token=token, config=config, tiles=tiles)
    except BaseException:
        sock.close()
        raise
    page = Background(app, sock)
    announce(f"review page and live view on {url(host, sock.getsockname()[1], token, 'live')}")  # type: ignore[operator]
    return page
