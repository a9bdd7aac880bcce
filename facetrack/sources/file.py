"""Video files: every frame, in decode order, with its presentation time, turned upright as players show it.

A truncated or corrupt file gives what decodes and then records why it stopped (`FileSource.error`), so the
caller can finish its outputs and say so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
from av.codec.hwaccel import HWAccel

from facetrack.errors import FacetrackError
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

log = logging.getLogger(__name__)


def ffmpeg_file(path: Path) -> str:
    """A local file's name for FFmpeg: absolute, so that `clip:1.mp4` is a file, not the `clip:` protocol."""
    return str(path.absolute())


def _open_container(path: Path, hwaccel: HWAccelMode = "none") -> av.container.InputContainer:
    if not path.exists():
        raise FacetrackError(f"input file not found: {path}")
    if path.is_dir():
        raise FacetrackError(f"input is a folder, not a video file: {path}")
    hardware_error: str | None = None
    if cuda_wanted(hwaccel):
        try:
            container = av.open(ffmpeg_file(path), mode="r", hwaccel=HWAccel(device_type="cuda"))
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
        say_once(logging.WARNING, f"hardware decoding (decode.hwaccel: {hwaccel}) is not available "
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


class FileSource(DecodeTimer):
    """Every frame of a video file, in decode order (a `Source` that is never live)."""

    live = False
    connected = True
    reconnects = 0
    last_reconnect_seconds: float | None = None
    read_timeout = 0.0

    def __init__(self, path: Path | str, source_id: str = "0", hwaccel: HWAccelMode = "none") -> None:
        super().__init__()
        self.path = Path(path)
        self.source_id = source_id
        self._container = _open_container(self.path, hwaccel)
        stream = self._container.streams.video[0]
        codec = stream.codec_context
        self.decoder = "cuda" if codec.is_hwaccel else "software"  # which decoder runs this stream
        if codec.hwaccel is not None:  # opened for hardware decoding: say whether this codec got it
            if codec.is_hwaccel:
                say_once(logging.INFO, f"decoding {codec.name} on the GPU (decode.hwaccel: {hwaccel})")
            else:
                say_once(logging.WARNING, f"the GPU has no {codec.name} decoder (decode.hwaccel: {hwaccel}): "
                                          "decoding in software")
        stream.thread_type = "AUTO"  # FFmpeg's own frame threading: decoding is not the bottleneck
        self._stream = stream
        rate = stream_rate(stream)
        frame_count = int(stream.frames or 0) or estimated_frames(self._container, rate)
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

    @property
    def label(self) -> str:
        return str(self.path)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        clock = StreamClock(float(self.info.fps))
        broke = False
        last_raw: float | None = None
        try:
            for decoded, image, arrival in self.decode_images(self._container, self._stream, self._upright):
                raw = stream_seconds(decoded, self.info.time_base)
                last_raw = raw if raw is not None else last_raw
                pts, jumped = clock.place(raw)
                broke = broke or jumped
                yield Frame(image, index, pts, self.source_id, arrival, discontinuity=jumped)
                index += 1
        except av.error.FFmpegError as exc:
            # A truncated or damaged file: keep what decoded, say why it stopped.
            self.error = f"decoding stopped after {index} frames: {ffmpeg_error(exc)}"
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

    def stop(self) -> None:
        """A file ends at its end; the reader stops taking its frames."""

    def close(self) -> None:
        self._container.close()
