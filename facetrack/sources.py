"""Video sources read with PyAV → `Frame`s (pixels + index + presentation time).

Files give every frame, in order, with their PTS. A truncated or corrupt file gives what decodes and then
records why it stopped (`FileSource.error`), so the caller can finish its outputs and say so.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
from av.codec.hwaccel import HWAccel, hwdevices_available

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


def _open_container(path: Path, hwaccel: HWAccelMode = "none") -> av.container.InputContainer:
    if not path.exists():
        raise FacetrackError(f"input file not found: {path}")
    if path.is_dir():
        raise FacetrackError(f"input is a folder, not a video file: {path}")
    device = "cuda" if hwaccel == "cuda" or (hwaccel == "auto" and "cuda" in hardware_decoders()) else None
    hardware_error: str | None = None
    if device is not None:
        try:
            container = av.open(str(path), mode="r", hwaccel=HWAccel(device_type=device))
            return _with_video(path, container)
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:  # no such device here, or a bad file: see below
            hardware_error = getattr(exc, "strerror", None) or type(exc).__name__
    elif hwaccel != "none":
        hardware_error = "this FFmpeg has no cuda device type"
    try:
        container = av.open(str(path), mode="r")
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
        self.info = VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
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
        step = 1.0 / float(self.info.fps)
        last_pts = -step
        started = time.perf_counter()
        try:
            for decoded in self._container.decode(self._stream):
                if decoded.pts is not None:
                    pts = float(decoded.pts * self.info.time_base)
                else:  # streams without timestamps: extrapolate rather than repeat
                    pts = last_pts + step
                last_pts = pts
                image = decoded.to_ndarray(format="bgr24")
                self.decode_seconds += time.perf_counter() - started
                yield Frame(image, index, pts, self.source_id)
                index += 1
                started = time.perf_counter()
        except av.error.FFmpegError as exc:
            # A truncated or damaged file: keep what decoded, say why it stopped.
            self.error = f"decoding stopped after {index} frames: {getattr(exc, 'strerror', exc)}"
            log.warning("%s: %s", self.path, self.error)
        if index == 0 and self.error is None:
            self.error = "no frame could be decoded"
        elif self.error is None and index < self.info.frame_count - float(self.info.fps):
            # FFmpeg ends quietly at a cut-off file; the header's length tells us frames are missing
            # (a second's slack: a container's duration also counts a longer audio track).
            self.error = f"the file ends early: {index} of {self.info.frame_count} frames decoded (truncated?)"

    def close(self) -> None:
        self._container.close()


_END = object()


class ThreadedReader:
    """Runs a source's decoding in its own thread, handing frames over through a bounded queue.

    For files the queue blocks when full (back-pressure, no frame dropped); the pipeline never waits on
    the decoder once frames are buffered.
    """

    def __init__(self, source: FileSource, max_queue: int = 8) -> None:
        self.source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode-{source.source_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            self._error = exc
        finally:
            self._put_end()

    def _put_end(self) -> None:
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set():
                    return

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        while True:  # unblock a decoder waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
        self.source.close()
