"""Annotated video written with PyAV: same size, frame rate and timestamps as the input, audio copied.

The audio is remuxed packet by packet (no re-encode) from its own reader of the input, interleaved with
the video as it is written, so the output plays in sync and the input is never read twice into memory.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from facetrack.errors import FacetrackError
from facetrack.private import create_private_file
from facetrack.sources import VideoInfo, ffmpeg_file

log = logging.getLogger(__name__)


# Containers that hold H.264 (and MPEG-4 Part 2, the fallback encoder), by file name ending.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")


def check_video_output(path: Path, flag: str = "-o") -> None:
    """Fail before any work is done if the video cannot be written to `path`, its format included."""
    check_writable(path, flag)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise FacetrackError(f"cannot write {path}: a {path.suffix or 'name without extension'} file cannot hold "
                             f"the H.264 video (name {flag} with one of {', '.join(VIDEO_SUFFIXES)})")


def check_writable(path: Path, flag: str = "-o") -> None:
    """Fail before any work is done if `path` cannot be created."""
    parent = path.expanduser().resolve().parent
    if path.is_dir():
        raise FacetrackError(f"output {path} is a folder: give a file name for {flag}, e.g. out.mp4")
    if not parent.is_dir():
        raise FacetrackError(f"cannot write {path}: folder {parent} does not exist (create it or change {flag})")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise FacetrackError(f"cannot write {path}: permission denied (choose a writable path for {flag})")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):  # also a hard link
            return True
    except OSError:
        pass  # one of them does not exist (yet)
    return a.expanduser().resolve() == b.expanduser().resolve()  # `./x`, `d/../x`, a symlink to x


def check_distinct(inputs: list[tuple[str, Path]], outputs: list[tuple[str, Path]]) -> None:
    """Refuse, before anything is opened, an output that names an input or another output.

    `inputs` and `outputs` are (how the user gave it, path) pairs; the same file reached through a symlink, a
    `./` spelling or a hard link counts as the same.
    """
    checked: list[tuple[str, Path]] = []
    for flag, path in outputs:
        for what, source in inputs:
            if _same_file(path, source):
                raise FacetrackError(f"{flag} {path} is the {what} {source}: writing it would destroy it "
                                     f"(give {flag} another file name)")
        for other_flag, other in checked:
            if _same_file(path, other):
                raise FacetrackError(f"{other_flag} {other} and {flag} {path} name the same file: give each "
                                     "output its own name")
        checked.append((flag, path))


class _AudioCopy:
    """Copies the input's first audio stream into the output, up to a given time."""

    def __init__(self, source: Path, output: av.container.OutputContainer) -> None:
        self._input = av.open(ffmpeg_file(source))
        in_stream = self._input.streams.audio[0]
        self._stream = output.add_stream_from_template(in_stream)
        self._packets = self._input.demux(in_stream)
        self._output = output
        self._pending: av.Packet | None = None
        self._done = False

    def copy_until(self, seconds: float | None) -> None:
        while not self._done:
            packet = self._pending or self._next()
            self._pending = None
            if packet is None:
                return
            if seconds is not None and packet.pts is not None and float(packet.pts * packet.time_base) > seconds:
                self._pending = packet
                return
            packet.stream = self._stream
            self._output.mux(packet)

    def _next(self) -> av.Packet | None:
        try:
            for packet in self._packets:
                if packet.dts is not None:  # the demuxer's final empty packet has none
                    return packet
        except av.error.FFmpegError:
            pass  # damaged audio: keep what was copied, the video matters more
        self._done = True
        return None

    def close(self) -> None:
        self._input.close()


# Fragmented MP4: the file is playable up to its last fragment even if the process is killed.
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}


class VideoWriter:
    """Writes BGR frames with their presentation times to an H.264 (or MPEG-4) file.

    `fragmented` (for live recordings that may run for days): MP4 fragments every two seconds or so, so an
    abrupt end (power cut, kill) loses seconds, not the file.
    """

    def __init__(self, path: Path | str, info: VideoInfo, codec: str = "libx264", crf: int = 23,
                 audio_from: Path | None = None, fragmented: bool = False) -> None:
        self.path = Path(path)
        check_video_output(self.path)
        self.info = info
        options = _FRAGMENTED if fragmented and self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
        try:
            create_private_file(self.path)  # FFmpeg then writes into it and keeps its owner-only mode
        except OSError as exc:
            raise FacetrackError(f"cannot write {self.path}: {exc.strerror}") from None
        try:
            self._container = av.open(ffmpeg_file(self.path), mode="w", options=options)
        except av.error.FFmpegError as exc:
            raise FacetrackError(f"cannot write {self.path}: {exc.strerror} (use a .mp4 or .mkv name)") from None
        self._stream = self._add_video_stream(codec, crf)
        if fragmented:
            self._stream.codec_context.gop_size = max(1, round(2 * float(info.fps)))
        self._audio = None
        if audio_from is not None and info.has_audio:
            try:
                self._audio = _AudioCopy(audio_from, self._container)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("audio not copied to %s: %s", self.path, exc)
        self._last_pts = -1
        self.frames = 0

    @property
    def size(self) -> tuple[int, int]:
        """The encoded (width, height): 4:2:0 needs even sides, so an odd side gains one black row or column."""
        return self.info.width + self.info.width % 2, self.info.height + self.info.height % 2

    def _add_video_stream(self, codec: str, crf: int) -> av.VideoStream:
        if codec not in av.codecs_available:
            log.warning("encoder %s is not available in this PyAV build; writing MPEG-4 instead", codec)
            codec = "mpeg4"
        options = {"crf": str(crf), "preset": "veryfast"} if codec == "libx264" else {}
        stream = self._container.add_stream(codec, rate=self.info.fps, options=options)
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        # Encode in the input's time base so every frame keeps its original timestamp.
        stream.codec_context.time_base = self.info.time_base
        stream.time_base = self.info.time_base
        return stream

    def write(self, image: np.ndarray, pts_seconds: float) -> None:
        if image.shape[:2] != (self.info.height, self.info.width):  # a camera reopened at another resolution
            image = cv2.resize(image, (self.info.width, self.info.height), interpolation=cv2.INTER_AREA)
        width, height = self.size
        if (width, height) != (self.info.width, self.info.height):
            image = cv2.copyMakeBorder(image, 0, height - self.info.height, 0, width - self.info.width,
                                       cv2.BORDER_CONSTANT, value=(0, 0, 0))
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        pts = round(pts_seconds / self.info.time_base)
        pts = max(pts, self._last_pts + 1)  # encoders refuse repeated timestamps
        frame.pts = pts
        frame.time_base = Fraction(self.info.time_base)
        self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.copy_until(pts_seconds)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to call twice."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.copy_until(None)
        finally:
            if self._audio is not None:
                self._audio.close()
            self._container.close()
            self._container = None  # type: ignore[assignment]
