"""The runner: sources in, the pipeline's stages in their own threads, sinks out — for files and cameras alike.

    decode (a thread per camera) ─▶ detect+track (one thread, one shared detector, a Pipeline per camera)
        ─▶ identify (one thread: the cameras' crops in one embedding call, a shared gallery, identity state
           per camera) ─▶ events (JSONL, alerts, callbacks) ─▶ render (annotate, record, window)

`facetrack annotate` is the runner over one file with an events file, a video and a progress hook;
`facetrack watch` is the same over cameras. Stages are joined by bounded queues; a stage is a function of its
input, and this module owns the threads, queues, stop signal and back-pressure:
- files (and finite streams) give every frame in order: a full queue makes the stage before it wait, and with
  identity on a file's next frame is tracked once its previous frame's identities are applied, so the events
  are those of `Pipeline.process` frame by frame;
- live sources keep only their newest frame: a frame the pipeline had no time for is dropped and counted, so a
  slow embedder or detector never backs the camera up;
- drawing/recording/display of live cameras skips frames (counted) rather than holding up the events;
- MQTT and webhooks have their own threads and bounded queues (see facetrack/sinks).
SIGINT/SIGTERM (or `stop()`) stop the sources; what is in flight is finished, every track is ended, recordings
are closed playable and events flushed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facetrack.cameras import Camera, open_sources
from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.errors import FacetrackError
from facetrack.identify_stage import join_people
from facetrack.live import CameraSpec
from facetrack.models.faces import FaceModels
from facetrack.pipeline import FrameResult, Pipeline
from facetrack.runner_stages import Item, StageLoops
from facetrack.sinks.alerts import AlertRouter, Publisher
from facetrack.sinks.events import EventWriter
from facetrack.sinks.recorder import Recorder, recording_paths
from facetrack.sinks.video import check_video_output
from facetrack.sources import FileSource, Source, ThreadedReader, is_live, parse_source
from facetrack.stats import RunSummary, StageTimes, StatsReport, rss_mb
from facetrack.store.memory import IdentityMemory, open_memory
from facetrack.types import Event

log = logging.getLogger(__name__)

__all__ = ["Item", "Runner", "annotate_file", "file_runner"]


class Runner(StageLoops):
    """Run the pipeline over one file or several cameras with one set of models; see the module docstring.

    Sinks: `events` (a JSON Lines file, `-` for stdout), `record` (annotated video: the file itself for one
    camera, OUT_<camera>.mp4 each for several), `display` (a window per camera), `publishers` (MQTT, webhooks).
    `on_result(camera, result)` and `on_event(camera, event)` are called from the events thread for every
    frame result and every event (frames, track starts/ends, identity decisions): keep them quick (a progress
    bar). `on_canvas(camera, image)` is called from the render thread with each annotated frame (a live view).

    `sources` (already open, one per camera) are closed by the runner, also when it fails to start.
    `watch` and `annotate` differ only in what they pass: `tag_camera` puts the camera's name first in every
    event; `strict` makes any failure of an output or of the camera end the run and be raised (a file run);
    otherwise a failed output is turned off, a failed camera ends alone, and the run goes on.
    """

    def __init__(
        self,
        config: FacetrackConfig,
        cameras: list[CameraSpec],
        *,
        events: Path | str | None = None,
        record: Path | None = None,
        display: bool = False,
        publishers: list[Publisher] | None = None,
        max_frames: int | None = None,
        detector: FaceDetector | None = None,
        models: FaceModels | None = None,
        sources: list[Source] | None = None,
        on_result: Callable[[str, FrameResult], None] | None = None,
        on_event: Callable[[str, Event], None] | None = None,
        on_canvas: Callable[[str, np.ndarray], None] | None = None,
        tag_camera: bool = True,
        strict: bool = False,
        rotate_events: bool = True,
        record_flag: str = "--record",
        fragment_seconds: float = 2.0,
    ) -> None:
        if not cameras:
            raise FacetrackError("nothing to watch: pass a source (file, webcam 0, rtsp://…) or list cameras: "
                                 "in the config")
        self.config = config
        self.max_frames = max_frames
        self.on_result = on_result
        self.on_event = on_event
        self.tag_camera = tag_camera
        self.strict = strict
        record_paths = recording_paths(record, [c.name for c in cameras])
        self._windows = None
        self._events_writer: EventWriter | None = None
        self.publishers = list(publishers or [])
        self.cameras: list[Camera] = []
        self.memory: IdentityMemory | None = None
        try:
            for path in record_paths.values():
                check_video_output(path, record_flag)
            if sources is None:
                for spec in cameras:
                    parse_source(spec.url)  # a malformed URL fails before anything opens
            if display:
                from facetrack.sinks.window import Windows

                self._windows = Windows()
            sources = sources if sources is not None else open_sources(cameras, config)
            # One set of models for every camera: detector, recognizer and gallery are shared; trackers and
            # identity state are per camera.
            self.models = models or FaceModels.load(config, detector=detector)
            self.embedder, gallery = self.models.embedder, self.models.gallery
            if self.embedder is not None and config.store.path is not None:
                # One identity memory for every camera: a stranger keeps one ID wherever they are seen.
                self.memory = open_memory(config, self.embedder)
                gallery = join_people(gallery, self.memory)
            max_mb = config.live.events_max_mb if rotate_events else None
            self._events_writer = (EventWriter(events, max_bytes=None if max_mb is None else round(max_mb * 2**20))
                                   if events is not None else None)
            shared = FaceModels(self.models.detector, self.embedder, gallery)  # the gallery joined with the store
            for spec, source in zip(cameras, sources, strict=True):
                pipeline = Pipeline(config, models=shared, frame_rate=float(source.info.fps), memory=self.memory,
                                    camera=spec.name, live=is_live(source))
                self.cameras.append(Camera(spec.name, source, pipeline))
        except BaseException:
            for source in sources or []:
                source.close()
            self.cameras = []  # their sources are closed
            self._close_outputs()
            raise
        self.identity_stage = self.embedder is not None
        self.router = AlertRouter(self.publishers, identity_stage=self.identity_stage,
                                  history=self.memory.history if self.memory is not None else None)
        size = config.live.queue_size
        self._q_identify: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_events: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_render: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._render = bool(record_paths) or display or on_canvas is not None
        self._frame_ready = threading.Event()
        self._stopping = threading.Event()
        self._stop_reason = "end"  # "end" (every source finished), or what stopped the run
        self._errors: list[BaseException] = []
        self._output_failures: list[str] = []  # outputs that failed and were turned off; the run went on
        stages = ("detect+track", "embed", "identify", "events") if self.identity_stage else ("detect+track", "events")
        if self._render:
            stages += ("draw", "encode") if record_paths else ("draw",)
        self.times = StageTimes(stages)
        self.recorder = Recorder(config, record_paths, self.times, self._output_failed, flag=record_flag,
                                 fragment_seconds=fragment_seconds, on_canvas=on_canvas,
                                 window=self._windows is not None)
        self._started = time.monotonic()
        self._last_report = self._started

    # ----- control -----------------------------------------------------------------------------------------------

    def stop(self, reason: str = "stop") -> None:
        """End the run: sources stop, what is in flight is finished. Safe from any thread or signal handler."""
        if self._stopping.is_set():
            return
        self._stop_reason = reason
        self._stopping.set()
        for camera in self.cameras:
            if camera.reader is not None:
                camera.reader.stop()

    def _fail(self, stage: str, exc: BaseException) -> None:
        log.error("%s stage failed: %s", stage, exc, exc_info=not isinstance(exc, FacetrackError))
        self._errors.append(exc)
        self.stop("error")

    def _output_failed(self, exc: BaseException) -> None:
        """An output that cannot be written any more is turned off, said once; everything else goes on (strict:
        the run ends and raises it)."""
        if self.strict:
            self._errors.append(exc)
            self.stop("error")
            return
        log.error("%s; that output is turned off, the other outputs, alerts and cameras go on", exc)
        self._output_failures.append(str(exc))

    def _camera_failed(self, camera: Camera, exc: BaseException) -> None:
        """One camera's fault (its decoder, its detection) ends that camera only; the others go on (strict: the
        run ends and raises it)."""
        reason = str(exc) if isinstance(exc, FacetrackError) else f"{type(exc).__name__}: {exc}"
        if self.strict:
            self._errors.append(exc)
            self.stop("error")
        else:
            log.error("camera %s failed: %s; the other cameras go on", camera.name, reason,
                      exc_info=not isinstance(exc, FacetrackError))
        camera.failure = reason
        camera.ended = True
        if camera.reader is not None:
            camera.reader.stop()

    # ----- the run -----------------------------------------------------------------------------------------------

    def run(self, duration: float | None = None, on_stats: Callable[[StatsReport], None] | None = None) -> RunSummary:
        """Run until every source ends, `duration` seconds pass, `stop()` is called or a signal arrives."""
        live_cfg = self.config.live
        for camera in self.cameras:
            camera.reader = ThreadedReader(camera.source, max_queue=live_cfg.queue_size, latest_only=camera.live,
                                           on_frame=self._frame_ready)
            if self._stopping.is_set():  # stop() came before run()
                camera.reader.stop()
        threads = [threading.Thread(target=self._detect_loop, name="detect+track", daemon=True),
                   threading.Thread(target=self._identify_loop, name="identify", daemon=True),
                   threading.Thread(target=self._events_loop, name="events", daemon=True)]
        if self._render:
            threads.append(threading.Thread(target=self._render_loop, name="render", daemon=True))
        self._started = self._last_report = time.monotonic()
        deadline = None if duration is None else self._started + duration
        patience = 30.0  # seconds the stages get to finish what is in flight after a stop
        states: dict[str, str] = {}
        try:
            with self._signals():
                for thread in threads:
                    thread.start()
                while threads[-1].is_alive():
                    if self._windows is not None:
                        self._show_windows()
                        if not self._windows.poll():
                            self.stop("window")
                    else:
                        threads[-1].join(timeout=0.05)
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        self.stop("duration")
                    states = self._publish_state_changes(states)
                    if live_cfg.stats_interval > 0 and now - self._last_report >= live_cfg.stats_interval:
                        report = self.report(since=self._last_report)
                        self._last_report = now
                        self._publish_status(report)
                        if on_stats is not None:
                            on_stats(report)
        except KeyboardInterrupt:
            patience = 1.0  # asked twice: finish the files, do not wait for the stages
            raise
        finally:
            self.stop("end")  # a no-op when a reason was given first
            for thread in threads:
                thread.join(timeout=patience)
            self._publish_state_changes(states)  # a camera that failed at the very end is said too
            for camera in self.cameras:
                if camera.failure is None:  # a failed camera's retained status keeps saying why
                    self.router.status(camera.name, "offline", {})
            self._close_outputs()
        if self._errors:
            raise self._errors[0]
        return self.summary()

    def summary(self) -> RunSummary:
        """What the run did: frames, faces, tracks, embeddings over every camera, seconds per stage, failures."""
        report = self.report(since=self._started)
        errors = [f"camera {c.name}: {c.failure}" for c in self.cameras if c.failure is not None]
        decode_errors = [str(c.source.error) for c in self.cameras if c.source.error]
        pipelines = [c.pipeline for c in self.cameras]
        stages = {"decode": sum(c.source.decode_seconds for c in self.cameras)}
        for pipeline in pipelines:  # the stages of the frames (embed: planning and aligning; the call is below)
            for stage, seconds in pipeline.times.spent().items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        spent = self.times.spent()
        for mine, theirs in (("embed", "embed"), ("draw", "annotate"), ("encode", "encode")):
            if mine in spent:
                stages[theirs] = stages.get(theirs, 0.0) + spent[mine]
        return RunSummary(
            sum(c.frames for c in report.cameras), time.monotonic() - self._started, stages,
            faces=sum(c.faces for c in report.cameras), tracks=sum(c.tracks for c in report.cameras),
            embeddings=sum(p.embeddings for p in pipelines),
            full_detections=sum(p.schedule.full_detections for p in pipelines), stop_reason=self._stop_reason,
            errors=errors + self._output_failures, decode_error=decode_errors[0] if decode_errors else None,
            recordings=[p for p in dict.fromkeys(self.recorder.recorded) if p.exists()], report=report)

    def _close_outputs(self) -> None:
        """Every output finished, each even when another fails to (what was written stays readable)."""
        with contextlib.ExitStack() as outputs:
            for camera in self.cameras:
                outputs.callback(camera.close)
            if self._windows is not None:
                outputs.callback(self._windows.close)
            if hasattr(self, "router"):
                outputs.callback(self.router.close, timeout=2.0)
            else:
                for publisher in self.publishers:
                    outputs.callback(publisher.close, timeout=0.5)
            if self._events_writer is not None:
                outputs.enter_context(self._events_writer)
            if self.memory is not None:
                outputs.callback(self.memory.close)

    def _publish_state_changes(self, states: dict[str, str]) -> dict[str, str]:
        for camera in self.cameras:  # a decoder that stopped on an error: the camera failed
            error = camera.source.error
            if camera.ended and camera.failure is None and error:
                camera.failure = error  # the source has said it; the status alert says it too
        current = {c.name: c.state for c in self.cameras}
        for camera in self.cameras:
            if current[camera.name] != states.get(camera.name) and current[camera.name] != "ended":
                details = {"reason": camera.failure} if camera.failure is not None else {}
                self.router.status(camera.name, current[camera.name], details)
        return current

    def _publish_status(self, report: StatsReport) -> None:
        for cam in report.cameras:
            if cam.state not in ("ended", "failed"):  # a failed camera's status keeps its reason
                self.router.status(cam.name, cam.state, {"fps": round(cam.fps, 2), "frames": cam.frames,
                                                         "dropped": cam.dropped, "reconnects": cam.reconnects})

    def _show_windows(self) -> None:
        assert self._windows is not None
        pictures = self.recorder.take_pictures()
        now = time.monotonic()
        for camera in self.cameras:
            if camera.name in pictures:
                self._windows.show(camera.name, pictures[camera.name], camera.overlay(now))

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM stop the run (a second one quits at once); only the main thread may own signals,
        elsewhere the caller stops the run with stop()."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:
            if self._stopping.is_set():  # a second Ctrl-C: stop waiting for the stages
                raise KeyboardInterrupt
            name = signal.Signals(signum).name
            log.warning("%s: stopping (finishing outputs; press Ctrl-C again to quit at once)", name)
            self.stop(name)

        previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    # ----- stats -------------------------------------------------------------------------------------------------

    def report(self, since: float | None = None) -> StatsReport:
        """The stats now; latency percentiles over the frames since `since` (monotonic time)."""
        now = time.monotonic()
        since = self._started if since is None else since
        cameras = [camera.report(now, self._started, since) for camera in self.cameras]
        queues = {f"decode:{c.name}": c.reader.depth() for c in self.cameras if c.reader is not None}
        queues["identify"] = (self._q_identify.qsize(), self._q_identify.maxsize)
        queues["events"] = (self._q_events.qsize(), self._q_events.maxsize)
        if self._render:
            queues["render"] = (self._q_render.qsize(), self._q_render.maxsize)
        sinks = {p.name: p.describe() for p in self.publishers}
        return StatsReport(now - self._started, cameras, self.times.summary(), queues, sinks, rss_mb())


def file_runner(config: FacetrackConfig, input_path: Path, output_path: Path | None = None,
                events_path: Path | None = None, *, models: FaceModels | None = None,
                on_frame: Callable[[int], None] | None = None, camera: str = "cam0") -> Runner:
    """`facetrack annotate`: the runner over every frame of one file, with an events file (no camera field), an
    annotated video (`-o`, keeping the audio) and a progress hook (`on_frame(index)` after each frame's events).
    Any failure ends the run and is raised; a file cut short says so in the summary's `decode_error`."""
    if output_path is not None:
        check_video_output(output_path)
    source = FileSource(input_path, camera, config.decode.hwaccel)  # the runner closes it, also if it fails
    on_result = None if on_frame is None else (lambda name, result: on_frame(result.frame.index))
    return Runner(config, [CameraSpec(camera, str(input_path))], sources=[source], events=events_path,
                  record=output_path, models=models, on_result=on_result, tag_camera=False, strict=True,
                  rotate_events=False, record_flag="-o", fragment_seconds=1.0)


def annotate_file(config: FacetrackConfig, input_path: Path, output_path: Path | None = None,
                  events_path: Path | None = None, on_frame: Callable[[int], None] | None = None,
                  models: FaceModels | None = None) -> RunSummary:
    """Run the pipeline over every frame of `input_path`, writing the annotated video and/or events."""
    return file_runner(config, input_path, output_path, events_path, models=models, on_frame=on_frame).run()
