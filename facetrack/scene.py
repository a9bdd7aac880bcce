"""Shot-cut detection: a cut ends every track, so an ID never jumps from one person to another across it.

ByteTrack matches boxes by overlap alone; at a hard cut a new face at a similar place would inherit the old
track. Comparing colour histograms of a tiny thumbnail catches cuts for a fraction of a millisecond per frame;
comparing each face with its track one frame earlier (`FaceChangeDetector`) catches the cuts that keep the
background and change only the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def frame_thumbnail(image: np.ndarray) -> np.ndarray:
    """The 64×36 BGR thumbnail both cut detectors look at (made once per frame)."""
    step = max(1, image.shape[1] // 480)  # every n-th pixel of a large frame first: averaging 1080p costs 2 ms
    return cv2.resize(image[::step, ::step], (64, 36), interpolation=cv2.INTER_AREA)


class CutDetector:
    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold  # histogram correlation below this between consecutive frames is a cut
        self._previous: np.ndarray | None = None

    def is_cut(self, image: np.ndarray, thumbnail: np.ndarray | None = None) -> bool:
        """`thumbnail`: the frame's `frame_thumbnail`, when the caller has it already."""
        thumb = frame_thumbnail(image) if thumbnail is None else thumbnail
        hsv = cv2.cvtColor(thumb, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(hist, hist)
        previous, self._previous = self._previous, hist
        if previous is None:
            return False
        return bool(cv2.compareHist(previous, hist, cv2.HISTCMP_CORREL) < self.threshold)


@dataclass
class FaceChanges:
    """What the faces of one frame did since the same tracks' previous frame."""

    changed: np.ndarray  # N bools, one per face: its content, place or score changed at once
    cut: bool  # every face seen in both frames changed, and the frame with them: a cut within the same set


class FaceChangeDetector:
    """Cuts that keep the background: one person replaced by another at about the same place.

    The whole-frame histogram sees no cut when only the person changes (clips of several people recorded in one
    room, played back to back); ByteTrack then carries one track, and its identity, on to the next person. Here
    each tracked face is compared with the same track one frame earlier: the grey content of its box (a 16×16
    thumbnail, normalised correlation), how far the box moved (IoU) and how far its score fell. A face that
    changed is a sign of change for the identity stage to look at; when every face seen in both frames changed
    at once and the frame changed too, it is a cut. It costs a few microseconds per face and a small thumbnail of
    the frame.
    """

    THUMB = 16  # side of a face thumbnail

    def __init__(self, correlation: float = 0.6, iou: float = 0.5, score_drop: float = 0.25,
                 frame_change: float = 10.0) -> None:
        self.correlation = correlation  # face thumbnails correlating below this: the content changed
        self.iou = iou  # a box overlapping its previous place below this: it jumped
        self.score_drop = score_drop  # the detection score fell by this much: a sign of change (never a cut alone)
        self.frame_change = frame_change  # mean grey difference (0–255) of the frame thumbnail a cut needs at least
        self._faces: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # tracker ID → box, thumbnail, score
        self._frame: np.ndarray | None = None

    def update(self, image: np.ndarray, boxes: np.ndarray, scores: np.ndarray | None, keys: np.ndarray,
               thumbnail: np.ndarray | None = None) -> FaceChanges:
        """Compare this frame's faces (`keys`: their tracker's IDs) with the same keys one frame earlier.

        `thumbnail`: the frame's `frame_thumbnail`, when the caller has it already."""
        thumb = frame_thumbnail(image) if thumbnail is None else thumbnail
        frame = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).astype(np.float32)
        previous_frame, self._frame = self._frame, frame
        frame_change = float(np.abs(frame - previous_frame).mean()) if previous_frame is not None else 0.0
        scores = np.ones(len(boxes)) if scores is None else np.asarray(scores, dtype=float)
        thumbs = [self._thumbnail(image, box) for box in boxes]
        pairs = [(i, self._faces[int(key)], thumb) for i, (key, thumb) in enumerate(zip(keys, thumbs, strict=True))
                 if thumb is not None and int(key) in self._faces]
        moved = np.zeros(len(boxes), dtype=bool)
        dropped = np.zeros(len(boxes), dtype=bool)
        seen = np.zeros(len(boxes), dtype=bool)
        if pairs:
            rows = np.array([i for i, _, _ in pairs])
            content = np.array([float(thumb @ old[1]) for _, old, thumb in pairs])
            overlap = _pairwise_iou(boxes[rows], np.array([old[0] for _, old, _ in pairs]))
            seen[rows] = True
            moved[rows] = (content < self.correlation) | (overlap < self.iou)
            dropped[rows] = np.array([old[2] for _, old, _ in pairs]) - scores[rows] >= self.score_drop
        self._faces = {int(key): (box, thumb, float(score))
                       for key, box, thumb, score in zip(keys, boxes, thumbs, scores, strict=True) if thumb is not None}
        # A score drop alone (a hand over the face, a turn of the head) is a sign of change, never a cut.
        cut = bool(seen.any() and moved[seen].all() and frame_change >= self.frame_change)
        return FaceChanges(moved | dropped, cut)

    def reset(self) -> None:
        """Forget every face (their tracks ended), keep the frame for the next comparison."""
        self._faces = {}

    def _thumbnail(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        height, width = image.shape[:2]
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
        if x2 - x1 < 4 or y2 - y1 < 4:
            return None
        thumb = cv2.resize(image[y1:y2, x1:x2], (self.THUMB, self.THUMB), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY).astype(np.float32).ravel()
        grey -= grey.mean()
        norm = float(np.linalg.norm(grey))
        return grey / norm if norm > 1e-6 else None


def _pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i] (N×4 each)."""
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = np.prod(a[:, 2:] - a[:, :2], axis=1) + np.prod(b[:, 2:] - b[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
