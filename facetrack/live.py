"""Cameras as the command line and the config name them: `NAME=URL`, or cam0, cam1, … in order.

The threaded runner that watches them is `facetrack.runner.Runner` (`LiveRunner` is its former name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facetrack.errors import FacetrackError


@dataclass(frozen=True)
class CameraSpec:
    """A named source to watch: a file, a webcam (`0`, `/dev/video0`) or a stream URL."""

    name: str
    url: str


def name_sources(sources: list[str]) -> list[CameraSpec]:
    """Command-line sources → cameras: `NAME=URL` names one, otherwise they are cam0, cam1, …"""
    cameras = []
    for i, text in enumerate(sources):
        name, sep, rest = text.partition("=")
        if sep and rest and name.replace("_", "").replace("-", "").isalnum() and name not in ("video", "audio"):
            cameras.append(CameraSpec(name, rest))
        else:
            cameras.append(CameraSpec(f"cam{i}", text))
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise FacetrackError(f"camera names must be unique: {', '.join(names)}")
    return cameras


def __getattr__(name: str) -> Any:
    if name == "LiveRunner":  # the runner's former name (README, demos)
        from facetrack.runner import Runner

        return Runner
    raise AttributeError(f"module 'facetrack.live' has no attribute {name!r}")
