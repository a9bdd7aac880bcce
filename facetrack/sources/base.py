"""What every source is: `Frame`, `VideoInfo`, the `Source` protocol, and what files and streams share.

Shared by `FileSource` and `StreamSource`: the choice of decoder (`cuda_wanted`), the frame rate and length read
from a stream (`stream_rate`, `estimated_frames`), a frame's stream time (`stream_seconds`) and the decoding loop
that turns PyAV frames into BGR arrays while it counts the time spent (`decode_images`). Times that do not
increase are mended by `StreamClock` (clock.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Protocol, runtime_checkable

import av
import cv2
import numpy as np
from av.codec.hwaccel import hwdevices_available

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


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frame_count: int  # from the stream header, else estimated from the container's duration; 0 if unknown
    has_audio: bool


@runtime_checkable
class Source(Protocol):
    """A video source: iterate it for `Frame`s (in the thread that decodes), ask it how it is doing from others.

    `live` sources (cameras, RTSP) give the present and reconnect when they drop; the others (files, a finite
    stream over HTTP) give every frame and end at their end, `error` saying why when they end early.
    """

    source_id: str
    info: VideoInfo
    live: bool
    connected: bool  # False while a live source is reconnecting
    reconnects: int  # successful reopenings after a drop
    last_reconnect_seconds: float | None  # how long the latest drop lasted
    error: str | None  # why it ended early, if it did
    decode_seconds: float  # time spent decoding (in the thread that iterates it)
    read_timeout: float  # the longest a blocking read may last, in seconds (0: reads do not block)

    @property
    def label(self) -> str:
        """How the source is named in messages: never with a password or a query string."""
        ...

    def __iter__(self) -> Iterator[Frame]: ...

    def stop(self) -> None:
        """Ask the decoding loop (in whatever thread runs it) to end at the next frame or retry."""

    def close(self) -> None: ...


HWAccelMode = Literal["none", "auto", "cuda"]
_said: set[str] = set()  # decoder choices already logged in this process


def say_once(level: int, message: str) -> None:
    """Log `message` the first time only (a decoder choice, a warning true of the whole run)."""
    if message not in _said:
        _said.add(message)
        log.log(level, "%s", message)


def hardware_decoders() -> list[str]:
    """Hardware device types the loaded FFmpeg was built with (a GPU must also be present to use one)."""
    return list(hwdevices_available())


def cuda_wanted(hwaccel: HWAccelMode) -> bool:
    """Whether to open for NVDEC decoding: asked for, or `auto` where this FFmpeg has the cuda device type."""
    return hwaccel == "cuda" or (hwaccel == "auto" and "cuda" in hardware_decoders())


def stream_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's frame rate (average, else guessed, else 30)."""
    return Fraction(stream.average_rate or stream.guessed_rate or 30)


def estimated_frames(container: av.container.InputContainer, rate: Fraction) -> int:
    """Frames in the container's duration at `rate`; 0 when it has no duration (a live stream)."""
    return round((container.duration or 0) / 1_000_000 * rate)


def stream_seconds(decoded: av.VideoFrame, time_base: Fraction) -> float | None:
    """A decoded frame's presentation time in stream seconds, None when it has none (it is then extrapolated)."""
    return float(decoded.pts * time_base) if decoded.pts is not None else None


def ffmpeg_error(exc: BaseException) -> str:
    """What FFmpeg (or the OS) said went wrong, without the file name or URL it quotes."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class DecodeTimer:
    """Counts the seconds a source spends decoding: the time between asking for a frame and having its pixels."""

    def __init__(self) -> None:
        self.decode_seconds = 0.0

    def decode_images(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                      upright: int | None = None) -> Iterator[tuple[av.VideoFrame, np.ndarray, float]]:
        """(PyAV frame, BGR image turned by `upright` if given, arrival time) for each frame of `stream`."""
        started = time.perf_counter()
        for decoded in container.decode(stream):
            arrival = time.monotonic()
            image = decoded.to_ndarray(format="bgr24")
            if upright is not None:
                image = cv2.rotate(image, upright)
            self.decode_seconds += time.perf_counter() - started
            yield decoded, image, arrival
            started = time.perf_counter()
