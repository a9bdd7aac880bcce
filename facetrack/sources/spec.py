"""What a source argument (`0`, `/dev/video0`, `rtsp://…`, `video.mp4`) refers to."""

from __future__ import annotations

import sys
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from facetrack import urls
from facetrack.errors import FacetrackError

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps")
STREAM_FORM = "rtsp://, rtsps://, http(s):// or rtmp(s)://host[:port]/path"


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
    def scheme(self) -> str:
        """The URL scheme of a stream, lower case ("" for files and webcams)."""
        return urllib.parse.urlsplit(self.target).scheme.lower() if self.kind == "stream" else ""

    @property
    def is_rtsp(self) -> bool:
        return self.scheme in ("rtsp", "rtsps")


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
    urls.check_url(url, dict.fromkeys(STREAM_SCHEMES), STREAM_FORM)
    return SourceSpec("stream", url)
