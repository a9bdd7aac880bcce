"""The pipeline: frames in → tracked faces (`sv.Detections`) and events out.

`Pipeline` is the Python API under every command: feed it `Frame`s, read back a `FrameResult` per frame.
`annotate_file` wires a file source, the pipeline and the sinks together for `facetrack annotate`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import supervision as sv

from facetrack.config import FacetrackConfig
from facetrack.detect import FaceDetector
from facetrack.embed import CROP_SIZE, FaceEmbedder, FaceQuality, face_quality
from facetrack.follow import DetectionSchedule
from facetrack.gallery import Enroller, Gallery, open_gallery
from facetrack.identity import IdentityManager, TrackIdentity
from facetrack.models.registry import cache_root, resolve_model
from facetrack.scene import CutDetector, frame_thumbnail
from facetrack.schedule import EmbeddingScheduler
from facetrack.sinks.drawing import FrameAnnotator
from facetrack.sinks.events import Event, EventWriter, frame_event, track_event
from facetrack.sinks.video import VideoWriter, check_video_output
from facetrack.sources import FileSource, Frame, ThreadedReader
from facetrack.store.memory import IdentityMemory, SightingLog, open_memory
from facetrack.track import FaceTracker
from facetrack.types import FRESH, LANDMARKS, set_identity_columns


class StageTimes:
    """Wall time spent per stage, summed over frames."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass
class FrameResult:
    frame: Frame
    detections: sv.Detections  # tracked faces: tracker_id, data["landmarks"] (+ identity fields when enabled)
    started: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    identity_events: list[Event] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)  # tracks whose face changed at once (worth a new look)

    @property
    def events(self) -> list[Event]:
        """This frame's events in order: tracks that start, identity changes, the frame, tracks that end."""
        index, pts = self.frame.index, self.frame.pts
        return ([track_event("track_start", t, index, pts) for t in self.started] + self.identity_events
                + [frame_event(index, pts, self.detections)]
                + [track_event("track_end", t, index, pts) for t in self.ended])


@dataclass
class EmbeddingPlan:
    """The faces of one frame chosen for embedding, aligned and ready for one batched call."""

    positions: list[int]  # rows of the frame's detections
    crops: np.ndarray  # N×112×112×3
    qualities: list[FaceQuality]


