"""The frame boundary: the `sv.Detections` columns every stage may rely on, defined once at the bottom.

Detection fills `LANDMARKS`; tracking sets `tracker_id`; the identity stage fills the identity columns. Every
`sv.Detections` that leaves a stage carries its columns also when it holds no face, so no stage has to ask
whether a column is there (an empty frame once crashed identity with `KeyError: 'landmarks'`).
"""

from __future__ import annotations

import numpy as np
import supervision as sv

LANDMARKS = "landmarks"  # N×5×2 float32: eyes, nose, mouth corners, in frame pixels
IDENTITY = "identity"  # N objects: gallery name or unknown-N, None while undecided
KNOWN = "known"  # N bools: the identity is a gallery name
SIMILARITY = "similarity"  # N floats: similarity to the named person, NaN when none
IDENTITY_STATE = "identity_state"  # N objects: pending | known | unknown | conflict
# N bools, optional: the landmarks were found at the full detection's scale this frame (a full-frame detection, or
# a crop that was not reduced); faces followed on a reduced crop have coarser landmarks and are not embedded.
FRESH = "fresh"
IGNORED = "ignored"  # N bools, optional: the person is marked ignored in the identity store (never alerted)

IDENTITY_COLUMNS = (IDENTITY, KNOWN, SIMILARITY, IDENTITY_STATE)


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
                         similarities: list[float], states: list[str]) -> None:
    """Fill the identity columns of `detections` (one entry per face, in row order)."""
    detections.data[IDENTITY] = np.array(identities, dtype=object)
    detections.data[KNOWN] = np.array(known, dtype=bool)
    detections.data[SIMILARITY] = np.array(similarities, dtype=float)
    detections.data[IDENTITY_STATE] = np.array(states, dtype=object)
