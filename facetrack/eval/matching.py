"""Predicted faces matched to true faces frame by frame (Hungarian on IoU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment
from trackers.eval import box_iou

from facetrack.eval.files import DEFAULT_IOU, Events, PredictedFace, TruthFace

if TYPE_CHECKING:
    pass


def _boxes(items: list[TruthFace] | list[PredictedFace]) -> np.ndarray:
    return np.array([item.box for item in items], dtype=np.float64).reshape(-1, 4)


def match_frame(truth: list[TruthFace], predicted: list[PredictedFace],
                iou_threshold: float = DEFAULT_IOU) -> tuple[dict[int, int], np.ndarray]:
    """One-to-one matches (truth index → predicted index) maximising total IoU, each at least `iou_threshold`;
    and the IoU matrix (truth × predicted)."""
    iou = box_iou(_boxes(truth), _boxes(predicted)) if truth and predicted else np.zeros((len(truth),
                                                                                            len(predicted)))
    if not truth or not predicted:
        return {}, iou
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= iou_threshold}, iou


@dataclass(frozen=True)
class FaceFrame:
    """One true face in one frame, and what facetrack showed on it (None: not detected)."""

    frame: int
    person: str
    shown: PredictedFace | None


@dataclass
class Matched:
    face_frames: list[FaceFrame]  # every true face of the evaluated frames, in frame order
    unmatched: list[tuple[int, PredictedFace]]  # predicted boxes on no listed face
    gt_ids: list[np.ndarray]  # per frame, for trackers.eval
    tracker_ids: list[np.ndarray]
    ious: list[np.ndarray]


def match(truth: dict[int, list[TruthFace]], events: Events, frames: list[int],
          iou_threshold: float = DEFAULT_IOU) -> Matched:
    person_ids: dict[str, int] = {}
    result = Matched([], [], [], [], [])
    for index in frames:
        true_faces, predicted = truth.get(index, []), events.faces.get(index, [])
        pairs, iou = match_frame(true_faces, predicted, iou_threshold)
        for t, face in enumerate(true_faces):
            result.face_frames.append(FaceFrame(index, face.person, predicted[pairs[t]] if t in pairs else None))
        taken = set(pairs.values())
        result.unmatched += [(index, p) for i, p in enumerate(predicted) if i not in taken]
        result.gt_ids.append(np.array([person_ids.setdefault(f.person, len(person_ids)) for f in true_faces],
                                      dtype=int))
        result.tracker_ids.append(np.array([p.track_id for p in predicted], dtype=int))
        result.ious.append(iou)
    return result


# --- metrics ---------------------------------------------------------------------------------------------------