class Pipeline:
    """Detection → tracking → (throttled embedding → identity) for one video source, frame by frame.

    `process` runs every stage; the live runner calls the stages separately (`detect_track`, `plan`, the
    shared embedder, `apply`) so that stages run in their own threads and crops of several cameras share one
    embedding call. With an identity memory (`memory`, or `store.path` in the config) strangers get persistent
    IDs and every ended track's sighting is written (`camera` names them); `close()` releases what it opened.
    """

    def __init__(self, config: FacetrackConfig, detector: FaceDetector | None = None, frame_rate: float = 30.0,
                 embedder: FaceEmbedder | None = None, gallery: Gallery | None = None,
                 memory: IdentityMemory | None = None, camera: str = "cam0", live: bool = False) -> None:
        self.config = config
        self.detector = detector or FaceDetector(resolve_model("detector", config.models), config.detector,
                                                 config.runtime)
        self.schedule = DetectionSchedule(self.detector, config.detector, frame_rate, live)
        self.tracker = FaceTracker(config.tracker, frame_rate=frame_rate)
        self.cuts = CutDetector(config.tracker.cut_threshold) if config.tracker.cut_threshold > 0 else None
        self.times = StageTimes()
        self.frames = 0
        self.faces = 0
        self.embeddings = 0
        self.tracks_seen: set[int] = set()
        self._successors: dict[int, int] = {}  # split track → the ID its face went on under
        self.embedder = embedder
        self.gallery = gallery
        if self.embedder is None and identity_wanted(config):
            self.embedder, self.gallery = load_identity_models(config, self.detector)
        self.identity: IdentityManager | None = None
        self.scheduler: EmbeddingScheduler | None = None
        # The identity memory (`store.path`): persistent strangers and sightings. A runner of several cameras
        # passes one shared memory and the gallery already joined with the store's named people.
        self.memory = memory
        self._owns_memory = False
        if self.memory is None and self.embedder is not None and config.store.path is not None:
            self.memory = open_memory(config, self.embedder)
            self._owns_memory = True
            self.gallery = join_people(self.gallery, self.memory)
        self.sightings = SightingLog(camera, config.store.crop_quality) if self.memory is not None else None
        if self.embedder is not None:
            thresholds = config.identity.thresholds_for(self.embedder.name)
            namer = self._stranger_id if self.memory is not None else None
            self.identity = IdentityManager(config.identity, thresholds, self.gallery, name_stranger=namer)
            self.scheduler = EmbeddingScheduler(config.embedding)
        self._memory_version = self.memory.version if self.memory is not None else 0

    def process(self, frame: Frame) -> FrameResult:
        result = self.detect_track(frame)
        plan = self.plan(result)
        vectors = None
        if plan is not None and self.embedder is not None:
            with self.times.measure("embed"):
                vectors = self.embedder.embed_crops(plan.crops)
        self.apply(result, plan, vectors)
        return result

    def detect_track(self, frame: Frame) -> FrameResult:
        with self.times.measure("track"):
            looked_at = self.cuts is not None or self.tracker.changes is not None
            thumbnail = frame_thumbnail(frame.image) if looked_at else None
            cut = self.cuts is not None and self.cuts.is_cut(frame.image, thumbnail)
        with self.times.measure("detect"):  # on the whole frame when due, else faces followed (facetrack/follow.py)
            detections = self.schedule.detect(frame, restart=cut or frame.discontinuity)
        ended: list[int] = []
        with self.times.measure("track"):
            if cut or frame.discontinuity:
                ended = self.tracker.finish()
            update = self.tracker.update(detections, timestamp=frame.pts, image=frame.image, thumbnail=thumbnail)
        self.frames += 1
        self.faces += len(update.detections)
        self.tracks_seen.update(update.started)
        return FrameResult(frame, update.detections, update.started, ended + update.ended, changed=update.changed)

    def plan(self, result: FrameResult) -> EmbeddingPlan | None:
        """Which faces to embed now (throttled), aligned; None when identity is off."""
        if self.scheduler is None or self.embedder is None or self.identity is None:
            return None
        with self.times.measure("embed"):
            detections, pts = result.detections, result.frame.pts
            boxes, landmarks = detections.xyxy, detections.data[LANDMARKS]
            track_ids = [int(t) for t in detections.tracker_id]
            # Size and pose come free with the landmarks; sharpness needs the aligned crop, so only the faces
            # that are due get aligned, in order of need, until the budget is filled.
            views = face_quality(boxes, landmarks)
            plan = EmbeddingPlan([], np.empty((0, CROP_SIZE, CROP_SIZE, 3), np.uint8), [])
            crops = []
            suspect = set(result.changed) | self.identity.doubted_tracks()
            fresh = detections.data.get(FRESH)  # faces followed on a reduced crop wait for a full detection
            for i in self.scheduler.select(track_ids, views, pts, self.identity.decided_tracks(), suspect):
                if fresh is not None and not fresh[i]:
                    self.schedule.want_fresh(boxes[i])
                    continue
                crop = self.embedder.align(result.frame.image, landmarks[i:i + 1])
                quality = face_quality(boxes[i:i + 1], landmarks[i:i + 1], crop)[0]
                if not self.scheduler.trusted(quality):
                    self.scheduler.too_blurred(track_ids[i], pts)
                    continue
                plan.positions.append(i)
                plan.qualities.append(quality)
                crops.append(crop[0])
                if len(crops) == self.config.embedding.max_per_frame:
                    break
            if crops:
                plan.crops = np.stack(crops)
        return plan

    def apply(self, result: FrameResult, plan: EmbeddingPlan | None, vectors: np.ndarray | None) -> None:
        """Feed the new embeddings to the identity stage and label the frame's faces."""
        if self.identity is None or self.scheduler is None:
            return
        with self.times.measure("identify"):
            detections, frame = result.detections, result.frame
            self._follow_splits(result)
            track_ids = [int(t) for t in detections.tracker_id]
            self.identity.begin_frame(frame.index, frame.pts, track_ids)
            if self.memory is not None and self.memory.version != self._memory_version:
                # A shared store changed (a naming, a merge, a forget elsewhere): its people as they are now.
                self._memory_version = self.memory.version
                self.identity.gallery = self.memory.gallery()
                result.identity_events += self.identity.renamed(self.memory.renamed)
            if self.sightings is not None:
                self.sightings.seen(track_ids, frame.pts, frame.arrival)
            self.identity.note_changes(result.changed)
            if plan is not None and vectors is not None:
                for row, (position, vector, quality) in enumerate(zip(plan.positions, vectors, plan.qualities,
                                                                      strict=True)):
                    track_id = track_ids[position]
                    self.scheduler.embedded(track_id, quality, frame.pts)
                    verdict = self.identity.check(track_id, vector, quality.score)
                    if verdict == "same":
                        events = self.identity.observe(track_id, vector, quality.score)
                        result.identity_events += events + self._duplicates(events)
                    elif verdict == "other":
                        track_id = track_ids[position] = self._split(result, position, quality)
                        if self.sightings is not None:  # the new track's sighting starts with this frame
                            self.sightings.seen([track_id], frame.pts, frame.arrival)
                    if self.sightings is not None and verdict != "doubt":  # a doubted look is held back
                        self.sightings.looked(track_id, plan.crops[row], quality.score)
                self.embeddings += len(plan.positions)
            identities, known, sims, states = self.identity.labels(track_ids)
            set_identity_columns(detections, identities, known, sims, states)
            self.close_tracks(result.ended, frame.pts)

    def _follow_splits(self, result: FrameResult) -> None:
        """A frame tracked before one of its tracks was split (live runs track a frame or two ahead of the
        identity stage) shows the new ID."""
        if self._successors:
            ids = result.detections.tracker_id
            for i, track_id in enumerate(ids):
                ids[i] = self._successors.get(int(track_id), int(track_id))

    def _split(self, result: FrameResult, position: int, quality: FaceQuality) -> int:
        """The face at `position` is no longer its track's person: the track ends (its identity is remembered
        with the other ended tracks) and the face goes on under a fresh ID, judged afresh. Returns the new ID."""
        assert self.identity is not None and self.scheduler is not None
        old = int(result.detections.tracker_id[position])
        new = self.tracker.split(old)
        if new is None:  # ended meanwhile (live: the tracker is a frame ahead)
            return old
        self._successors[old] = new
        while len(self._successors) > 64:  # only frames still in flight need them
            del self._successors[next(iter(self._successors))]
        result.detections.tracker_id[position] = new
        result.started.append(new)
        result.ended.append(old)  # closed with this frame's other ended tracks
        self.tracks_seen.add(new)
        self.scheduler.embedded(new, quality, result.frame.pts)
        events = self.identity.split(old, new)
        result.identity_events += events + self._duplicates(events)
        return new

    def finish(self, last_index: int, last_pts: float) -> list[Event]:
        """Events that close the stream: every live track ends (pass them to `close_tracks` next)."""
        return [track_event("track_end", t, last_index, last_pts) for t in self.tracker.finish()]

    def close_tracks(self, track_ids: list[int], pts: float) -> None:
        """The identity stage remembers ended tracks for re-linking, and the identity memory writes their
        sightings: those a frame ended (`apply`) and those ended outside a frame (`finish`: end of stream, a
        camera that dropped; the live runner calls it then)."""
        if self.identity is None or self.scheduler is None:
            return
        for track_id in track_ids:
            if self.sightings is not None:
                self._write_sighting(track_id)
            self.identity.end(track_id, pts)
            self.scheduler.forget(track_id)

    def _write_sighting(self, track_id: int) -> None:
        """An ended track's sighting goes to the identity memory, under the last identity it was given (a track
        torn between two at its end keeps that one, but its mixed evidence joins no stranger's templates)."""
        assert self.sightings is not None and self.memory is not None and self.identity is not None
        track = self.identity.tracks.get(track_id)
        if track is None or track.label is None or track.evidence is None:
            self.sightings.close(track_id, None, None, 0, self.memory.run_id)
            return
        sighting = self.sightings.close(track_id, track.label, track.mean, track.observations, self.memory.run_id)
        if track.state == "known":
            self.memory.left(track.label, self.sightings.camera)
        if sighting is not None:
            self.memory.record(sighting, template=track.state == "unknown")
        if track.anonymous is not None and track.anonymous != track.label:
            self.memory.discard(track.anonymous)  # minted, then the track turned out to be someone known

    def _duplicates(self, events: list[Event]) -> list[Event]:
        """`possible_duplicate` events: a gallery name decided here while it is on another camera (or just was)."""
        if self.memory is None or self.sightings is None:
            return []
        found: list[Event] = []
        for event in events:
            if event.get("state") == "known" and event.get("identity"):
                others = self.memory.arrived(str(event["identity"]), self.sightings.camera)
                if others:
                    found.append({"type": "possible_duplicate", "track_id": event["track_id"],
                                  "identity": event["identity"], "cameras": others, "frame": event["frame"],
                                  "pts": event["pts"]})
        return found

    def _stranger_id(self, track: TrackIdentity) -> str:
        """A track decided unknown gets its persistent ID from the identity memory."""
        assert self.memory is not None
        return self.memory.stranger_label(track.mean, track.observations)

    def close(self) -> None:
        """Release what this pipeline opened itself (its identity memory)."""
        if self._owns_memory and self.memory is not None:
            self.memory.close()
            self.memory = None


