"""Where results go: annotated video, JSON Lines events (and, for live sources, window and alerts)."""

from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import EventWriter
from facetrack.sinks.video import VideoWriter

__all__ = ["EventWriter", "FrameAnnotator", "VideoWriter"]
