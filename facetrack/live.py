"""Cameras as the command line and the config name them: `NAME=URL`, or cam0, cam1, … in order.

The threaded runner that watches them is `facetrack.runner.Runner` (`LiveRunner` is its former name).
"""

from __future__ import annotations

from typing import Any

from facetrack.config import CameraConfig as CameraSpec  # noqa: F401 - one camera type: the config's
from facetrack.config import name_cameras as name_sources  # noqa: F401 - callers import it from here


def __getattr__(name: str) -> Any:
    if name == "LiveRunner":  # the runner's former name (README, demos)
        from facetrack.runner import Runner

        return Runner
    raise AttributeError(f"module 'facetrack.live' has no attribute {name!r}")