def identity_wanted(config: FacetrackConfig) -> bool:
    return (config.identity.enabled or config.identity.gallery is not None or config.models.recognizer is not None
            or config.store.path is not None)


def join_people(gallery: Gallery | None, memory: IdentityMemory) -> Gallery | None:
    """The gallery with the store's named people added (they are named with the stricter bank threshold)."""
    memory.base_gallery = gallery
    people = memory.people()
    if people is None:
        return gallery
    return people if gallery is None else gallery.joined(people)


def load_identity_models(config: FacetrackConfig, detector: FaceDetector) -> tuple[FaceEmbedder, Gallery | None]:
    """The recognizer, and the gallery (built from a photo folder and cached, or read from a .db)."""
    embedder = FaceEmbedder(resolve_model("recognizer", config.models), config.runtime, config.embedding.max_batch)
    gallery = None
    if config.identity.gallery is not None:
        gallery = open_gallery(config.identity.gallery, Enroller(detector, embedder),
                               cache_root(config.models).parent / "galleries")
    return embedder, gallery


@dataclass
class RunSummary:
    frames: int
    faces: int
    tracks: int
    seconds: float
    stage_seconds: dict[str, float]
    decode_error: str | None = None
    embeddings: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def annotate_file(
    config: FacetrackConfig,
    input_path: Path,
    output_path: Path | None,
    events_path: Path | None = None,
    on_frame: Callable[[int], None] | None = None,
    pipeline: Pipeline | None = None,
) -> RunSummary:
    """Run the pipeline over every frame of `input_path`, writing the annotated video and/or events."""
    if output_path is not None:
        check_video_output(output_path)
    source = FileSource(input_path, hwaccel=config.decode.hwaccel)
    reader: ThreadedReader | None = None
    video: VideoWriter | None = None
    events: EventWriter | None = None
    started = time.perf_counter()
    owned = pipeline is None
    try:
        pipeline = pipeline or Pipeline(config, frame_rate=float(source.info.fps))
        annotator = FrameAnnotator(config.annotation)
        events = EventWriter(events_path) if events_path is not None else None
        if output_path is not None:
            # Fragmented: a run cut short (a full disk, a kill) leaves a file that plays up to the cut.
            video = VideoWriter(output_path, source.info, config.annotation.codec, config.annotation.crf,
                                audio_from=input_path, fragmented=True, fragment_seconds=1.0)
        reader = ThreadedReader(source)
        last = (0, 0.0)
        for frame in reader:
            result = pipeline.process(frame)
            if video is not None:
                with pipeline.times.measure("annotate"):
                    canvas = annotator.annotate(frame.image, result.detections)
                with pipeline.times.measure("encode"):
                    video.write(canvas, frame.pts)
            if events is not None:
                events.write(result.events)
            last = (frame.index, frame.pts)
            if on_frame is not None:
                on_frame(frame.index)
        ended = pipeline.finish(*last)
        pipeline.close_tracks([int(e["track_id"]) for e in ended], last[1])  # the last sightings are written
        if events is not None:
            events.write(ended)
    finally:
        # Outputs are finished even when a stage fails, so what was written stays playable.
        if reader is not None:
            reader.close()
        else:
            source.close()
        if video is not None:
            video.close()
        if events is not None:
            events.close()
        if owned and pipeline is not None:
            pipeline.close()
    stages = {"decode": source.decode_seconds, **pipeline.times.seconds}
    return RunSummary(pipeline.frames, pipeline.faces, len(pipeline.tracks_seen), time.perf_counter() - started,
                      stages, source.error, pipeline.embeddings)
