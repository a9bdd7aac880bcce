"""facetrack: who is on camera, live — face detection, tracking and stable identities for video."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError

if TYPE_CHECKING:
    from facetrack.pipeline import FrameResult, Pipeline
    from facetrack.runner import Runner, annotate_file
    from facetrack.sources import FileSource, Frame

__version__ = "0.1.0"
__all__ = ["FacetrackConfig", "FacetrackError", "FileSource", "Frame", "FrameResult", "Pipeline", "Runner",
           "annotate_file", "load_config"]

_LAZY = {"FrameResult": "facetrack.pipeline", "Pipeline": "facetrack.pipeline", "Runner": "facetrack.runner",
         "annotate_file": "facetrack.runner", "FileSource": "facetrack.sources", "Frame": "facetrack.sources"}


def __getattr__(name: str) -> Any:
    # The models' libraries load with the pipeline, not with the package: commands that only read the store or
    # a gallery start in a fraction of the time.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facetrack' has no attribute {name!r}")
