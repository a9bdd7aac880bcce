"""Drawing boxes, landmarks and labels with supervision's annotators, and pixelating the faces that must not show.

`annotation.blur` (`--blur`): `unknown` pixelates every face without a gallery name — strangers, and every face
whose track is not named yet, so a face is never drawn in the clear before it is named; `all` pixelates every
face; `none` (the default) none. Faces detected in a frame that no track holds yet (`types.UNTRACKED`: a face on
its first frame, one too faint to track) are pixelated too, unless `none`. Each face's box, grown a little to
take the hair and ears, is cut into about `BLOCKS` squares across (supervision's `PixelateAnnotator`), whatever
the face's size; its landmarks are not drawn.
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from facetrack.config import AnnotationConfig
from facetrack.types import IDENTITY, IDENTITY_STATE, KNOWN, LANDMARKS, SIMILARITY, UNTRACKED

BLOCKS = 6  # squares across the shorter side of a pixelated face: no features left, still plainly a face
GROW = 0.15  # a pixelated box grows by this share of its width / height on every side


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


def faces_to_blur(detections: sv.Detections, blur: str) -> np.ndarray:
    """Per face, whether `blur` (none | unknown | all) hides it: `unknown` hides every face not shown with a
    gallery name (with identity off no face has one)."""
    n = len(detections)
    if blur == "none":
        return np.zeros(n, dtype=bool)
    if blur == "all" or KNOWN not in detections.data:
        return np.ones(n, dtype=bool)
    return ~np.asarray(detections.data[KNOWN], dtype=bool)


class FrameAnnotator:
    def __init__(self, config: AnnotationConfig) -> None:
        self.config = config
        # Colour by track so a person keeps their colour for as long as their track lives.
        self._boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK, thickness=2)
        self._labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK, text_scale=0.45, text_padding=4)
        self._points = sv.VertexAnnotator(color=sv.Color.GREEN, radius=2)
        self._pixelators: dict[int, sv.PixelateAnnotator] = {}  # by square size in pixels

    def annotate(self, image: np.ndarray, detections: sv.Detections) -> np.ndarray:
        """A copy of `image` with the tracked faces drawn on it (those `annotation.blur` hides, pixelated)."""
        canvas = image.copy()
        hidden = faces_to_blur(detections, self.config.blur)
        untracked = detections.metadata.get(UNTRACKED) if self.config.blur != "none" else None
        if untracked is not None and len(untracked):  # faces no track holds yet: never named, never drawn
            self.pixelate(canvas, np.asarray(untracked, dtype=float))
        if len(detections) == 0:
            return canvas
        if hidden.any():
            self.pixelate(canvas, detections.xyxy[hidden])
        canvas = self._boxes.annotate(canvas, detections)
        canvas = self._labels.annotate(canvas, detections, labels=face_labels(detections))
        if self.config.draw_landmarks and LANDMARKS in detections.data and not hidden.all():
            canvas = self._points.annotate(canvas, sv.KeyPoints(xy=detections.data[LANDMARKS][~hidden]))
        return canvas

    def pixelate(self, canvas: np.ndarray, boxes: np.ndarray) -> None:
        """Pixelate the face `boxes` (N×4, x1 y1 x2 y2) of `canvas` in place, each grown by `GROW` and cut into
        about `BLOCKS` squares across its shorter side."""
        height, width = canvas.shape[:2]
        size = boxes[:, 2:] - boxes[:, :2]
        grown = sv.clip_boxes(np.hstack([boxes[:, :2] - GROW * size, boxes[:, 2:] + GROW * size]),
                              (width, height)).round().astype(int)
        sides = np.minimum(grown[:, 2] - grown[:, 0], grown[:, 3] - grown[:, 1])
        grown, sides = grown[sides >= 2], sides[sides >= 2]  # a sliver at the frame's edge shows nothing
        squares = np.maximum(2, sides // BLOCKS)
        for square in np.unique(squares):
            pixelator = self._pixelators.setdefault(int(square), sv.PixelateAnnotator(pixel_size=int(square)))
            pixelator.annotate(canvas, sv.Detections(xyxy=grown[squares == square].astype(float)))
