"""Video sources read with PyAV → `Frame`s (pixels + index + presentation time).

Files give every frame, in order, with their PTS. A truncated or corrupt file gives what decodes and then
records why it stopped (`FileSource.error`), so the caller can finish its outputs and say so.

Live sources (webcams, RTSP, HTTP streams: `StreamSource`) are decoded as fast as they arrive, stamped with
their arrival time, and reopened with exponential back-off when they drop. Credentials in a URL never reach a
message: everything that prints a source goes through `facetrack.urls` (`label`, `scrub`).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from av.codec.hwaccel import HWAccel, hwdevices_available

from facetrack import urls
from facetrack.config import LiveConfig
from facetrack.errors import FacetrackError

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One decoded video frame."""

    image: np.ndarray  # BGR, H×W×3, uint8
    index: int  # 0-based position in decode order
    pts: float  # presentation time in seconds (from the stream, not from the index)
    source_id: str = "0"
    arrival: float = field(default_factory=time.monotonic)  # when it left the decoder, for latency
    discontinuity: bool = False  # the stream's clock broke just before this frame (tracks end here, as at a cut)


class StreamClock:
    """Presentation times that always increase, from stream timestamps that may not.

    A timestamp that goes back or repeats (two recordings joined, a camera's clock reset) or jumps ahead by more
    than `max_gap` seconds is a break: the frame is placed one frame period after the previous one and marked
    as a discontinuity, and later timestamps keep the same offset. Frames without a timestamp are extrapolated.
    """

    def __init__(self, fps: float, max_gap: float = 10.0) -> None:
        self.step = 1.0 / fps if fps > 0 else 1.0 / 30
        self.max_gap = max_gap
        self._offset = 0.0
        self._last: float | None = None

    def place(self, raw: float | None) -> tuple[float, bool]:
        """The frame's time in seconds, and whether the clock broke before it."""
        last = self._last
        if last is None:
            pts, broke = (raw if raw is not None else 0.0), False
        elif raw is None:
            pts, broke = last + self.step, False
        else:
            pts = raw + self._offset
            broke = pts <= last or pts - last > self.max_gap
            if broke:
                self._offset = last + self.step - raw
                pts = last + self.step
        self._last = pts
        return pts, broke


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int  # from the stream header, else estimated from the container's duration; 0 if unknown
    has_audio: bool


HWAccelMode = Literal["none", "auto", "cuda"]
_said: set[str] = set()  # decoder choices already logged in this process


def hardware_decoders() -> list[str]:
    """Hardware device types the loaded FFmpeg was built with (a GPU must also be present to use one)."""
    return list(hwdevices_available())


