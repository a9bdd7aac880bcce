"""Sections of what a run shows and sends: the annotated video, cameras, live sources, MQTT and webhooks."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from facetrack.config.base import Section
from facetrack.errors import FacetrackError


class AnnotationConfig(Section):
    """What the annotated video shows."""

    draw_landmarks: bool = Field(True, description="Draw the five landmarks (eyes, nose, mouth corners).")
    codec: str = Field("libx264", description="Falls back to mpeg4 where H.264 is not available.")
    blur: Literal["none", "unknown", "all"] = Field("none", description=(
        "Pixelate face boxes in what is drawn (annotated videos, recordings, the live window and the live page): "
        "unknown: every face without a gallery name (strangers, and faces not yet named: a face is never shown "
        "before it is named); all: every face; none: no face (the default). The events are unchanged."))
    crf: int = Field(23, ge=0, le=51, description="H.264 quality: lower is better and larger (18 looks lossless).")

    @field_validator("codec")
    @classmethod
    def _video_encoder(cls, value: str) -> str:
        import av

        try:
            kind = av.Codec(value, "w").type
        except ValueError:  # av.codec.codec.UnknownCodecError
            return value  # not in this FFmpeg: the writer says so and uses MPEG-4
        if kind != "video":
            article = "an" if kind[0] in "aeiou" else "a"
            raise ValueError(f"{value} is {article} {kind} codec, not a video encoder: use libx264, mpeg4 or "
                             "another video encoder")
        return value


_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_NOT_CAMERA_NAMES = ("video", "audio")  # `video=Integrated Camera` is a DirectShow webcam, not a named source


class CameraConfig(Section):
    """One named camera for `facetrack watch`: its name appears in events, MQTT topics and file names.

    The same type names the cameras of the config file and those of the command line (`NAME=SOURCE`,
    `name_cameras`); `CameraConfig("door", "rtsp://…")` also works.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description=(
        "Letters, digits, '_' and '-' only: the name becomes part of MQTT topics and file names."))
    url: str = Field(description=(
        "rtsp://…, rtsps://…, http(s)://…, a webcam (0, /dev/video0) or a video file; ${NAME} is read from the "
        "environment, so a password need not be written here."))

    def __init__(self, name: str | None = None, url: str | None = None, /, **data: Any) -> None:
        if name is not None:
            data["name"] = name
        if url is not None:
            data["url"] = url
        super().__init__(**data)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _CAMERA_NAME.match(value):
            raise ValueError("camera names use letters, digits, '_' and '-' only (they become MQTT topics)")
        return value


def is_camera_name(text: str) -> bool:
    return bool(_CAMERA_NAME.match(text)) and text not in _NOT_CAMERA_NAMES


def name_cameras(sources: list[str]) -> list[CameraConfig]:
    """Command-line sources → cameras: `NAME=SOURCE` names one (NAME as a camera name must be), otherwise they
    are cam0, cam1, …"""
    cameras = []
    for i, text in enumerate(sources):
        name, sep, rest = text.partition("=")
        if sep and rest and is_camera_name(name):
            cameras.append(CameraConfig(name, rest))
        else:
            cameras.append(CameraConfig(f"cam{i}", text))
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise FacetrackError(f"camera names must be unique: {', '.join(names)}")
    return cameras


class LiveConfig(Section):
    """Live sources (cameras, RTSP, HTTP streams) and the threaded runner behind `facetrack watch`."""

    open_timeout: float = Field(10.0, gt=0, description="Seconds to open a camera or stream.")
    read_timeout: float = Field(5.0, gt=0, description="Seconds without data before a stream counts as dropped.")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description=(
        "How RTSP video travels: tcp (through firewalls and NAT, no lost packets) or udp."))
    tls_verify: bool = Field(True, description=(
        "Check the certificate of https://, rtsps:// and rtmps:// cameras against the system CA bundle (or the "
        "file SSL_CERT_FILE names) and their host name, as a browser does. false accepts any certificate, a "
        "stranger's too: only for a camera on a network you trust whose certificate is self-signed."))
    reconnect_initial: float = Field(0.5, gt=0, description=(
        "First delay before reconnecting; doubles after each failure."))
    reconnect_max: float = Field(30.0, gt=0, description="The longest delay between reconnect attempts.")
    queue_size: int = Field(8, ge=1, description=(
        "Items between stages: files wait when full, live sources keep the newest."))
    stats_interval: float = Field(10.0, ge=0, description="Seconds between stats reports; 0: only at exit.")
    record_segment_minutes: float | None = Field(None, gt=0, description=(
        "A new recording file every N minutes of video."))
    events_max_mb: float | None = Field(None, gt=0, description=(
        "Past this size EVENTS becomes EVENTS.1 and a new one starts."))


class MqttConfig(Section):
    """Alerts published to an MQTT broker under `<topic_prefix>/<camera>/…`."""

    url: str | None = Field(None, description=(
        "The broker: mqtt://[user:pass@]host[:1883]; mqtts:// for TLS; ${NAME} is read from the environment."))
    topic_prefix: str = Field("facetrack", description=(
        "Alerts go to <topic_prefix>/<camera>/<kind>; no MQTT wildcard (#, +) and not empty."))
    qos: int = Field(1, ge=0, le=2, description="MQTT quality of service: 0 at most once, 1 at least once, 2 once.")
    client_id: str | None = Field(None, description="Default: facetrack-<host>-<pid>.")
    queue_size: int = Field(1000, ge=1, description="Messages held while the broker is away; the oldest go first.")

    @field_validator("topic_prefix")
    @classmethod
    def _publishable_prefix(cls, value: str) -> str:
        if not value.strip("/"):
            raise ValueError("the topic prefix is empty: name one, e.g. facetrack or home/cameras")
        wild = sorted({c for c in value if c in "#+"})
        if wild:
            raise ValueError(f"the topic prefix {value!r} holds the wildcard {' and '.join(wild)}, which MQTT "
                             "forbids in published topics: use letters, digits, '_', '-' and '/'")
        return value


class WebhookConfig(Section):
    """Alerts POSTed as JSON to an HTTP endpoint, from their own thread."""

    url: str | None = Field(None, description=(
        "The http(s):// endpoint alerts are POSTed to; ${NAME} is read from the environment. Redirects are not "
        "followed."))
    timeout: float = Field(5.0, gt=0, description="Seconds per request.")
    retries: int = Field(3, ge=0, description="Further tries of a failed post before it is dropped.")
    backoff: float = Field(1.0, gt=0, description="First retry delay; doubles each retry.")
    queue_size: int = Field(1000, ge=1, description="Posts waiting; when full the oldest is dropped (and counted).")
