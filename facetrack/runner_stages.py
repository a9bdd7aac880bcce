"""The runner's stage threads: detect+track, identify, events, render (see facetrack/runner.py for the picture).

Each loop takes from the queue before it, does its stage, and hands on; `_DONE` after the last item of the
last camera closes each loop in turn. A stage that fails stops the run; the loops after it keep draining so
that the ones before never wait on a dead one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from facetrack.errors import OutputError
from facetrack.sources import ThreadedReader
from facetrack.types import Event, on_camera, track_event

if TYPE_CHECKING:
    from facetrack.cameras import Camera
    from facetrack.embed import FaceEmbedder
    from facetrack.pipeline import FrameResult
    from facetrack.sinks.alerts import AlertRouter
    from facetrack.sinks.events import EventWriter
    from facetrack.sinks.recorder import Recorder
    from facetrack.stats import StageTimes

log = logging.getLogger(__name__)

_DONE = object()  # after the last item of the last camera


@dataclass
class Item:
    """What flows between the stages after decoding: a camera's frame result, or tracks that ended outside a
    frame (result None: the end of the stream, a drop), with the index and pts they ended at."""

    camera: Camera
    result: FrameResult | None
    ended: list[int] = field(default_factory=list)
    at: tuple[int, float] = (0, 0.0)

    @property
    def events(self) -> list[Event]:
        # Built when asked: the identity stage fills the result in after detection.
        if self.result is not None:
            return self.result.events
        return [track_event("track_end", t, *self.at) for t in self.ended]


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


class StageLoops:
    """The thread loops of `Runner` (which sets up every attribute named here)."""

    cameras: list[Camera]
    embedder: FaceEmbedder | None
    identity_stage: bool
    max_frames: int | None
    tag_camera: bool
    times: StageTimes
    router: AlertRouter
    recorder: Recorder
    on_result: Callable[[str, FrameResult], None] | None
    on_event: Callable[[str, Event], None] | None
    _events_writer: EventWriter | None
    _q_identify: queue.Queue[Any]
    _q_events: queue.Queue[Any]
    _q_render: queue.Queue[Any]
    _render: bool
    _frame_ready: threading.Event

    def stop(self, reason: str = "stop") -> None: ...
    def _fail(self, stage: str, exc: BaseException) -> None: ...
    def _output_failed(self, exc: BaseException) -> None: ...
    def _camera_failed(self, camera: Camera, exc: BaseException) -> None: ...

    # ----- detect+track ------------------------------------------------------------------------------------------

    def _detect_loop(self) -> None:
        """Round-robin over the cameras' newest frames: one detector serves them all, fairly."""
        pending = list(self.cameras)
        try:
            while pending:
                took = False
                for camera in list(pending):
                    assert camera.reader is not None
                    if not camera.settled.is_set():  # a file's previous frame still waits for its identities
                        continue
                    try:
                        frame = camera.reader.poll()
                        if frame is None:
                            self._end_tracks_if_dropped(camera)
                            continue
                        took = True
                        if frame is ThreadedReader.END:
                            pending.remove(camera)
                            camera.ended = True
                            _put(self._q_identify, Item(camera, None, camera.pipeline.end_tracks(), camera.last))
                            continue
                        if self.max_frames is not None and camera.counters.frames >= self.max_frames:
                            continue  # frames decoded before the reader heard it should stop
                        started = time.perf_counter()
                        result = camera.pipeline.detect_track(frame)  # type: ignore[arg-type]
                        self.times.add("detect+track", time.perf_counter() - started)
                    except Exception as exc:  # this camera's decoder or detection: it alone ends
                        self._camera_failed(camera, exc)
                        if camera in pending:
                            pending.remove(camera)
                        _put(self._q_identify, Item(camera, None, camera.pipeline.end_tracks(), camera.last))
                        continue
                    camera.last = (result.frame.index, result.frame.pts)
                    counters = camera.counters
                    counters.frames += 1
                    counters.faces += len(result.detections)
                    counters.arrivals.append(time.monotonic())
                    if self.identity_stage and not camera.live:
                        camera.settled.clear()  # before the put: the identity thread sets it once applied
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
        connected = camera.source.connected
        if not connected and camera.connected:
            ended = camera.pipeline.end_tracks()
            if ended:
                _put(self._q_identify, Item(camera, None, ended, camera.last))
        camera.connected = connected

    # ----- identify ----------------------------------------------------------------------------------------------

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
                ready.camera.settled.set()
                _put(self._q_events, ready)
            if batch:
                self._frame_ready.set()  # a file waiting on its identities may go on
        _put(self._q_events, _DONE)

    def _identify(self, batch: list[Item]) -> None:
        started = time.perf_counter()
        plans = []
        for item in batch:
            stage = item.camera.pipeline.identity
            assert stage is not None
            if item.result is None:  # tracks ended by the end of the stream or a drop: identities remember them
                stage.expire(item.ended, item.at[1])
                continue
            plans.append((item, stage, stage.plan(item.result)))
        crops = [plan.crops for _, _, plan in plans if len(plan.crops)]
        vectors = None
        embed_seconds = 0.0
        if crops and self.embedder is not None:
            embed_started = time.perf_counter()
            vectors = self.embedder.embed_crops(np.concatenate(crops))
            embed_seconds = time.perf_counter() - embed_started
            self.times.add("embed", embed_seconds)
        offset = 0
        for item, stage, plan in plans:
            count = len(plan.crops)
            assert item.result is not None
            mine = vectors[offset:offset + count] if vectors is not None and count else None
            stage.apply(item.result, plan, mine)
            offset += count
        self.times.add("identify", time.perf_counter() - started - embed_seconds)

    # ----- events ------------------------------------------------------------------------------------------------

    def _events_loop(self) -> None:
        """Events out first (file, alerts, callbacks): they are small and what most users wait for."""
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
                self.times.add("events", time.perf_counter() - started)
            if self._render and item.result is not None:
                if item.camera.live:
                    if _put_drop_oldest(self._q_render, item):
                        item.camera.counters.render_dropped += 1
                else:
                    _put(self._q_render, item)

    def _emit(self, item: Item) -> None:
        camera = item.camera
        records = [on_camera(camera.name, event) if self.tag_camera else event for event in item.events]
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

    # ----- render ------------------------------------------------------------------------------------------------

    def _render_loop(self) -> None:
        """Draw, record and hand frames to the window; writers are opened and closed in this thread."""
        failed = False
        try:
            while True:
                item = self._q_render.get()
                if item is _DONE:
                    return
                if failed:
                    continue
                try:
                    result = item.result
                    self.recorder.render(item.camera.name, item.camera.source, result.frame, result.detections)
                except BaseException as exc:
                    failed = True
                    self._fail("render", exc)
        finally:
            self.recorder.close()
