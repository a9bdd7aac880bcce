"""Drawing boxes, landmarks and labels with supervision's annotators."""

from __future__ import annotations

import numpy as np
import supervision as sv

from facetrack.config import AnnotationConfig
from facetrack.types import IDENTITY, IDENTITY_STATE, LANDMARKS, SIMILARITY


def face_labels(detections: sv.Detections) -> list[str]:
    """`#7`, or `lin_manuel_miranda 0.62 #7` / `unknown-2 #7` once the identity stage has decided."""
    ids = detections.tracker_id if detections.tracker_id is not None else [-1] * len(detections)
    names = detections.data.get(IDENTITY, [None] * len(detections))
    sims = detections.data.get(SIMILARITY, [None] * len(detections))
    states = detections.data.get(IDENTITY_STATE, [None] * len(detections))
    labels = []
    for track_id, name, sim, state in zip(ids, names, sims, states, strict=True):
        parts = [str(name)] if name else (["conflict?"] if state == "conflict" else [])
        if name and sim is not None and not np.isnan(sim):
            parts.append(f"{float(sim):.2f}")
        parts.append(f"#{int(track_id)}")
        labels.append(" ".join(parts))
    return labels


class FrameAnnotator:
    def __init__(self, config: AnnotationConfig) -> None:
        self.config = config
        # Colour by track so a person keeps their colour for as long as their track lives.
        self._boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK, thickness=2)
        self._labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK, text_scale=0.45, text_padding=4)
        self._points = sv.VertexAnnotator(color=sv.Color.GREEN, radius=2)

    def annotate(self, image: np.ndarray, detections: sv.Detections) -> np.ndarray:
        """A copy of `image` with the tracked faces drawn on it."""
        canvas = image.copy()
        if len(detections) == 0:
            return canvas
        canvas = self._boxes.annotate(canvas, detections)
        canvas = self._labels.annotate(canvas, detections, labels=face_labels(detections))
        if self.config.draw_landmarks and LANDMARKS in detections.data:
            canvas = self._points.annotate(canvas, sv.KeyPoints(xy=detections.data[LANDMARKS]))
        return canvas