def _say_once(level: int, message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.log(level, "%s", message)


def ffmpeg_file(path: Path) -> str:
    """A local file's name for FFmpeg: absolute, so that `clip:1.mp4` is a file, not the `clip:` protocol."""
    return str(path.absolute())


def _open_container(path: Path, hwaccel: HWAccelMode = "none") -> av.container.InputContainer:
    if not path.exists():
        raise FacetrackError(f"input file not found: {path}")
    if path.is_dir():
        raise FacetrackError(f"input is a folder, not a video file: {path}")
    device = "cuda" if hwaccel == "cuda" or (hwaccel == "auto" and "cuda" in hardware_decoders()) else None
    hardware_error: str | None = None
    if device is not None:
        try:
            container = av.open(ffmpeg_file(path), mode="r", hwaccel=HWAccel(device_type=device))
            return _with_video(path, container)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:  # no such device here, or a bad file: see below
            hardware_error = getattr(exc, "strerror", None) or type(exc).__name__
    elif hwaccel != "none":
        hardware_error = "this FFmpeg has no cuda device type"
    try:
        container = av.open(ffmpeg_file(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise FacetrackError(
            f"cannot read {path} as video ({reason}): the file is not a video, or is truncated or corrupt"
        ) from None
    if hardware_error is not None:
        _say_once(logging.WARNING, f"hardware decoding (decode.hwaccel: {hwaccel}) is not available "
                                   f"({hardware_error}): decoding in software")
    return _with_video(path, container)


def _with_video(path: Path, container: av.container.InputContainer) -> av.container.InputContainer:
    if not container.streams.video:
        container.close()
        raise FacetrackError(f"{path} has no video stream: pass a video file such as .mp4")
    return container


# A frame's display rotation (counterclockwise degrees, from its display matrix) → how to turn it upright.
_UPRIGHT = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def _display_rotation(path: Path) -> int:
    """The rotation a player applies to this file's pictures (phone videos: 90 or 270), from its first frame."""
    try:
        with av.open(ffmpeg_file(path)) as container:
            for frame in container.decode(video=0):
                return round(getattr(frame, "rotation", 0) or 0) % 360
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        pass  # the real open says what is wrong
    return 0


class FileSource:
    """Every frame of a video file, in decode order."""

    def __init__(self, path: Path | str, source_id: str = "0", hwaccel: HWAccelMode = "none") -> None:
        self.path = Path(path)
        self.source_id = source_id
        self._container = _open_container(self.path, hwaccel)
        stream = self._container.streams.video[0]
        codec = stream.codec_context
        self.decoder = "cuda" if codec.is_hwaccel else "software"  # which decoder runs this stream
        if codec.hwaccel is not None:  # opened for hardware decoding: say whether this codec got it
            if codec.is_hwaccel:
                _say_once(logging.INFO, f"decoding {codec.name} on the GPU (decode.hwaccel: {hwaccel})")
            else:
                _say_once(logging.WARNING, f"the GPU has no {codec.name} decoder (decode.hwaccel: {hwaccel}): "
                                           "decoding in software")
        stream.thread_type = "AUTO"  # FFmpeg's own frame threading: decoding is not the bottleneck
        self._stream = stream
        rate = Fraction(stream.average_rate or stream.guessed_rate or 30)
        frame_count = int(stream.frames or 0)
        if not frame_count and self._container.duration:
            frame_count = round(self._container.duration / 1_000_000 * rate)
        # Pictures are given upright, as players show them: a phone's portrait video is taller than wide.
        self._upright = _UPRIGHT.get(_display_rotation(self.path))
        width, height = stream.codec_context.width, stream.codec_context.height
        if self._upright in (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE):
            width, height = height, width
        self.info = VideoInfo(
            width=width,
            height=height,
            fps=rate,
            time_base=Fraction(stream.time_base or Fraction(1, 90000)),
            frame_count=frame_count,
            has_audio=bool(self._container.streams.audio),
        )
        if self.info.width <= 0 or self.info.height <= 0:
            self.close()
            raise FacetrackError(f"{self.path} has a video stream with no picture size: the file is corrupt")
        self.error: str | None = None  # why decoding stopped early, if it did
        self.decode_seconds = 0.0  # time spent decoding (in the reader thread, overlapping the others)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        clock = StreamClock(float(self.info.fps))
        broke = False
        last_raw: float | None = None
        started = time.perf_counter()
        try:
            for decoded in self._container.decode(self._stream):
                raw = float(decoded.pts * self.info.time_base) if decoded.pts is not None else None
                last_raw = raw if raw is not None else last_raw
                pts, jumped = clock.place(raw)
                broke = broke or jumped
                image = decoded.to_ndarray(format="bgr24")
                if self._upright is not None:
                    image = cv2.rotate(image, self._upright)
                self.decode_seconds += time.perf_counter() - started
                yield Frame(image, index, pts, self.source_id, discontinuity=jumped)
                index += 1
                started = time.perf_counter()
        except av.error.FFmpegError as exc:
            # A truncated or damaged file: keep what decoded, say why it stopped.
            self.error = f"decoding stopped after {index} frames: {getattr(exc, 'strerror', exc)}"
            log.warning("%s: %s", self.path, self.error)
        if index == 0 and self.error is None:
            self.error = "no frame could be decoded"
        elif self.error is None and not broke and last_raw is not None and last_raw < self._end_seconds() - (
                1.0 if self.info.has_audio else 2.5 / float(self.info.fps)):
            # FFmpeg ends quietly at a cut-off file; the header's length tells us frames are missing. Times, not
            # frame counts, so that a variable-rate video is whole; a second's slack where a longer audio track
            # may stretch the container's duration. After a break in the clock the duration says nothing.
            self.error = (f"the file ends early: {index} frames decoded, up to {last_raw:.1f} s of "
                          f"{self._end_seconds():.1f} s (truncated?)")

    def _end_seconds(self) -> float:
        """Where the header says the video ends, in stream seconds (0 when it does not say)."""
        stream, container = self._stream, self._container
        if stream.duration:
            return float(((stream.start_time or 0) + stream.duration) * self.info.time_base)
        if container.duration:
            return ((container.start_time or 0) + container.duration) / 1_000_000
        return 0.0

    def close(self) -> None:
        self._container.close()


STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps")


@dataclass(frozen=True)
class SourceSpec:
    """What a source argument (`0`, `/dev/video0`, `rtsp://…`, `video.mp4`) refers to."""

    kind: Literal["file", "webcam", "stream"]
    target: str  # what PyAV opens: a path, a device, a URL
    format: str | None = None  # PyAV input format for devices (v4l2, avfoundation, dshow)

    @property
    def label(self) -> str:
        """How the source is named in messages: never with its credentials or query string."""
        return urls.label(self.target)

    @property
    def is_rtsp(self) -> bool:
        return self.target.lower().startswith(("rtsp://", "rtsps://"))


def parse_source(text: str) -> SourceSpec:
    """Classify a source argument; a malformed URL or unsupported webcam name is a `FacetrackError`."""
    text = text.strip()
    if not text:
        raise FacetrackError("empty source: pass a video file, a webcam (0, /dev/video0) or an rtsp:// URL")
    if text.isdigit():
        return _webcam(int(text))
    if text.startswith("/dev/video"):
        return SourceSpec("webcam", text, "v4l2")
    if text.startswith("video=") and sys.platform == "win32":
        return SourceSpec("webcam", text, "dshow")
    if "://" in text:
        return _stream(text)
    return SourceSpec("file", text)


def _webcam(index: int) -> SourceSpec:
    if sys.platform.startswith("linux"):
        return SourceSpec("webcam", f"/dev/video{index}", "v4l2")
    if sys.platform == "darwin":
        return SourceSpec("webcam", f"{index}:none", "avfoundation")  # video device N, no audio
    if sys.platform == "win32":
        raise FacetrackError(
            f"webcam {index}: on Windows name the camera, e.g. \"video=Integrated Camera\" "
            "(list them with: ffmpeg -list_devices true -f dshow -i dummy)"
        )
    raise FacetrackError(f"webcam {index}: webcams are read on Linux, macOS and Windows only")


def _stream(url: str) -> SourceSpec:
    shown = urls.label(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0–65535
    except ValueError as exc:
        raise FacetrackError(f"malformed URL {shown}: {urls.parse_problem(exc)} "
                             "(expected e.g. rtsp://host:554/path)") from None
    scheme = parts.scheme.lower()
    if scheme not in STREAM_SCHEMES:
        raise FacetrackError(f"unsupported URL scheme {scheme}:// in {shown} "
                             f"(use one of {', '.join(s + '://' for s in STREAM_SCHEMES)})")
    host = parts.hostname or ""
    if not host or any(c.isspace() for c in host) or port == 0:
        raise FacetrackError(f"malformed URL {shown}: it names no host (expected e.g. {scheme}://host:port/path)")
    return SourceSpec("stream", url)


TLS_SCHEMES = {"https": 443, "rtsps": 322, "rtmps": 443}  # stream schemes over TLS, and their default ports
# Where systems keep their CA bundle (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine/macOS, Homebrew). FFmpeg's own
# TLS library looks for it where it was built, which need not be where this system keeps it: it is passed.
_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
               "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem",
               "/usr/local/etc/openssl/cert.pem", "/opt/homebrew/etc/openssl@3/cert.pem")
TLS_OPT_OUT = "live.tls_verify: false"


def ca_bundle() -> str:
    """The CA certificates that vouch for servers: $SSL_CERT_FILE, else this system's bundle (as Python's `ssl`
    and OpenSSL find it, then the usual places, then `certifi` where installed)."""
    named = os.environ.get("SSL_CERT_FILE")
    if named:
        if not Path(named).is_file():
            raise FacetrackError(f"SSL_CERT_FILE={named} is not a file: point it at a PEM bundle of CA "
                                 "certificates, or unset it")
        return named
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_CA_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    try:
        import certifi  # type: ignore[import-not-found]

        return str(certifi.where())
    except ImportError:
        raise FacetrackError("no CA certificate bundle found to check TLS cameras: install your system's "
                             "ca-certificates, point SSL_CERT_FILE at a bundle, or set "
                             f"{TLS_OPT_OUT} (no check at all)") from None


def tls_options(url: str, verify: bool) -> dict[str, str]:
    """FFmpeg options for a TLS stream: verify the certificate and host name against the CA bundle, or not."""
    if urllib.parse.urlsplit(url).scheme.lower() not in TLS_SCHEMES:
        return {}
    if not verify:
        _say_once(logging.WARNING, f"{TLS_OPT_OUT}: the certificate of {urls.origin(url)} is not checked "
                                   "(anyone on the way can pose as this camera)")
        return {"tls_verify": "0"}
    return {"tls_verify": "1", "ca_file": ca_bundle()}


def tls_problem(url: str, timeout: float) -> str | None:
    """Why the server of `url` fails certificate verification, found with Python's TLS (FFmpeg only says
    "Input/output error"); None when it passes, or when the server cannot be reached to tell."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or TLS_SCHEMES.get(parts.scheme.lower(), 443)
        context = ssl.create_default_context(cafile=ca_bundle())
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        why = (exc.verify_message or exc.reason or "not trusted").rstrip(".")
        return f"its TLS certificate is refused ({why})"
    except (OSError, ValueError, FacetrackError):
        return None


class StreamSource:
    """A webcam or network stream, decoded as it arrives; reopened with exponential back-off when it drops.

    Frames are stamped with their arrival time (`pts` counts seconds from the first frame), since a
    stream's own timestamps restart when it is reopened. The first open must succeed: a wrong URL or a
    missing camera is an error at start, not an endless retry. After that, drops are retried until `stop()`.
    An HTTP(S) source whose container has a length is a finite file served over the network: its frames keep
    their own timestamps and it ends at its end (`live` is False).
    """

    def __init__(self, spec: SourceSpec, source_id: str = "0", live: LiveConfig | None = None,
                 hwaccel: HWAccelMode = "none") -> None:
        live = live or LiveConfig()
        self.spec = spec
        self.source_id = source_id
        self.open_timeout = live.open_timeout
        self.read_timeout = live.read_timeout
        self.rtsp_transport = live.rtsp_transport
        self.tls_verify = live.tls_verify
        self.reconnect_initial = live.reconnect_initial
        self.reconnect_max = live.reconnect_max
        # Network video (H.264/HEVC) can decode on the GPU; a webcam's raw or MJPEG frames gain nothing.
        wants_gpu = spec.kind == "stream" and (hwaccel == "cuda" or (hwaccel == "auto"
                                                                     and "cuda" in hardware_decoders()))
        self._hwaccel = HWAccel(device_type="cuda") if wants_gpu else None
        self.reconnects = 0  # successful reopenings after a drop
        self.downtime = 0.0  # seconds spent without a stream, summed over drops
        self.last_reconnect_seconds: float | None = None  # how long the latest drop lasted
        self.connected = False
        self.error: str | None = None
        self.decode_seconds = 0.0
        self._stop = threading.Event()
        self._container = self._open(first=True)
        stream = self._container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 30)
        self.live = spec.kind != "stream" or spec.is_rtsp or not self._container.duration
        self.info = VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=rate,
            time_base=Fraction(1, 90000) if self.live else Fraction(stream.time_base or Fraction(1, 90000)),
            frame_count=0 if self.live else round((self._container.duration or 0) / 1_000_000 * rate),
            has_audio=False,
        )

    def _options(self) -> dict[str, str]:
        if self.spec.kind != "stream":
            return {}
        tls = tls_options(self.spec.target, self.tls_verify)
        if self.spec.is_rtsp:
            # FFmpeg's RTSP `timeout` is the socket I/O timeout in microseconds (older builds: `stimeout`).
            return {"rtsp_transport": self.rtsp_transport, "timeout": str(int(self.read_timeout * 1e6)), **tls}
        return {"rw_timeout": str(int(self.read_timeout * 1e6)), "reconnect": "0", **tls}

    def _open(self, first: bool = False) -> av.container.InputContainer:
        label = self.spec.label
        started = time.monotonic()
        try:
            container = self._open_container()
        except FileNotFoundError:
            if self.spec.kind == "webcam":
                raise FacetrackError(f"camera {label} not found: check it is plugged in "
                                     "(list cameras with: ls /dev/video*)") from None
            raise FacetrackError(f"{label} not found on the server: check the path of the URL") from None
        except (av.error.FFmpegError, OSError) as exc:
            reason = urls.scrub(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
            waited = time.monotonic() - started
            problem = self._certificate_problem()
            if problem is not None:
                raise FacetrackError(f"cannot open stream {label}: {problem}; trust its CA (add it to the system "
                                     f"bundle or SSL_CERT_FILE), or set {TLS_OPT_OUT} to accept any "
                                     "certificate") from None
            if waited >= 0.9 * min(self.open_timeout, self.read_timeout):
                reason = f"no answer within {waited:.0f} s"
            what = "camera" if self.spec.kind == "webcam" else "stream"
            hint = " (is the camera or server running, and the URL right?)" if first else ""
            raise FacetrackError(f"cannot open {what} {label}: {reason}{hint}") from None
        if not container.streams.video:
            container.close()
            raise FacetrackError(f"{label} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self.connected = True
        return container

    def _certificate_problem(self) -> str | None:
        if not self.tls_verify or urllib.parse.urlsplit(self.spec.target).scheme.lower() not in TLS_SCHEMES:
            return None
        return tls_problem(self.spec.target, min(self.open_timeout, 5.0))

    def _open_container(self) -> av.container.InputContainer:
        def open_with(hwaccel: HWAccel | None) -> av.container.InputContainer:
            return av.open(self.spec.target, mode="r", format=self.spec.format, options=self._options(),
                           timeout=(self.open_timeout, self.read_timeout), hwaccel=hwaccel)

        if self._hwaccel is not None:
            try:
                return open_with(self._hwaccel)
            except av.error.FFmpegError as exc:
                container = open_with(None)  # the stream is fine: the GPU decoder is not
                self._hwaccel = None
                _say_once(logging.WARNING, f"hardware decoding is not available for {self.spec.label} "
                                           f"({urls.scrub(getattr(exc, 'strerror', None) or type(exc).__name__)}): "
                                           "decoding in software")
                return container
        return open_with(None)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        t0: float | None = None
        # Live times are arrival times: a long outage is real time passing, not a broken clock.
        clock = StreamClock(float(self.info.fps), max_gap=float("inf") if self.live else 10.0)
        while not self._stop.is_set():
            container = self._container
            stream = container.streams.video[0]
            reason = "the stream ended"
            started = time.perf_counter()
            try:
                for decoded in container.decode(stream):
                    arrival = time.monotonic()
                    image = decoded.to_ndarray(format="bgr24")
                    self.decode_seconds += time.perf_counter() - started
                    if self.live:
                        t0 = arrival if t0 is None else t0
                        raw: float | None = arrival - t0
                    else:
                        raw = float(decoded.pts * decoded.time_base) if decoded.pts is not None else None
                    pts, broke = clock.place(raw)
                    yield Frame(image, index, pts, self.source_id, arrival, discontinuity=broke)
                    index += 1
                    if self._stop.is_set():
                        return
                    started = time.perf_counter()
            except (av.error.FFmpegError, OSError) as exc:
                reason = urls.scrub(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
            self.connected = False
            self._close_container()
            if not self.live:
                if reason != "the stream ended":
                    self.error = f"decoding stopped after {index} frames: {reason}"
                return
            if not self._reconnect(reason):
                return

    def _reconnect(self, reason: str) -> bool:
        """Reopen after a drop, waiting longer after each failure; False once stopped."""
        log.warning("%s: %s; reconnecting", self.spec.label, reason)
        lost = time.monotonic()
        delay = self.reconnect_initial
        failures = 0
        while not self._stop.wait(delay):
            try:
                self._container = self._open()
            except FacetrackError as exc:
                failures += 1
                if failures == 1:  # said once per drop, not at every attempt
                    log.warning("%s; retrying every %.0f s at most", exc, self.reconnect_max)
                delay = min(delay * 2, self.reconnect_max)
                continue
            seconds = time.monotonic() - lost
            self.reconnects += 1
            self.downtime += seconds
            self.last_reconnect_seconds = seconds
            log.warning("%s: reconnected after %.1f s", self.spec.label, seconds)
            return True
        return False

    def stop(self) -> None:
        """Ask the decoding loop (in whatever thread runs it) to end at the next frame or retry."""
        self._stop.set()

    def _close_container(self) -> None:
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError):
            pass

    def close(self) -> None:
        self.stop()
        self._close_container()


Source = FileSource | StreamSource


def open_source(text: str, source_id: str = "0", live: LiveConfig | None = None,
                hwaccel: HWAccelMode = "none") -> Source:
    """Open a file, webcam or stream named the way a user writes it on the command line."""
    spec = parse_source(text)
    if spec.kind == "file":
        return FileSource(spec.target, source_id, hwaccel)
    return StreamSource(spec, source_id, live, hwaccel)


def is_live(source: Source) -> bool:
    return bool(getattr(source, "live", False))


_END = object()


class ThreadedReader:
    """Runs a source's decoding in its own thread, handing frames over through a bounded queue.

    Files (and finite streams): the queue blocks when full (back-pressure, no frame dropped); the pipeline
    never waits on the decoder once frames are buffered. Live sources (`latest_only`): the queue holds the
    newest frame only; a frame not taken before the next one arrives is dropped and counted, so the
    pipeline always works on the present and a slow stage never backs the stream up.
    """

    def __init__(self, source: Source, max_queue: int = 8, latest_only: bool = False,
                 on_frame: threading.Event | None = None) -> None:
        self.source = source
        self.latest_only = latest_only
        self.dropped = 0  # live frames replaced by a newer one before the pipeline took them
        self.decoded = 0
        self._ready = on_frame  # set whenever an item is queued: lets one consumer wait on several readers
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1 if latest_only else max_queue)
        self._stop = threading.Event()
        self._closing = threading.Event()  # the consumer has gone: nobody will take the end marker
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode-{source.source_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                self.decoded += 1
                if self.latest_only:
                    self._put_latest(frame)
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                if self._ready is not None:
                    self._ready.set()
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            self._error = exc
        finally:
            self._put_end()
            if self._ready is not None:
                self._ready.set()

    def _put_latest(self, item: object) -> None:
        # One producer: if the slot is full, the frame in it is stale; swap it for the new one.
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            try:
                self._queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def _put_end(self) -> None:
        if self.latest_only:  # the end must not be lost: it replaces a pending frame, if any
            self._put_latest(_END)
            return
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._closing.is_set():
                    return

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def poll(self) -> Frame | None | object:
        """The next frame without waiting: a `Frame`, None when none is ready, or `ThreadedReader.END`."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _END and self._error is not None:
            raise self._error
        return item

    END = _END

    def depth(self) -> tuple[int, int]:
        """Frames waiting, and how many the queue holds."""
        return self._queue.qsize(), self._queue.maxsize

    def stop(self) -> None:
        """Stop decoding; the reader then queues its end marker."""
        self._stop.set()
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()

    def close(self) -> None:
        self._closing.set()
        self.stop()
        while True:  # unblock a decoder waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5 + getattr(self.source, "read_timeout", 0.0))
        if self._thread.is_alive():
            # Still inside a blocking read: closing the container under it is unsafe; it goes with the process.
            log.warning("%s: the decoder did not stop in time", self.source.source_id)
            return
        self.source.close()
