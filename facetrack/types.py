"""The boundaries, defined once at the bottom: the `sv.Detections` columns every stage may rely on, and the events.

Detection fills `LANDMARKS`; tracking sets `tracker_id`; the identity stage fills the identity columns. Every
`sv.Detections` that leaves a stage carries its columns also when it holds no face, so no stage has to ask
whether a column is there (an empty frame once crashed identity with `KeyError: 'landmarks'`).

Events, the product's main output, are typed dicts built by the functions below (identity events by the
identity stage) and written as JSON Lines by one `to_json`. The schema is stable: later stages add fields (each
a line in a `total=False` part), never rename them. A stage that learns something from events reads the typed
fields; nothing parses them back out of text.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

import numpy as np
import supervision as sv

LANDMARKS = "landmarks"  # N×5×2 float32: eyes, nose, mouth corners, in frame pixels
IDENTITY = "identity"  # N objects: gallery name or unknown-N, None while undecided
KNOWN = "known"  # N bools: the identity is a gallery name
SIMILARITY = "similarity"  # N floats: similarity to the named person, NaN when none
IDENTITY_STATE = "identity_state"  # N objects: pending | known | unknown | conflict
# N objects: why a face has no identity (None when it has one): small | blurred | turned (the quality gates kept
# it from being embedded), pending (not enough looks yet), below_threshold | margin (the best gallery match too
# weak, or too close to the next), conflict (its looks split between two people, or the name is on another face)
REASON = "reason"
# N bools, optional: the landmarks were found at the full detection's scale this frame (a full-frame detection, or
# a crop that was not reduced); faces followed on a reduced crop have coarser landmarks and are not embedded.
FRESH = "fresh"
# Metadata (`detections.metadata`) of a frame's tracked faces: M×4 boxes of faces detected in the frame that no
# confirmed track holds (a face on its first frame, one too faint to track). No event names them; `annotation.blur`
# pixelates them too, so that no face is drawn in the clear before it is named.
UNTRACKED = "untracked"
IGNORED = "ignored"  # N bools, optional: the person is marked ignored in the identity store (never alerted)

IDENTITY_COLUMNS = (IDENTITY, KNOWN, SIMILARITY, IDENTITY_STATE, REASON)


def empty_faces(identity: bool = False) -> sv.Detections:
    """A frame with no face, with every column a frame with faces has."""
    empty = sv.Detections.empty()
    empty.tracker_id = np.empty(0, dtype=int)
    empty.data[LANDMARKS] = np.empty((0, 5, 2), dtype=np.float32)
    if identity:
        set_identity_columns(empty, [], [], [], [])
    return empty


def with_face_columns(detections: sv.Detections) -> sv.Detections:
    """`detections` with `tracker_id` and `LANDMARKS` present (the tracker drops columns from empty results)."""
    if len(detections) == 0:
        return empty_faces(identity=IDENTITY in detections.data)
    if detections.tracker_id is None:
        detections.tracker_id = np.full(len(detections), -1, dtype=int)
    if LANDMARKS not in detections.data:
        raise ValueError("faces without landmarks: every detection must carry data['landmarks']")
    return detections


def set_identity_columns(detections: sv.Detections, identities: list[str | None], known: list[bool],
                         similarities: list[float], states: list[str], reasons: list[str | None] | None = None) -> None:
    """Fill the identity columns of `detections` (one entry per face, in row order)."""
    detections.data[IDENTITY] = np.array(identities, dtype=object)
    detections.data[KNOWN] = np.array(known, dtype=bool)
    detections.data[SIMILARITY] = np.array(similarities, dtype=float)
    detections.data[IDENTITY_STATE] = np.array(states, dtype=object)
    detections.data[REASON] = np.array(reasons if reasons is not None else [None] * len(states), dtype=object)


# --- events ------------------------------------------------------------------------------------------------------

class _FaceRequired(TypedDict):
    track_id: int
    identity: str | None  # gallery name or unknown-N; None while undecided
    known: bool
    similarity: float | None  # to the named person
    score: float  # detector score
    box: list[float]  # x1, y1, x2, y2 in frame pixels
    ignored: bool  # only when true: the person is marked ignored in the identity store
    reason: str | None  # why identity is None (small, blurred, turned, pending, …); None when it is not


class FaceRecord(_FaceRequired, total=False):
    """One face of a frame event."""


class _FrameRequired(TypedDict):
    type: Literal["frame"]
    frame: int
    pts: float
    faces: list[FaceRecord]


class FrameEvent(_FrameRequired, total=False):
    camera: str  # set by the runner (first key)


class _TrackRequired(TypedDict):
    type: Literal["track_start", "track_end"]
    track_id: int
    frame: int
    pts: float


class TrackEvent(_TrackRequired, total=False):
    camera: str


class Candidate(TypedDict):
    """One of the two people (or remembered strangers) an identity decision was closest to."""

    name: str
    similarity: float


class _IdentityRequired(TypedDict):
    type: Literal["identity"]
    track_id: int
    identity: str | None  # the decided identity; None while pending or in conflict
    previous: str | None
    state: str  # pending | known | unknown | conflict
    similarity: float | None
    relinked_from: int | None  # the ended track whose identity this one took back
    frame: int
    pts: float
    candidates: list[Candidate]  # best first, at most two


class IdentityEvent(_IdentityRequired, total=False):
    camera: str
    ignored: bool  # only when true: the person is marked ignored in the identity store


class _DuplicateRequired(TypedDict):
    type: Literal["possible_duplicate"]
    track_id: int
    identity: str
    cameras: list[str]  # the other cameras the name is on (or just was)
    frame: int
    pts: float


class DuplicateEvent(_DuplicateRequired, total=False):
    camera: str


class StatusEvent(TypedDict, total=False):
    """A camera's state (online, reconnecting, failed, offline) and rates, as alerts carry it."""

    camera: str
    state: str
    time: str
    reason: str
    fps: float
    frames: int
    dropped: int
    reconnects: int


