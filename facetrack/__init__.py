"""facetrack: who is on camera, live — face detection, tracking and stable identities for video."""

from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError
from facetrack.pipeline import FrameResult, Pipeline, annotate_file
from facetrack.sources import FileSource, Frame

__version__ = "0.1.0"
__all__ = ["FacetrackConfig", "FacetrackError", "FileSource", "Frame", "FrameResult", "Pipeline", "annotate_file",
           "load_config"]
