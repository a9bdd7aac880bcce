"""The threaded runner behind `facetrack watch`: many cameras, one set of models, outputs that never stall it.

    decode (a thread per camera) ─▶ detect+track (one thread, one shared detector, a Pipeline per camera)
        ─▶ identify (one thread: the cameras' crops in one embedding call, a shared gallery, identity state
           per camera) ─▶ events (JSONL, alerts, callbacks) ─▶ render (annotate, record, window)

Stages are joined by bounded queues. A stage is a function of its input; this module owns the threads, queues,
stop signal and back-pressure:
- files (and finite streams) give every frame in order: a full queue makes the stage before it wait;
- live sources keep only their newest frame: a frame the pipeline had no time for is dropped and counted, so a
  slow embedder or detector never backs the camera up;
- drawing/recording/display of live cameras skips frames (counted) rather than holding up the events;
- MQTT and webhooks have their own threads and bounded queues (see facetrack/sinks).
SIGINT/SIGTERM (or `stop()`) stop the sources; what is in flight is finished, every track is ended, recordings
are closed playable and events flushed.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facetrack.config import CameraConfig as CameraSpec  # one camera type: the config's
from facetrack.config import FacetrackConfig
from facetrack.config import name_cameras as name_sources  # noqa: F401 - callers import it from here
from facetrack.detect import FaceDetector
from facetrack.errors import FacetrackError, OutputError
from facetrack.models.registry import resolve_model
from facetrack.pipeline import FrameResult, Pipeline, identity_wanted, join_people, load_identity_models
from facetrack.sinks.alerts import AlertRouter, Publisher
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import Event, EventWriter
from facetrack.sinks.video import VideoWriter, check_video_output
from facetrack.sources import FileSource, Source, StreamSource, ThreadedReader, is_live, open_source, parse_source
from facetrack.stats import (
    CameraCounters,
    CameraReport,
    StageTimer,
    StatsReport,
    latency_summary,
    rss_mb,
    stage_summary,
)
from facetrack.store.memory import IdentityMemory, open_memory

log = logging.getLogger(__name__)

_DONE = object()  # after the last item of the last camera


@dataclass
class Camera:
    """One camera's source, reader, per-camera pipeline state and counters."""

    name: str
    source: Source
    pipeline: Pipeline
    reader: ThreadedReader | None = None
    counters: CameraCounters = field(default_factory=CameraCounters)
    last: tuple[int, float] = (0, 0.0)  # index and pts of the latest frame processed
    ended: bool = False
    connected: bool = True  # as last seen by the detection thread
    failure: str | None = None  # why this camera stopped on its own (the others go on)

    @property
    def live(self) -> bool:
        return is_live(self.source)

    @property
    def state(self) -> str:
        if self.failure is not None:
            return "failed"
        if self.ended:
            return "ended"
        connected = getattr(self.source, "connected", True)
        return "online" if connected else "reconnecting"


@dataclass
class Item:
    """What flows between the stages after decoding: a camera's frame result, or events alone (result None:
    the tracks ended by the end of the stream or by a drop)."""

    camera: Camera
    result: FrameResult | None
    ended_events: list[Event] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        # Built when asked: the identity stage fills the result in after detection.
        return self.result.events if self.result is not None else self.ended_events


@dataclass
class LiveSummary:
    seconds: float
    stop_reason: str  # "end" (every source finished), "duration", "SIGINT", "SIGTERM", "window", "stop", "error"
    report: StatsReport
    errors: list[str] = field(default_factory=list)  # cameras that failed, outputs that failed
    recordings: list[Path] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.report.cameras)


def _put(q: queue.Queue[Any], item: object) -> None:
    """Blocking put: the consumer drains until it sees `_DONE`, so this cannot wait forever."""
    q.put(item)