Event = FrameEvent | TrackEvent | IdentityEvent | DuplicateEvent | dict[str, Any]


def _round(value: float, digits: int = 2) -> float:
    return round(float(value), digits)


def face_records(detections: sv.Detections) -> list[FaceRecord]:
    """The `faces` list of a frame event, in row order."""
    n = len(detections)
    names = detections.data.get(IDENTITY, [None] * n)
    known = detections.data.get(KNOWN, [False] * n)
    sims = detections.data.get(SIMILARITY, [None] * n)
    reasons = detections.data.get(REASON, [None] * n)
    scores = detections.confidence if detections.confidence is not None else np.ones(n)
    faces: list[FaceRecord] = []
    for i in range(n):
        sim = sims[i]
        faces.append({
            "track_id": int(detections.tracker_id[i]),
            "identity": str(names[i]) if names[i] else None,
            "known": bool(known[i]),
            "similarity": None if sim is None or np.isnan(sim) else _round(sim, 3),
            "score": _round(scores[i], 3),
            "box": [_round(v, 1) for v in detections.xyxy[i]],
            "reason": reasons[i],
        })
        if IGNORED in detections.data and detections.data[IGNORED][i]:
            faces[-1]["ignored"] = True  # marked ignored in the identity store
    return faces


def frame_event(index: int, pts: float, detections: sv.Detections) -> FrameEvent:
    return {"type": "frame", "frame": index, "pts": round(pts, 4), "faces": face_records(detections)}


def track_event(kind: Literal["track_start", "track_end"], track_id: int, index: int, pts: float) -> TrackEvent:
    return {"type": kind, "track_id": int(track_id), "frame": index, "pts": round(pts, 4)}


def identity_event(track_id: int, state: str, identity: str | None, previous: str | None,
                   similarity: float | None, relinked_from: int | None, index: int, pts: float,
                   candidates: list[tuple[str, float]]) -> IdentityEvent:
    """A track's identity decision (`identity` and `relinked_from` only once it is known or unknown)."""
    decided = state in ("known", "unknown")
    return {"type": "identity", "track_id": int(track_id), "identity": identity if decided else None,
            "previous": previous, "state": state, "similarity": None if similarity is None else round(similarity, 3),
            "relinked_from": relinked_from if decided else None, "frame": index, "pts": round(pts, 4),
            "candidates": [{"name": name, "similarity": round(sim, 3)} for name, sim in candidates]}


def duplicate_event(event: IdentityEvent, cameras: list[str]) -> DuplicateEvent:
    """A gallery name decided by `event` while it is on other `cameras` (or just was)."""
    return {"type": "possible_duplicate", "track_id": event["track_id"], "identity": str(event["identity"]),
            "cameras": cameras, "frame": event["frame"], "pts": event["pts"]}


def on_camera(camera: str, event: Event) -> Event:
    """The event as the runner writes it: its camera first."""
    return {"camera": camera, **event}  # type: ignore[return-value]


def to_json(event: Event) -> str:
    """One event as one compact JSON line (without the newline)."""
    return json.dumps(event, separators=(",", ":"))
