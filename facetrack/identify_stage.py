"""The identity stage of one camera: which faces to embed now, what their embeddings say, what ended tracks leave.

    plan(result)                 → the faces due for a look (throttled by `schedule.py`), aligned for one call
    apply(result, plan, vectors) → evidence to the identity manager (`identity.py`), identity columns on the faces,
                                   identity events, splits of tracks that changed person, sightings
    expire(track_ids, pts)       → ended tracks: remembered for re-linking, their sightings written

The embedding call itself sits between `plan` and `apply` so that a runner can batch the crops of several
cameras into one call. With an identity memory (`memory`, or `store.path` in the config) strangers get
persistent IDs and every ended track's sighting is written under `camera`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facetrack.config import FacetrackConfig
from facetrack.embed import CROP_SIZE, FaceEmbedder, FaceQuality, face_quality
from facetrack.gallery import Gallery
from facetrack.identity import IdentityManager, TrackIdentity
from facetrack.schedule import EmbeddingScheduler
from facetrack.stats import StageTimes
from facetrack.store.memory import IdentityMemory, SightingLog, open_memory
from facetrack.types import FRESH, LANDMARKS, Event, IdentityEvent, duplicate_event, set_identity_columns

if TYPE_CHECKING:  # the pipeline imports this module
    from facetrack.pipeline import FrameResult


@dataclass
class EmbeddingPlan:
    """The faces of one frame chosen for embedding, aligned and ready for one batched call."""

    positions: list[int]  # rows of the frame's detections
    crops: np.ndarray  # N×112×112×3
    qualities: list[FaceQuality]


def join_people(gallery: Gallery | None, memory: IdentityMemory) -> Gallery | None:
    """The gallery with the store's named people added (they are named with the stricter bank threshold)."""
    memory.base_gallery = gallery
    people = memory.people()
    if people is None:
        return gallery
    return people if gallery is None else gallery.joined(people)


class IdentityStage:
    """Scheduler, identity manager and sightings of one camera; the embedder, gallery and memory may be shared.

    `split(track_id)` asks the tracker to go on with a track's face under a fresh ID (None: it ended meanwhile).
    """

    def __init__(self, config: FacetrackConfig, embedder: FaceEmbedder, gallery: Gallery | None,
                 split: Callable[[int], int | None], memory: IdentityMemory | None = None, camera: str = "cam0",
                 times: StageTimes | None = None, want_fresh: Callable[[np.ndarray], None] | None = None) -> None:
        self.config = config
        # Asks the detection schedule to follow a face at full scale next frame (called from the identity thread
        # in live runs: a request lost to a race only means one frame later).
        self._want_fresh = want_fresh
        self.embedder = embedder
        self.times = times or StageTimes()
        self.embeddings = 0
        self._split_track = split
        self._successors: dict[int, int] = {}  # split track → the ID its face went on under
        # The identity memory (`store.path`): persistent strangers and sightings. A runner of several cameras
        # passes one shared memory and the gallery already joined with the store's named people.
        self.memory = memory
        self._owns_memory = False
        if self.memory is None and config.store.path is not None:
            self.memory = open_memory(config, embedder)
            self._owns_memory = True
            gallery = join_people(gallery, self.memory)
        self.gallery = gallery
        self.sightings = SightingLog(camera, config.store.crop_quality) if self.memory is not None else None
        thresholds = config.identity.thresholds_for(embedder.name)
        namer = self._stranger_id if self.memory is not None else None
        self.identity = IdentityManager(config.identity, thresholds, gallery, name_stranger=namer,
                                        strangers=self.memory.resembles if self.memory is not None else None)
        self.scheduler = EmbeddingScheduler(config.embedding)
        self._memory_version = self.memory.version if self.memory is not None else 0

    def plan(self, result: FrameResult) -> EmbeddingPlan:
        """Which faces to embed now (throttled), aligned."""
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
                    if self._want_fresh is not None:
                        self._want_fresh(boxes[i])
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

    def embed(self, plan: EmbeddingPlan) -> np.ndarray:
        """The plan's crops embedded in one call (a runner of several cameras makes one call for all)."""
        with self.times.measure("embed"):
            return self.embedder.embed_crops(plan.crops)

    def apply(self, result: FrameResult, plan: EmbeddingPlan | None, vectors: np.ndarray | None) -> None:
        """Feed the new embeddings to the identity manager, label the frame's faces, expire its ended tracks."""
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
            gates = self.scheduler.gates(track_ids, detections.xyxy, detections.data[LANDMARKS])
            set_identity_columns(detections, identities, known, sims, states, self.identity.reasons(track_ids, gates))
            if self.memory is not None:  # people ignored in the store: their events and faces say so
                self.memory.mark(result.identity_events, detections)
            self.expire(result.ended, frame.pts)

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
        old = int(result.detections.tracker_id[position])
        new = self._split_track(old)
        if new is None:  # ended meanwhile (live: the tracker is a frame ahead)
            return old
        self._successors[old] = new
        while len(self._successors) > 64:  # only frames still in flight need them
            del self._successors[next(iter(self._successors))]
        result.detections.tracker_id[position] = new
        result.started.append(new)
        result.ended.append(old)  # closed with this frame's other ended tracks
        self.scheduler.embedded(new, quality, result.frame.pts)
        events = self.identity.split(old, new)
        result.identity_events += events + self._duplicates(events)
        return new

    def expire(self, track_ids: list[int], pts: float) -> None:
        """Tracks that ended, by a frame or outside one (end of stream, a camera that dropped): the identity
        manager remembers them for re-linking and the identity memory writes their sightings."""
        for track_id in track_ids:
            if self.sightings is not None:
                self._write_sighting(track_id)
            self.identity.end(track_id, pts)
            self.scheduler.forget(track_id)

    def _write_sighting(self, track_id: int) -> None:
        """An ended track's sighting goes to the identity memory, under the last identity it was given (a track
        torn between two at its end keeps that one, but its mixed evidence joins no stranger's templates)."""
        assert self.sightings is not None and self.memory is not None
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

    def _duplicates(self, events: list[IdentityEvent]) -> list[Event]:
        """`possible_duplicate` events: a gallery name decided here while it is on another camera (or just was)."""
        if self.memory is None or self.sightings is None:
            return []
        found: list[Event] = []
        for event in events:
            if event["state"] == "known" and event["identity"]:
                others = self.memory.arrived(str(event["identity"]), self.sightings.camera)
                if others:
                    found.append(duplicate_event(event, others))
        return found

    def _stranger_id(self, track: TrackIdentity) -> str:
        """A track decided unknown gets its persistent ID from the identity memory."""
        assert self.memory is not None
        return self.memory.stranger_label(track.mean, track.observations)

    def close(self) -> None:
        """Release what this stage opened itself (its identity memory)."""
        if self._owns_memory and self.memory is not None:
            self.memory.close()
            self.memory = None