def _put_drop_oldest(q: queue.Queue[Any], item: object) -> bool:
    """Put without waiting; when full, the oldest item makes room. True if one was dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped = True
            except queue.Empty:
                pass


class LiveRunner:
    """Watch several cameras with one set of models; see the module docstring for the threads.

    `on_result(camera, result)` and `on_event(camera, event)` are called from the events thread for every
    frame result and every event (frames, track starts/ends, identity decisions): keep them quick.
    `on_canvas(camera, image)` is called from the render thread with each annotated frame drawn (a live view).
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
        on_result: Callable[[str, FrameResult], None] | None = None,
        on_event: Callable[[str, Event], None] | None = None,
        on_canvas: Callable[[str, np.ndarray], None] | None = None,
    ) -> None:
        if not cameras:
            raise FacetrackError("nothing to watch: pass a source (file, webcam 0, rtsp://…) or list cameras: "
                                 "in the config")
        self.config = config
        self.max_frames = max_frames
        self.on_result = on_result
        self.on_event = on_event
        self.on_canvas = on_canvas
        self.record_paths = self.recording_paths(record, [c.name for c in cameras])
        for path in self.record_paths.values():
            check_video_output(path, "--record")
        for spec in cameras:
            parse_source(spec.url)  # a malformed URL fails before anything opens
        self._windows = None
        if display:
            from facetrack.sinks.window import Windows

            self._windows = Windows()
        self._events_writer: EventWriter | None = None
        self.publishers = list(publishers or [])
        self.cameras: list[Camera] = []
        self.memory: IdentityMemory | None = None
        sources: list[Source] = []
        try:
            sources = self._open_sources(cameras)
            # One set of models for every camera: detector, recognizer and gallery are shared; trackers and
            # identity state are per camera.
            self.detector = detector or FaceDetector(resolve_model("detector", config.models), config.detector,
                                                     config.runtime)
            self.embedder, self.gallery = (load_identity_models(config, self.detector) if identity_wanted(config)
                                           else (None, None))
            if self.embedder is not None and config.store.path is not None:
                # One identity memory for every camera: a stranger keeps one ID wherever they are seen.
                self.memory = open_memory(config, self.embedder)
                self.gallery = join_people(self.gallery, self.memory)
            max_mb = config.live.events_max_mb
            self._events_writer = (EventWriter(events, max_bytes=None if max_mb is None else round(max_mb * 2**20))
                                   if events is not None else None)
            for spec, source in zip(cameras, sources, strict=True):
                pipeline = Pipeline(config, detector=self.detector, frame_rate=float(source.info.fps),
                                    embedder=self.embedder, gallery=self.gallery, memory=self.memory,
                                    camera=spec.name, live=is_live(source))
                self.cameras.append(Camera(spec.name, source, pipeline))
        except BaseException:
            for source in sources:
                source.close()
            self._close_outputs_early()
            raise
        self.identity_stage = self.embedder is not None
        self.router = AlertRouter(self.publishers, identity_stage=self.identity_stage,
                                  history=self.memory.history if self.memory is not None else None)
        size = config.live.queue_size
        self._q_identify: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_events: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._q_render: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._render = record is not None or display or on_canvas is not None
        self._display_slots: dict[str, np.ndarray] = {}
        self._display_lock = threading.Lock()
        self._frame_ready = threading.Event()
        self._stopping = threading.Event()
        self._stop_reason = "end"  # "end" (every source finished), or what stopped the run
        self._errors: list[BaseException] = []
        self._output_failures: list[str] = []  # outputs that failed and were turned off; the run went on
        self._recorded: list[Path] = []  # every recording file opened (segments included)
        self._segments: dict[str, tuple[int, float]] = {}  # camera → (segment number, its first pts)
        self._recording_off: set[str] = set()  # cameras whose recording failed
        stages = ("detect+track", "embed", "identify", "events") if self.identity_stage else ("detect+track", "events")
        self.timers: dict[str, StageTimer] = {name: StageTimer() for name in stages}
        if self._render:
            self.timers["draw"] = StageTimer()
            if self.record_paths:
                self.timers["encode"] = StageTimer()
        self._started = time.monotonic()
        self._last_report = self._started

    # ----- setup -------------------------------------------------------------------------------------------------

    @staticmethod
    def recording_paths(record: Path | None, names: list[str]) -> dict[str, Path]:
        """Camera name → its recording: `record` itself for one camera, OUT_<camera>.mp4 each for several."""
        if record is None:
            return {}
        if len(names) == 1:
            return {names[0]: record}
        return {name: record.with_name(f"{record.stem}_{name}{record.suffix or '.mp4'}") for name in names}

    def _open_sources(self, cameras: list[CameraSpec]) -> list[Source]:
        def open_one(spec: CameraSpec) -> Source:
            return open_source(spec.url, spec.name, self.config.live, self.config.decode.hwaccel)

        # Opened side by side: a few cameras that each take seconds to probe do not add up.
        with ThreadPoolExecutor(max_workers=min(8, len(cameras))) as pool:
            futures = [pool.submit(open_one, spec) for spec in cameras]
        opened: list[Source] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                opened.append(future.result())
            except BaseException as exc:
                failure = failure or exc
        if failure is not None:
            for source in opened:
                source.close()
            raise failure
        return opened

    def _close_outputs_early(self) -> None:
        if self.memory is not None:
            self.memory.close()
        if self._events_writer is not None:
            self._events_writer.close()
        for publisher in self.publishers:
            publisher.close(timeout=0.5)
        if self._windows is not None:
            self._windows.close()

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
        """An output that cannot be written any more is turned off, said once; everything else goes on."""
        log.error("%s; that output is turned off, the other outputs, alerts and cameras go on", exc)
        self._output_failures.append(str(exc))

    def _camera_failed(self, camera: Camera, exc: BaseException) -> None:
        """One camera's fault (its decoder, its detection) ends that camera only; the others go on."""
        reason = str(exc) if isinstance(exc, FacetrackError) else f"{type(exc).__name__}: {exc}"
        log.error("camera %s failed: %s; the other cameras go on", camera.name, reason,
                  exc_info=not isinstance(exc, FacetrackError))
        camera.failure = reason
        camera.ended = True
        if camera.reader is not None:
            camera.reader.stop()

    # ----- stage threads -----------------------------------------------------------------------------------------

    def _detect_loop(self) -> None:
        """Round-robin over the cameras' newest frames: one detector serves them all, fairly."""
        pending = list(self.cameras)
        timer = self.timers["detect+track"]
        try:
            while pending:
                took = False
                for camera in list(pending):
                    assert camera.reader is not None
                    try:
                        frame = camera.reader.poll()
                        if frame is None:
                            self._end_tracks_if_dropped(camera)
                            continue
                        took = True
                        if frame is ThreadedReader.END:
                            pending.remove(camera)
                            camera.ended = True
                            _put(self._q_identify, Item(camera, None, camera.pipeline.finish(*camera.last)))
                            continue
                        if self.max_frames is not None and camera.counters.frames >= self.max_frames:
                            continue  # frames decoded before the reader heard it should stop
                        started = time.perf_counter()
                        result = camera.pipeline.detect_track(frame)  # type: ignore[arg-type]
                        timer.add(time.perf_counter() - started)
                    except Exception as exc:  # this camera's decoder or detection: it alone ends
                        self._camera_failed(camera, exc)
                        if camera in pending:
                            pending.remove(camera)
                        _put(self._q_identify, Item(camera, None, camera.pipeline.finish(*camera.last)))
                        continue
                    camera.last = (result.frame.index, result.frame.pts)
                    counters = camera.counters
                    counters.frames += 1
                    counters.faces += len(result.detections)
                    counters.arrivals.append(time.monotonic())
                    _put(self._q_identify, Item(camera, result))
                    if self.max_frames is not None and counters.frames >= self.max_frames:
                        camera.reader.stop()
                if not took:
                    self._frame_ready.wait(0.05)
                    self._frame_ready.clear()
        except BaseException as exc:
            self._fail("detect+track", exc)
        finally:
            _put(self._q_identify, _DONE)

    def _end_tracks_if_dropped(self, camera: Camera) -> None:
        """A stream that dropped ends its tracks now: nobody is seen leaving while the camera is away."""
        connected = getattr(camera.source, "connected", True)
        if not connected and camera.connected:
            events = camera.pipeline.finish(*camera.last)
            if events:
                _put(self._q_identify, Item(camera, None, events))
        camera.connected = connected

    def _identify_loop(self) -> None:
        """Embedding + identity: what is waiting, at most one frame per camera, goes through one embedding call."""
        failed = False
        held: Item | None = None  # taken from the queue but belonging to the next batch
        done = False
        while not done:
            batch: list[Item] = []
            item = held if held is not None else self._q_identify.get()
            held = None
            while True:
                if item is _DONE:
                    done = True
                    break
                batch.append(item)
                if any(b.camera is item.camera for b in batch[:-1]):
                    held = batch.pop()  # a camera's frames go in order, one per batch
                    break
                try:
                    item = self._q_identify.get_nowait()
                except queue.Empty:
                    break
            if self.identity_stage and not failed and batch:
                try:
                    self._identify(batch)
                except BaseException as exc:
                    failed = True  # keep draining so the stages before never wait on a dead one
                    self._fail("identify", exc)
            for ready in batch:
                _put(self._q_events, ready)
        _put(self._q_events, _DONE)

    def _identify(self, batch: list[Item]) -> None:
        started = time.perf_counter()
        plans = []
        for item in batch:
            pipeline = item.camera.pipeline
            if item.result is None:  # tracks ended by the end of the stream or a drop: identities remember them
                ended = [int(e["track_id"]) for e in item.ended_events if e["type"] == "track_end"]
                pipeline.close_tracks(ended, item.camera.last[1])
                continue
            plans.append((item, pipeline.plan(item.result)))
        crops = [plan.crops for _, plan in plans if plan is not None and len(plan.crops)]
        vectors = None
        embed_seconds = 0.0
        if crops and self.embedder is not None:
            embed_started = time.perf_counter()
            vectors = self.embedder.embed_crops(np.concatenate(crops))
            embed_seconds = time.perf_counter() - embed_started
            self.timers["embed"].add(embed_seconds)
        offset = 0
        for item, plan in plans:
            count = len(plan.crops) if plan is not None else 0
            assert item.result is not None
            mine = vectors[offset:offset + count] if vectors is not None and count else None
            item.camera.pipeline.apply(item.result, plan, mine)
            offset += count
        self.timers["identify"].add(time.perf_counter() - started - embed_seconds)

    def _events_loop(self) -> None:
        """Events out first (file, alerts, callbacks): they are small and what most users wait for."""
        timer = self.timers["events"]
        failed = False
        while True:
            item = self._q_events.get()
            if item is _DONE:
                if self._render:
                    _put(self._q_render, _DONE)
                return
            if not failed:
                started = time.perf_counter()
                try:
                    self._emit(item)
                except BrokenPipeError:  # `--events -` piped into a program that has quit: the run ends with it
                    failed = True
                    log.warning("the events output was closed: stopping")
                    self.stop("events closed")
                except BaseException as exc:
                    failed = True
                    self._fail("events", exc)
                timer.add(time.perf_counter() - started)
            if self._render and item.result is not None:
                if item.camera.live:
                    if _put_drop_oldest(self._q_render, item):
                        item.camera.counters.render_dropped += 1
                else:
                    _put(self._q_render, item)

    def _emit(self, item: Item) -> None:
        camera = item.camera
        records = [{"camera": camera.name, **event} for event in item.events]
        if self._events_writer is not None and records:
            try:
                self._events_writer.write(records)
            except OutputError as exc:
                self._events_writer = None
                self._output_failed(exc)
        for record in records:
            self.router.handle(camera.name, record)
            if self.on_event is not None:
                self.on_event(camera.name, record)
        if item.result is not None:
            now = time.monotonic()
            camera.counters.latency.append((now, now - item.result.frame.arrival))
            if self.on_result is not None:
                self.on_result(camera.name, item.result)

    def _render_loop(self) -> None:
        """Draw, record and hand frames to the window; writers are opened and closed in this thread."""
        annotator = FrameAnnotator(self.config.annotation)
        writers: dict[str, VideoWriter] = {}
        failed = False
        try:
            while True:
                item = self._q_render.get()
                if item is _DONE:
                    return
                if failed:
                    continue
                try:
                    self._render_one(item, annotator, writers)
                except BaseException as exc:
                    failed = True
                    self._fail("render", exc)
        finally:
            for writer in writers.values():
                try:
                    writer.close()
                except OutputError as exc:  # the disk filled as it was finished: it plays up to its last fragment
                    self._output_failed(exc)
                except Exception as exc:  # one broken recording must not keep the others unfinished
                    log.error("could not finish %s: %s", writer.path, exc)

    def _render_one(self, item: Item, annotator: FrameAnnotator, writers: dict[str, VideoWriter]) -> None:
        camera, result = item.camera, item.result
        assert result is not None
        started = time.perf_counter()
        canvas = annotator.annotate(result.frame.image, result.detections)
        self.timers["draw"].add(time.perf_counter() - started)
        path = self.record_paths.get(camera.name)
        if path is not None and camera.name not in self._recording_off:
            started = time.perf_counter()
            try:
                self._record(camera, path, canvas, result.frame.pts, writers)
            except FacetrackError as exc:  # a full disk, a folder gone: this recording stops, nothing else
                self._recording_off.add(camera.name)
                broken = writers.pop(camera.name, None)
                if broken is not None:
                    try:
                        broken.close()
                    except FacetrackError:
                        pass  # said already
                self._output_failed(exc)
            self.timers["encode"].add(time.perf_counter() - started)
        if self._windows is not None:
            with self._display_lock:
                self._display_slots[camera.name] = canvas
        if self.on_canvas is not None:
            self.on_canvas(camera.name, canvas)

    def _record(self, camera: Camera, path: Path, canvas: np.ndarray, pts: float,
                writers: dict[str, VideoWriter]) -> None:
        """Write a frame to the camera's recording; with `record_segment_minutes`, a new file every N minutes of
        video: OUT-0001.mp4, OUT-0002.mp4, …"""
        minutes = self.config.live.record_segment_minutes
        writer = writers.get(camera.name)
        if minutes is not None:
            number, first = self._segments.get(camera.name, (0, pts))
            if writer is None or pts - first >= minutes * 60:
                if writer is not None:
                    del writers[camera.name]
                    writer.close()
                number, first = number + 1, pts
                self._segments[camera.name] = (number, first)
                writer = None
            path = path.with_name(f"{path.stem}-{number:04d}{path.suffix}")
        if writer is None:
            writer = writers[camera.name] = self._open_writer(camera, path, canvas)
            self._recorded.append(path)
        writer.write(canvas, pts)

    def _open_writer(self, camera: Camera, path: Path, canvas: np.ndarray) -> VideoWriter:
        from dataclasses import replace

        info = replace(camera.source.info, height=canvas.shape[0], width=canvas.shape[1])
        audio = camera.source.path if isinstance(camera.source, FileSource) else None
        return VideoWriter(path, info, self.config.annotation.codec, self.config.annotation.crf, audio_from=audio,
                           fragmented=True, flag="--record")  # a cut (kill, full disk) still plays

    # ----- the run -----------------------------------------------------------------------------------------------

    def run(self, duration: float | None = None, on_stats: Callable[[StatsReport], None] | None = None) -> LiveSummary:
        """Watch until every source ends, `duration` seconds pass, `stop()` is called or a signal arrives."""
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
        previous = self._install_signal_handlers()
        self._started = self._last_report = time.monotonic()
        deadline = None if duration is None else self._started + duration
        patience = 30.0  # seconds the stages get to finish what is in flight after a stop
        states: dict[str, str] = {}
        try:
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
            self._restore_signal_handlers(previous)
            self.stop("end")  # a no-op when a reason was given first
            for thread in threads:
                thread.join(timeout=patience)
            self._publish_state_changes(states)  # a camera that failed at the very end is said too
            for camera in self.cameras:
                if camera.failure is None:  # a failed camera's retained status keeps saying why
                    self.router.status(camera.name, "offline", {})
            self._finish_outputs()
        if self._errors:
            raise self._errors[0]
        errors = [f"camera {c.name}: {c.failure}" for c in self.cameras if c.failure is not None]
        errors += self._output_failures
        return LiveSummary(time.monotonic() - self._started, self._stop_reason, self.report(since=self._started),
                           errors, [p for p in dict.fromkeys(self._recorded) if p.exists()])

    def _publish_state_changes(self, states: dict[str, str]) -> dict[str, str]:
        for camera in self.cameras:  # a decoder that stopped on an error: the camera failed
            error = getattr(camera.source, "error", None)
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
        with self._display_lock:
            slots, self._display_slots = self._display_slots, {}
        now = time.monotonic()
        for camera in self.cameras:
            image = slots.get(camera.name)
            if image is None:
                continue
            counters = camera.counters
            latency = counters.latency[-1][1] * 1000 if counters.latency else 0.0
            dropped = camera.reader.dropped if camera.reader else 0
            reconnects = getattr(camera.source, "reconnects", 0)
            lines = [f"{camera.name}  {counters.fps(now):.1f} fps  latency {latency:.0f} ms",
                     f"dropped {dropped + counters.render_dropped}  reconnects {reconnects}"
                     + ("" if camera.state == "online" else f"  [{camera.state}]")]
            self._windows.show(camera.name, image, lines)

    def _finish_outputs(self) -> None:
        if self.memory is not None:
            self.memory.close()
        if self._events_writer is not None:
            self._events_writer.close()
        self.router.close(timeout=2.0)
        if self._windows is not None:
            self._windows.close()
        for camera in self.cameras:
            if camera.reader is not None:
                camera.reader.close()
            else:
                camera.source.close()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may own signals; the caller then stops the run with stop()
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: object) -> None:
            if self._stopping.is_set():  # a second Ctrl-C: stop waiting for the stages
                raise KeyboardInterrupt
            name = signal.Signals(signum).name
            log.warning("%s: stopping (finishing outputs; press Ctrl-C again to quit at once)", name)
            self.stop(name)

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    # ----- stats -------------------------------------------------------------------------------------------------

    def report(self, since: float | None = None) -> StatsReport:
        """The stats now; latency percentiles over the frames since `since` (monotonic time)."""
        now = time.monotonic()
        since = self._started if since is None else since
        cameras = []
        for camera in self.cameras:
            counters = camera.counters
            source = camera.source
            cameras.append(CameraReport(
                name=camera.name,
                source=source.spec.label if isinstance(source, StreamSource) else str(source.path),
                live=camera.live,
                state=camera.state,
                frames=counters.frames,
                fps=counters.fps(now) if not camera.ended else counters.frames / max(now - self._started, 1e-9),
                faces=counters.faces,
                tracks=len(camera.pipeline.tracks_seen),
                dropped=camera.reader.dropped if camera.reader is not None else 0,
                render_dropped=counters.render_dropped,
                reconnects=getattr(source, "reconnects", 0),
                last_reconnect_s=getattr(source, "last_reconnect_seconds", None),
                latency_ms=latency_summary(counters.latency, since),
            ))
        stages = {name: stage_summary(timer) for name, timer in self.timers.items() if timer.calls}
        queues = {f"decode:{c.name}": c.reader.depth() for c in self.cameras if c.reader is not None}
        queues["identify"] = (self._q_identify.qsize(), self._q_identify.maxsize)
        queues["events"] = (self._q_events.qsize(), self._q_events.maxsize)
        if self._render:
            queues["render"] = (self._q_render.qsize(), self._q_render.maxsize)
        sinks = {p.name: p.describe() for p in self.publishers}
        return StatsReport(now - self._started, cameras, stages, queues, sinks, rss_mb())
