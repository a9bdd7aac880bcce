"""Write a 1920×1080 H.264 copy of a video (upscaled with PyAV/FFmpeg), for the 1080p benchmark.

Frames, frame rate and timestamps stay those of the source; only the picture is scaled (bicubic). The faces do
not gain detail, but every stage that touches full frames (decode, resize for the detector, alignment, drawing,
encoding) pays the 1080p price, which is what the measurement is for.

Usage: python benchmarks/make_1080p_clip.py SOURCE.mp4 -o clip_1080p.mp4 [--frames N] [--crf 18]
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av


def upscale(source: Path, output: Path, width: int = 1920, height: int = 1080, frames: int | None = None,
            crf: int = 18) -> int:
    """Re-encode `source` at width×height into `output`; returns the number of frames written."""
    written = 0
    with av.open(str(source)) as src, av.open(str(output), "w") as dst:
        video = src.streams.video[0]
        video.thread_type = "AUTO"
        stream = dst.add_stream("libx264", rate=video.average_rate,
                                options={"crf": str(crf), "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        time_base = Fraction(video.time_base or Fraction(1, 90000))
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        for frame in src.decode(video):
            if frames is not None and written >= frames:
                break
            scaled = frame.reformat(width=width, height=height, format="yuv420p", interpolation="BICUBIC")
            scaled.pts, scaled.time_base = frame.pts, time_base
            for packet in stream.encode(scaled):
                dst.mux(packet)
            written += 1
        for packet in stream.encode(None):
            dst.mux(packet)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="video to upscale, e.g. short_hamilton_clip.mp4")
    parser.add_argument("-o", "--output", type=Path, required=True, help="1080p .mp4 to write (outside the repo)")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--crf", type=int, default=18, help="x264 quality (lower: better, bigger)")
    args = parser.parse_args()
    count = upscale(args.source, args.output, frames=args.frames, crf=args.crf)
    print(f"wrote {args.output}: {count} frames at 1920×1080 ({args.output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
