"""Video sources read with PyAV → `Frame`s (pixels + index + presentation time), behind one `Source` protocol.

    base.py    Frame, VideoInfo, the Source protocol, what files and streams share (decoder choice, rate, times)
    clock.py   StreamClock: times that always increase, from stream timestamps that may not
    spec.py    what a source argument names (file, webcam, stream URL), checked before anything opens
    file.py    FileSource: every frame of a file, in order, upright; why it ended early
    stream.py  StreamSource: webcams and network streams, reconnecting with back-off
    tls.py     certificate checks of https://, rtsps:// and rtmps:// streams
    reader.py  ThreadedReader: decoding in its own thread, a bounded queue (files) or the newest frame (live)
"""

from __future__ import annotations

from facetrack.config import LiveConfig
from facetrack.sources.base import Frame, HWAccelMode, Source, VideoInfo, hardware_decoders
from facetrack.sources.clock import StreamClock
from facetrack.sources.file import FileSource, ffmpeg_file
from facetrack.sources.reader import ThreadedReader
from facetrack.sources.spec import STREAM_SCHEMES, SourceSpec, parse_source
from facetrack.sources.stream import StreamSource

__all__ = [
    "STREAM_SCHEMES",
    "FileSource",
    "Frame",
    "HWAccelMode",
    "Source",
    "SourceSpec",
    "StreamClock",
    "StreamSource",
    "ThreadedReader",
    "VideoInfo",
    "ffmpeg_file",
    "hardware_decoders",
    "is_live",
    "open_source",
    "parse_source",
]


def open_source(text: str, source_id: str = "0", live: LiveConfig | None = None,
                hwaccel: HWAccelMode = "none") -> Source:
    """Open a file, webcam or stream named the way a user writes it on the command line."""
    spec = parse_source(text)
    if spec.kind == "file":
        return FileSource(spec.target, source_id, hwaccel)
    return StreamSource(spec, source_id, live, hwaccel)


def is_live(source: Source) -> bool:
    """Whether the source gives the present (newest frame, drops counted) rather than every frame."""
    return source.live
