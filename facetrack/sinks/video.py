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

from facetrack.errors import FacetrackError, OutputError, write_problem
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
        example = {"--stats": "stats.jsonl", "--timeline": "timeline.png", "--plot": "plot.png"}.get(flag, "out.mp4")
        raise FacetrackError(f"output {path} is a folder: give a file name for {flag}, e.g. {path / example}")
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


# Fragmented MP4: the file is playable up to its last fragment even if the process is killed or the disk fills.
# Without B-frames, with negative composition offsets and each fragment's decode time taken from its first frame,
# every frame keeps the input's timestamp (a start offset included) and the frame rate reads right.
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets+frag_discont"}


def trim_fragments(path: Path) -> bool:
    """Cut a fragmented MP4 that a failed write left unfinished back to its last whole fragment; True if it was.

    A fragment is a `moof` box and the `mdat` after it; a box cut by the failed write would make players stop
    with a decoding error at the end, so the file is truncated just before the first incomplete fragment.
    """
    keep = size = 0
    try:
        size = path.stat().st_size
        keep = 0
        with path.open("rb") as handle:
            offset = 0
            while offset + 8 <= size:
                handle.seek(offset)
                header = handle.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1 and len(header) == 16:
                    length = int.from_bytes(header[8:16], "big")
                if length < 8 or offset + length > size:
                    break
                offset += length
                if kind != b"moof":  # a fragment ends with its mdat; the header boxes before any fragment
                    keep = offset
        if keep < size:
            os.truncate(path, keep)
    except OSError as exc:
        log.warning("could not trim the unfinished end of %s: %s", path, exc.strerror)
    return keep < size


def _why_cut(path: Path) -> OSError | None:
    """Why the end of a file could not be written: one byte appended (and taken back) meets the same error."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        return exc
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\0")
        os.ftruncate(fd, size)
        return None
    except OSError as exc:
        return exc
    finally:
        os.close(fd)


class VideoWriter:
    """Writes BGR frames with their presentation times to an H.264 (or MPEG-4) file.

    `fragmented` (for live recordings that may run for days, and annotated files): MP4 fragments every
    `fragment_seconds` or so, so an abrupt end (power cut, kill, a full disk) loses seconds, not the file.
    A write that fails raises `OutputError` (once; the writer is then closed) naming what happened.
    """

    def __init__(self, path: Path | str, info: VideoInfo, codec: str = "libx264", crf: int = 23,
                 audio_from: Path | None = None, fragmented: bool = False, fragment_seconds: float = 2.0,
                 flag: str = "-o") -> None:
        self.path = Path(path)
        self.flag = flag
        self.failed: str | None = None
        check_video_output(self.path, flag)
        self.info = info
        self._fragmented = fragmented and self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
        options = _FRAGMENTED if self._fragmented else {}
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
            self._stream.codec_context.gop_size = max(1, round(fragment_seconds * float(info.fps)))
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
        if self._fragmented:
            options["bf"] = "0"  # no reordering: each fragment starts at its frames' own timestamps
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
        if self._container is None:
            raise OutputError(f"{self.path} is closed" + (f" ({self.failed})" if self.failed else ""))
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.copy_until(pts_seconds)
        except (av.error.FFmpegError, OSError) as exc:
            self._give_up(exc)
        self.frames += 1

    def _give_up(self, exc: BaseException) -> None:
        """A write failed: close what can be closed and say it once; the fragments written still play."""
        self.failed = write_problem(getattr(exc, "strerror", None) or str(exc), getattr(exc, "errno", None),
                                    self.flag)
        self._close_quietly()
        if self._fragmented:
            trim_fragments(self.path)
        raise OutputError(f"cannot write {self.path}: {self.failed}; it plays up to where it stopped") from None

    def _close_quietly(self) -> None:
        container, self._container = self._container, None
        for closing in ((self._audio.close,) if self._audio is not None else ()) + (
                (container.close,) if container is not None else ()):
            try:
                closing()
            except (av.error.FFmpegError, OSError):
                pass  # the disk that failed the write fails the trailer too

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to call twice (and after a failed write)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.copy_until(None)
            if self._audio is not None:
                self._audio.close()
            self._audio = None
            container, self._container = self._container, None
            container.close()
        except (av.error.FFmpegError, OSError) as exc:
            self._give_up(exc)
        # FFmpeg does not always report a write that fails while the file is being finished: a cut last box says it.
        cause = _why_cut(self.path) if self._fragmented else None  # asked before the trim makes room
        if self._fragmented and trim_fragments(self.path):
            self.failed = (write_problem(cause.strerror, cause.errno, self.flag) if cause is not None
                           else "its end could not be written")
            raise OutputError(f"cannot write {self.path}: {self.failed}; it plays up to where it stopped")
