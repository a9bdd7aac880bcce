"""The render side of a run: draw each frame's faces, record it (one file per camera, in segments if asked),
hand it to the window and to live views. Used from the runner's render thread only.

A recording that cannot be written any more (a full disk, a folder gone) stops alone: `on_failure` is told,
the other cameras and outputs go on. Recordings are fragmented MP4: a run cut short still plays up to the cut.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.errors import FacetrackError, OutputError
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.video import VideoWriter
from facetrack.sources import FileSource, Frame, Source
from facetrack.stats import StageTimes

log = logging.getLogger(__name__)


def recording_paths(record: Path | None, names: list[str]) -> dict[str, Path]:
    """Camera name → its recording: `record` itself for one camera, OUT_<camera>.mp4 each for several."""
    if record is None:
        return {}
    if len(names) == 1:
        return {names[0]: record}
    return {name: record.with_name(f"{record.stem}_{name}{record.suffix or '.mp4'}") for name in names}


class Recorder:
    """Annotated frames → recordings, the window's latest picture per camera, and `on_canvas` (a live view).

    `flag` names the option in messages (`-o` for annotate, `--record` for watch); `fragment_seconds` is the
    length of the recordings' fragments (what a cut loses at most).
    """

    def __init__(self, config: FacetrackConfig, paths: dict[str, Path], times: StageTimes,
                 on_failure: Callable[[BaseException], None], *, flag: str = "--record",
                 fragment_seconds: float = 2.0, on_canvas: Callable[[str, np.ndarray], None] | None = None,
                 window: bool = False) -> None:
        self.config = config
        self.paths = paths
        self.times = times
        self.flag = flag
        self.fragment_seconds = fragment_seconds
        self.on_failure = on_failure
        self.on_canvas = on_canvas
        self.window = window
        self.recorded: list[Path] = []  # every recording file opened (segments included)
        self._annotator = FrameAnnotator(config.annotation)
        self._writers: dict[str, VideoWriter] = {}
        self._segments: dict[str, tuple[int, float]] = {}  # camera → (segment number, its first pts)
        self._off: set[str] = set()  # cameras whose recording failed
        self._slots: dict[str, np.ndarray] = {}  # the window's latest picture per camera
        self._lock = threading.Lock()

    def render(self, camera: str, source: Source, frame: Frame, detections: sv.Detections) -> None:
        with self.times.measure("draw"):
            canvas = self._annotator.annotate(frame.image, detections)
        path = self.paths.get(camera)
        if path is not None and camera not in self._off:
            with self.times.measure("encode"):
                try:
                    self._record(camera, source, path, canvas, frame.pts)
                except FacetrackError as exc:  # a full disk, a folder gone: this recording stops, nothing else
                    self._off.add(camera)
                    broken = self._writers.pop(camera, None)
                    if broken is not None:
                        try:
                            broken.close()
                        except FacetrackError:
                            pass  # said already
                    self.on_failure(exc)
        if self.window:
            with self._lock:
                self._slots[camera] = canvas
        if self.on_canvas is not None:
            self.on_canvas(camera, canvas)

    def take_pictures(self) -> dict[str, np.ndarray]:
        """The latest picture of each camera drawn since the last call (for the window, from the main thread)."""
        with self._lock:
            slots, self._slots = self._slots, {}
        return slots

    def _record(self, camera: str, source: Source, path: Path, canvas: np.ndarray, pts: float) -> None:
        """Write a frame to the camera's recording; with `record_segment_minutes`, a new file every N minutes of
        video: OUT-0001.mp4, OUT-0002.mp4, …"""
        minutes = self.config.live.record_segment_minutes
        writer = self._writers.get(camera)
        if minutes is not None:
            number, first = self._segments.get(camera, (0, pts))
            if writer is None or pts - first >= minutes * 60:
                if writer is not None:
                    del self._writers[camera]
                    writer.close()
                number, first = number + 1, pts
                self._segments[camera] = (number, first)
                writer = None
            path = path.with_name(f"{path.stem}-{number:04d}{path.suffix}")
        if writer is None:
            info = replace(source.info, height=canvas.shape[0], width=canvas.shape[1])
            audio = source.path if isinstance(source, FileSource) else None
            writer = self._writers[camera] = VideoWriter(
                path, info, self.config.annotation.codec, self.config.annotation.crf, audio_from=audio,
                fragmented=True, fragment_seconds=self.fragment_seconds, flag=self.flag)  # a cut still plays
            self.recorded.append(path)
        writer.write(canvas, pts)

    def close(self) -> None:
        """Finish every recording; one that cannot be finished is said, the others are still finished."""
        for writer in self._writers.values():
            try:
                writer.close()
            except OutputError as exc:  # the disk filled as it was finished: it plays up to its last fragment
                self.on_failure(exc)
            except Exception as exc:  # one broken recording must not keep the others unfinished
                log.error("could not finish %s: %s", writer.path, exc)
        self._writers = {}
