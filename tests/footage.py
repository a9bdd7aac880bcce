"""Edge-case videos made on the fly with PyAV from the shared media: small, never committed.

Each maker writes one file and returns its path. The pictures come from real footage (the test clip, a
talking head) so that faces are really there where they should be.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def read_frames(path: Path, count: int, size: tuple[int, int] | None = None, start: int = 0) -> list[np.ndarray]:
    """The first `count` frames (from `start`) of a video as BGR arrays, resized to `size` (w, h) if given."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index < start:
                continue
            image = frame.to_ndarray(format="bgr24")
            if size is not None and (image.shape[1], image.shape[0]) != size:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            frames.append(image)
            if len(frames) == count:
                break
    return frames


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = 25, codec: str = "libx264",
                pix_fmt: str = "yuv420p", pts: Sequence[int] | None = None, time_base: Fraction | None = None,
                options: dict[str, str] | None = None, rotation: int | None = None) -> Path:
    """Encode `frames` into `path`; `pts` in `time_base` units (default one per frame at `fps`)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        base = time_base or Fraction(1, fps)
        stream.codec_context.time_base = base
        if rotation is not None:  # a display matrix, as phones write: players turn the picture
            stream.set_display_rotation(rotation)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
            frame.pts = pts[index] if pts is not None else index
            frame.time_base = base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _black_like(image: np.ndarray, count: int) -> list[np.ndarray]:
    return [np.zeros_like(image) for _ in range(count)]


def _shifted_out(image: np.ndarray, fraction: float) -> np.ndarray:
    """The picture slid sideways by `fraction` of its width, the rest black: the person walks out."""
    shift = int(image.shape[1] * fraction)
    out = np.zeros_like(image)
    if shift < image.shape[1]:
        out[:, shift:] = image[:, : image.shape[1] - shift]
    return out


def _transport_stream_segments(path: Path, frames: Sequence[np.ndarray], offsets: Sequence[float],
                               fps: int = 25) -> Path:
    """MPEG-TS segments written one by one and joined byte for byte, each starting at its own time offset:
    two recordings of one camera joined (times go back) or a clock that jumps."""
    half = len(frames) // len(offsets)
    parts = []
    for number, offset in enumerate(offsets):
        part = path.with_suffix(f".{number}.ts")
        start = round(offset * 90000)
        write_video(part, frames[number * half:(number + 1) * half], fps=fps, time_base=Fraction(1, 90000),
                    pts=[start + i * 90000 // fps for i in range(half)])
        parts.append(part)
    with open(path, "wb") as joined:
        for part in parts:
            joined.write(part.read_bytes())
            part.unlink()
    return path


def edge_cases(clip: Path, talking_head: Path, still: Path) -> dict[str, Callable[[Path], Path]]:
    """Name → maker(folder) of every generated edge case."""
    def faces(count: int, size: tuple[int, int] = (320, 180), start: int = 90) -> list[np.ndarray]:
        return read_frames(clip, count, size, start=start)

    def black_start(folder: Path) -> Path:
        shots = faces(16)
        return write_video(folder / "black_start.mp4", _black_like(shots[0], 10) + shots)

    def black_middle(folder: Path) -> Path:
        shots = faces(20)
        return write_video(folder / "black_middle.mp4", shots[:10] + _black_like(shots[0], 10) + shots[10:])

    def black_end(folder: Path) -> Path:
        shots = faces(16)
        return write_video(folder / "black_end.mp4", shots + _black_like(shots[0], 10))

    def leaves_and_returns(folder: Path) -> Path:
        heads = read_frames(talking_head, 30, (256, 256))
        slide = [0.0] * 8 + [0.25, 0.5, 0.75] + [1.0] * 8 + [0.75, 0.5, 0.25] + [0.0] * 8
        return write_video(folder / "leaves_and_returns.mp4",
                           [_shifted_out(image, f) for image, f in zip(heads, slide, strict=False)])

    def odd_641x361(folder: Path) -> Path:
        return write_video(folder / "odd_641x361.mp4", faces(12, (641, 361)), pix_fmt="yuv444p")

    def one_pixel(folder: Path) -> Path:
        return write_video(folder / "one_pixel.mkv", [np.full((1, 1, 3), 90, np.uint8)] * 6, codec="ffv1",
                           pix_fmt="bgr0")

    def strip_2000x2(folder: Path) -> Path:
        strip = cv2.resize(faces(1, (640, 360))[0], (2000, 2), interpolation=cv2.INTER_AREA)
        return write_video(folder / "strip_2000x2.mkv", [strip] * 6, codec="ffv1", pix_fmt="bgr0")

    def rotated(folder: Path) -> Path:
        """Stored lying on its side, with the display matrix that turns it upright (as phones write)."""
        lying = [cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE) for image in faces(12)]
        return write_video(folder / "rotated.mp4", lying, rotation=90)

    def variable_rate(folder: Path) -> Path:
        gaps = [1, 1, 3, 1, 2, 5, 1, 1, 4, 1, 2, 1, 1, 3]
        return write_video(folder / "variable_rate.mkv", faces(len(gaps)), time_base=Fraction(1, 1000),
                           pts=list(np.cumsum([0] + [g * 40 for g in gaps[1:]])))

    def times_go_back(folder: Path) -> Path:
        return _transport_stream_segments(folder / "times_go_back.ts", faces(24), (0.0, 0.0))

    def times_jump(folder: Path) -> Path:
        return _transport_stream_segments(folder / "times_jump.ts", faces(24), (0.0, 3600.0))

    def jpeg_named_mp4(folder: Path) -> Path:
        target = folder / "photo.mp4"
        shutil.copyfile(still, target)
        return target

    def truncated(folder: Path) -> Path:
        """A Matroska file cut in half, as a copy interrupted or a recording killed leaves it."""
        whole = write_video(folder / "whole.mkv", faces(40))
        target = folder / "truncated.mkv"
        target.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        whole.unlink()
        return target

    def codec(name: str, codec: str, pix_fmt: str, suffix: str) -> Callable[[Path], Path]:
        return lambda folder: write_video(folder / f"{name}{suffix}", faces(10), codec=codec, pix_fmt=pix_fmt)

    makers: dict[str, Callable[[Path], Path]] = {
        "black_start": black_start, "black_middle": black_middle, "black_end": black_end,
        "leaves_and_returns": leaves_and_returns, "odd_641x361": odd_641x361, "one_pixel": one_pixel,
        "strip_2000x2": strip_2000x2, "rotated": rotated, "variable_rate": variable_rate,
        "times_go_back": times_go_back, "times_jump": times_jump, "jpeg_named_mp4": jpeg_named_mp4,
        "truncated": truncated,
        "h264_444": codec("h264_444", "libx264", "yuv444p", ".mp4"),
        "h264_10bit": codec("h264_10bit", "libx264", "yuv420p10le", ".mkv"),
        "hevc": codec("hevc", "libx265", "yuv420p", ".mp4"),
        "vp9": codec("vp9", "libvpx-vp9", "yuv420p", ".webm"),
        "av1": codec("av1", "libsvtav1", "yuv420p", ".mkv"),
        "mjpeg": codec("mjpeg", "mjpeg", "yuvj420p", ".avi"),
    }
    return makers
