"""Live sources (webcams, RTSP, HTTP streams): decoded as they arrive, reopened with back-off when they drop.

Credentials in a URL never reach a message: everything that prints a source goes through `facetrack.urls`
(`label`, `scrub`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av
from av.codec.hwaccel import HWAccel

from facetrack import urls
from facetrack.config import LiveConfig
from facetrack.errors import FacetrackError
from facetrack.sources import tls
from facetrack.sources.base import (
    DecodeTimer,
    Frame,
    HWAccelMode,
    VideoInfo,
    cuda_wanted,
    estimated_frames,
    ffmpeg_error,
    say_once,
    stream_rate,
    stream_seconds,
)
from facetrack.sources.clock import StreamClock
from facetrack.sources.spec import SourceSpec

log = logging.getLogger(__name__)


class StreamSource(DecodeTimer):
    """A webcam or network stream, decoded as it arrives; reopened with exponential back-off when it drops.

    Frames are stamped with their arrival time (`pts` counts seconds from the first frame), since a
    stream's own timestamps restart when it is reopened. The first open must succeed: a wrong URL or a
    missing camera is an error at start, not an endless retry. After that, drops are retried until `stop()`.
    An HTTP(S) source whose container has a length is a finite file served over the network: its frames keep
    their own timestamps and it ends at its end (`live` is False).
    """

    def __init__(self, spec: SourceSpec, source_id: str = "0", live: LiveConfig | None = None,
                 hwaccel: HWAccelMode = "none") -> None:
        super().__init__()
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
        self._hwaccel = HWAccel(device_type="cuda") if spec.kind == "stream" and cuda_wanted(hwaccel) else None
        self.reconnects = 0  # successful reopenings after a drop
        self.downtime = 0.0  # seconds spent without a stream, summed over drops
        self.last_reconnect_seconds: float | None = None  # how long the latest drop lasted
        self.connected = False
        self.error: str | None = None
        self._stop = threading.Event()
        if tls.is_tls(spec.target) and not self.tls_verify:
            say_once(logging.WARNING, tls.not_verified_warning(spec.target))
        self._container = self._open(first=True)
        stream = self._container.streams.video[0]
        rate = stream_rate(stream)
        self.live = spec.kind != "stream" or spec.is_rtsp or not self._container.duration
        self.info = VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=rate,
            time_base=Fraction(1, 90000) if self.live else Fraction(stream.time_base or Fraction(1, 90000)),
            frame_count=0 if self.live else estimated_frames(self._container, rate),
            has_audio=False,
        )

    @property
    def label(self) -> str:
        return self.spec.label

    def _options(self) -> dict[str, str]:
        if self.spec.kind != "stream":
            return {}
        secure = tls.tls_options(self.spec.target, self.tls_verify)
        if self.spec.is_rtsp:
            # FFmpeg's RTSP `timeout` is the socket I/O timeout in microseconds (older builds: `stimeout`).
            return {"rtsp_transport": self.rtsp_transport, "timeout": str(int(self.read_timeout * 1e6)), **secure}
        return {"rw_timeout": str(int(self.read_timeout * 1e6)), "reconnect": "0", **secure}

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
            reason = urls.scrub(ffmpeg_error(exc))
            waited = time.monotonic() - started
            problem = self._certificate_problem()
            if problem is not None:
                raise FacetrackError(tls.refused_message(label, problem)) from None
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
        """Why a failed open of a verified TLS stream failed, when its certificate is the reason."""
        if not self.tls_verify or not tls.is_tls(self.spec.target):
            return None
        return tls.certificate_problem(self.spec.target, min(self.open_timeout, 5.0))

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
                say_once(logging.WARNING, f"hardware decoding is not available for {self.spec.label} "
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
            try:
                for decoded, image, arrival in self.decode_images(container, stream):
                    if self.live:
                        t0 = arrival if t0 is None else t0
                        raw: float | None = arrival - t0
                    else:
                        raw = stream_seconds(decoded, decoded.time_base)
                    pts, broke = clock.place(raw)
                    yield Frame(image, index, pts, self.source_id, arrival, discontinuity=broke)
                    index += 1
                    if self._stop.is_set():
                        return
            except (av.error.FFmpegError, OSError) as exc:
                reason = urls.scrub(ffmpeg_error(exc))
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
