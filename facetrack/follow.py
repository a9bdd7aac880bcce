"""Detection on a schedule: SCRFD on the whole frame every N frames, the faces followed on crops in between.

Full-frame detection is most of facetrack's time on a CPU. Between full detections each face of the previous frame
is looked for again by the same detector on a square crop around it (twice the box), all crops packed into one
small mosaic so that one pass serves every face. A crop is at the scale of the full detection for a face of up to
60 detector pixels; a larger face is followed at about 44 pixels (REDUCED_CROP: its landmarks are then too coarse
to embed, `FRESH` is False), and a small face is enlarged, up to the frame's own pixels, so that a face of 10
detector pixels in a 1080p frame is looked for at 24. The crops give real boxes, scores and landmarks; a face its
crop does not show is absent from the frame, and ByteTrack counts it as missed, as it would a face the full
detector missed. Near misses (faces the full detection scored from FOLLOW_SCORE × `score_threshold` up but under
it) are followed too, so that a face near the threshold gets its chance on every frame, as it would if every
frame were detected.

A face is followed at the full detection's scale, whatever its size, in the frame after a full detection found it
large and new, and in the frame after the embedding stage asked for it (`want_fresh`: it was due for an embedding
but its landmarks came from a reduced crop): its track is then embedded, and named, as soon as without a schedule.

A full detection comes at once, whatever the interval (the reason is counted in `DetectionSchedule.reasons`):
- `start`: the first frame; `cut`: after a shot cut or a clock break (the tracks end there);
- `lost`: following lost a confident face (it moved fast or turned: the whole frame is searched, same frame);
- `overlap`: followed faces overlap (their crops would mix them up);
- `motion`: a grey thumbnail changed, away from the faces and the bodies below them, since the last full
  detection: someone may have entered;
- `crowd`: the crops would cost about as much as the whole frame.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np
import supervision as sv

from facetrack.config import DetectorConfig
from facetrack.detect import FaceDetector, to_detections
from facetrack.sources import Frame
from facetrack.types import FRESH, empty_faces

log = logging.getLogger(__name__)

FILE_INTERVAL = 5  # interval auto on files
LIVE_INTERVALS = (3, 10)  # interval auto on live sources: the smallest N in this range within the time budget
CROP_FACTOR = 2.0  # crop side / longer box side
MIN_CROP = 48  # detector pixels: a small face keeps some context around it
MAX_CROP = 120  # detector pixels: the largest crop at the full detection's scale (a face of up to 60 pixels)
REDUCED_CROP = 88  # detector pixels: a face whose crop would be larger is followed at about 44 pixels across
# (its landmarks are too coarse to embed either way, and SCRFD finds it as surely), a tile on a 96 grid
TILE_GAP = 8  # black pixels between crops in the mosaic
MOSAIC_STEP = 64  # mosaic sides are multiples of this: few distinct input shapes
CROWD_SHARE = 0.6  # a mosaic larger than this share of the full input: detect on the whole frame instead
OVERLAP_IOU = 0.2  # followed faces overlapping more than this call a full detection
FOLLOW_SCORE = 0.6  # × detector.score_threshold: a face already tracked is taken from its crop at this score, as
# ByteTrack takes low-score boxes for tracks it holds (the crop is a strong prior); one face per crop
LOST_SCORE = 0.7  # a face followed at this score or more that its crop no longer shows calls a full detection
CENTRE = 0.25  # a crop keeps the faces centred in its middle half (the face it follows has barely moved)
THUMB_WIDTH = 64  # grey thumbnail of the motion check
MOTION_LEVEL = 24  # grey levels a thumbnail pixel must change by to count as motion
BODY_SIDE, BODY_ABOVE = 2.5, 0.5  # around a face: box widths to each side, box heights above; all the way down


@dataclass
class Mosaic:
    """Crops of one frame packed into one detector input."""

    image: np.ndarray  # H×W×3, the detector input
    tiles: np.ndarray  # N×3: x, y (top-left in the mosaic), side (mosaic pixels)
    origins: np.ndarray  # N×2: frame coordinates of each tile's top-left
    scales: np.ndarray  # N: mosaic pixels per frame pixel


class FaceFollower:
    """Finds known faces again, each on a crop around its last box, all crops in one detector pass."""

    def __init__(self, detector: FaceDetector) -> None:
        self.detector = detector

    def mosaic(self, image: np.ndarray, boxes: np.ndarray, scale: float,
               whole: np.ndarray | None = None) -> Mosaic | None:
        """The crops around `boxes` (N×4, frame pixels) packed in shelves; None when they would cost about as
        much as the whole frame (or do not fit a fixed-size detector). `whole` (N bools): crops kept at the full
        detection's scale however large, for landmarks fine enough to embed."""
        height, width = image.shape[:2]
        full_w, full_h = self.detector.input_size_for(height, width)
        sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        sides = np.ceil(np.clip(CROP_FACTOR * sizes * scale, MIN_CROP, MAX_CROP)).astype(int)
        sides[CROP_FACTOR * sizes * scale > MAX_CROP] = REDUCED_CROP
        if whole is not None and whole.any():
            sides[whole] = np.ceil(np.maximum(CROP_FACTOR * sizes[whole] * scale, MIN_CROP)).astype(int)
        if self.detector.dynamic:  # the tightest of a few shelf widths
            narrowest = _round_up(int(sides.max()))  # a face kept whole may be wider than the full input
            rows = range(narrowest, max(full_w, narrowest) + 1, MOSAIC_STEP)
            tiles, mosaic_w, mosaic_h = min((_shelves(sides, row) for row in rows), key=lambda t: t[1] * t[2])
        else:
            tiles, mosaic_w, mosaic_h = _shelves(sides, full_w)
        if self.detector.dynamic:
            if mosaic_w * mosaic_h >= CROWD_SHARE * full_w * full_h:
                return None
        elif mosaic_w > full_w or mosaic_h > full_h:
            return None
        else:
            mosaic_w, mosaic_h = full_w, full_h
        canvas = np.zeros((mosaic_h, mosaic_w, 3), dtype=np.uint8)
        centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
        # Mosaic pixels per frame pixel, per tile: the face fills half its tile, at the full detection's scale,
        # reduced for a large face and enlarged for a small one (up to the frame's own pixels where the full
        # detection shrinks the frame): a face of 10 detector pixels is found more surely at 24.
        scales = np.minimum(max(scale, 1.0), tiles[:, 2] / (CROP_FACTOR * sizes))
        origins = centres - tiles[:, 2:3] / scales[:, None] / 2
        for (tx, ty, side), (ox, oy), s in zip(tiles, origins, scales, strict=True):
            warp = np.array([[s, 0.0, -ox * s], [0.0, s, -oy * s]], dtype=np.float64)
            canvas[ty:ty + side, tx:tx + side] = cv2.warpAffine(image, warp, (int(side), int(side)),
                                                                flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        return Mosaic(canvas, tiles, origins, scales)

    def follow(self, image: np.ndarray, boxes: np.ndarray, scale: float, tracked: int | None = None,
               whole: np.ndarray | None = None) -> tuple[sv.Detections, np.ndarray, np.ndarray] | None:
        """The faces near `boxes` in this frame, for each of the first `tracked` boxes (default: all) whether its
        crop showed a face, and the near misses; None when a full detection would cost as much.

        The boxes after the first `tracked` are near misses: faces scored under `score_threshold` (but from
        FOLLOW_SCORE of it) that are not tracked. Found again from `score_threshold` up they are faces of this
        frame; under it, near misses again (N×4), looked for in the next frame. Every frame so gives a face near
        the threshold its chance, as detecting on every frame would. `whole`: as in `mosaic`."""
        tracked = len(boxes) if tracked is None else tracked
        near = np.zeros((0, 4), dtype=np.float32)
        mosaic = self.mosaic(image, boxes, scale, whole)
        if mosaic is None:
            return None
        height, width = mosaic.image.shape[:2]
        threshold = FOLLOW_SCORE * self.detector.config.score_threshold
        found, marks = self.detector.raw(mosaic.image, (width, height), threshold)
        shown = np.zeros(len(boxes), dtype=bool)
        fresh = np.zeros(0, dtype=bool)
        if len(found):
            # Each face belongs to the tile its centre falls in, if it is in that tile's middle.
            centre = (found[:, :2] + found[:, 2:4]) / 2
            low = mosaic.tiles[:, :2] + CENTRE * mosaic.tiles[:, 2:3]
            high = mosaic.tiles[:, :2] + (1 - CENTRE) * mosaic.tiles[:, 2:3]
            inside = ((centre[:, None, :] >= low[None]) & (centre[:, None, :] < high[None])).all(axis=2)
            keep = np.flatnonzero(inside.any(axis=1))
            tile = inside.argmax(axis=1)[keep]
            _, first = np.unique(tile, return_index=True)  # SCRFD sorts by score: each tile's best face only
            keep, tile = keep[first], tile[first]
            found, marks = found[keep], marks[keep]
            shown[tile] = True
            fresh = mosaic.scales[tile] >= 0.99 * scale
            scales = mosaic.scales[tile][:, None]
            shift = mosaic.origins[tile] - mosaic.tiles[tile, :2] / scales  # mosaic → frame, per face
            found = found.copy()
            found[:, :4] = found[:, :4] / scales + np.tile(shift, 2)
            marks = marks / scales[:, :, None] + shift[:, None, :]
            missed = (tile >= tracked) & (found[:, 4] < self.detector.config.score_threshold)
            near = found[missed, :4].astype(np.float32)
            found, marks, fresh = found[~missed], marks[~missed], fresh[~missed]
            if len(found) > 1:
                best = np.argsort(-found[:, 4], kind="stable")
                found, marks, fresh = found[best], marks[best], fresh[best]
                kept = sv.box_non_max_suppression(found, iou_threshold=self.detector.config.nms_threshold)
                found, marks, fresh = found[kept], marks[kept], fresh[kept]
        faces = to_detections(*self.detector.keep_large(found, marks))
        if len(faces):
            faces.data[FRESH] = fresh[self._large(found)]
        return faces, shown[:tracked], near

    def _large(self, boxes: np.ndarray) -> np.ndarray:
        """Which of `boxes` `keep_large` keeps."""
        if not len(boxes) or not self.detector.config.min_face_size:
            return np.ones(len(boxes), dtype=bool)
        return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= self.detector.config.min_face_size


class DetectionSchedule:
    """Faces of every frame: a full detection when due (`detector.interval`) or called for, following between."""

    def __init__(self, detector: FaceDetector, config: DetectorConfig, frame_rate: float = 30.0,
                 live: bool = False) -> None:
        self.detector = detector
        self.config = config
        self.follower = FaceFollower(detector)
        dynamic = getattr(detector, "dynamic", False)  # a detector that does not say takes no crops
        self.live = live and config.interval == "auto" and dynamic  # the interval follows the measured cost
        self.frame_time = 1.0 / frame_rate if frame_rate > 0 else 1.0 / 30
        if config.interval != "auto":
            self.interval = int(config.interval)
            if self.interval > 1 and not dynamic:
                name = getattr(getattr(detector, "model_path", None), "name", "the detector")
                log.warning("%s has a fixed input size: following faces costs it a full pass (detector.interval "
                            "auto uses 1 with it)", name)
        else:
            self.interval = FILE_INTERVAL if dynamic else 1
        self.full_detections = 0
        self.frames = 0
        self.reasons: Counter[str] = Counter()
        self._since: int | None = None  # frames since the last full detection; None before the first
        self._wanted = np.zeros((0, 4), dtype=np.float32)  # faces to follow at full scale in the next frame
        self._faces = empty_faces()  # the faces of the previous frame: what is followed
        self._near = np.zeros((0, 4), dtype=np.float32)  # near misses of the previous frame: followed too
        self._reference: np.ndarray | None = None  # thumbnail at the last full detection
        self._full_seconds: float | None = None  # running mean of a full detection's time (live, auto)

    def detect(self, frame: Frame, restart: bool = False) -> sv.Detections:
        """This frame's faces. `restart`: a shot cut or a clock break comes just before it."""
        self.frames += 1
        if self.interval == 1:
            return self._full(frame.image, None, "interval")
        thumb = self._thumbnail(frame.image) if self.config.motion_threshold > 0 else None
        reason = self._due(thumb, frame.image.shape[1], restart)
        faces = None
        if reason is None and (len(self._faces) or len(self._near)):
            scale = self.detector.scale_for(*frame.image.shape[:2])
            boxes = np.concatenate([self._faces.xyxy, self._near]) if len(self._near) else self._faces.xyxy
            whole = np.zeros(len(boxes), dtype=bool)
            if len(self._wanted) and len(self._faces):
                whole[:len(self._faces)] = sv.box_iou_batch(self._faces.xyxy, self._wanted).max(axis=1) >= 0.3
            followed = self.follower.follow(frame.image, boxes, scale, tracked=len(self._faces), whole=whole)
            if followed is None:
                reason = "crowd"
            else:
                faces, shown, self._near = followed
                if (~shown & (self._faces.confidence >= LOST_SCORE)).any():
                    reason = "lost"
        self._wanted = self._wanted[:0]
        if reason is not None:
            faces = self._full(frame.image, thumb, reason)
            self._wanted = self._new_large(faces, frame.image.shape[:2])
        elif faces is None:
            faces = empty_faces()  # nobody to follow and nothing moved
        self._since = 0 if reason is not None else (self._since or 0) + 1
        self._faces = faces
        return faces

    def _due(self, thumb: np.ndarray | None, frame_width: int, restart: bool) -> str | None:
        if self._since is None:
            return "start"
        if restart:
            return "cut"
        if self._since + 1 >= self.interval:
            return "interval"
        boxes = self._faces.xyxy
        if len(boxes) > 1:
            iou = sv.box_iou_batch(boxes, boxes)
            np.fill_diagonal(iou, 0.0)
            if (iou > OVERLAP_IOU).any():
                return "overlap"
        if thumb is not None and self._moved(thumb, thumb.shape[1] / frame_width):
            return "motion"
        return None

    def want_fresh(self, box: np.ndarray) -> None:
        """The face at `box` is due for an embedding but was followed on a reduced crop: follow it at the full
        detection's scale in the next frame (its landmarks are then fine enough to embed)."""
        if self.interval > 1:
            self._wanted = np.concatenate([self._wanted, np.asarray(box, dtype=np.float32).reshape(1, 4)])

    def _new_large(self, faces: sv.Detections, shape: tuple[int, int]) -> np.ndarray:
        """The boxes of `faces` that the previous frame did not hold and that are large enough to be followed
        reduced (N×4)."""
        scale = self.detector.scale_for(*shape)
        sides = np.maximum(faces.xyxy[:, 2] - faces.xyxy[:, 0], faces.xyxy[:, 3] - faces.xyxy[:, 1])
        large = CROP_FACTOR * sides * scale > MAX_CROP
        if large.any() and len(self._faces):
            large[large] = sv.box_iou_batch(faces.xyxy[large], self._faces.xyxy).max(axis=1) < 0.3
        return faces.xyxy[large].astype(np.float32)

    def _full(self, image: np.ndarray, thumb: np.ndarray | None, reason: str) -> sv.Detections:
        started = time.perf_counter()
        faces = self.detector.detect(image, FOLLOW_SCORE * self.detector.config.score_threshold)
        missed = faces.confidence < self.detector.config.score_threshold
        self._near = faces.xyxy[missed] if self.interval > 1 else self._near[:0]
        faces = faces[~missed]
        if len(faces):
            faces.data[FRESH] = np.ones(len(faces), dtype=bool)
        if self.live:
            seconds = time.perf_counter() - started
            self._full_seconds = seconds if self._full_seconds is None else 0.8 * self._full_seconds + 0.2 * seconds
            budget = self.config.live_budget * self.frame_time
            low, high = LIVE_INTERVALS
            self.interval = min(high, max(low, math.ceil(self._full_seconds / budget)))
        self.full_detections += 1
        self.reasons[reason] += 1
        self._reference = thumb
        return faces

    def _thumbnail(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        step = max(1, width // (4 * THUMB_WIDTH))  # every n-th pixel of a large frame first
        size = (THUMB_WIDTH, max(1, round(THUMB_WIDTH * height / width)))
        small = cv2.resize(image[::step, ::step], size, interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16)

    def _moved(self, thumb: np.ndarray, factor: float) -> bool:
        """Whether the thumbnail (`factor` of the frame's size) changed since the last full detection, away from
        the faces and their bodies."""
        reference = self._reference
        if reference is None or reference.shape != thumb.shape:
            return False
        changed = np.abs(thumb - reference) > MOTION_LEVEL
        boxes = self._faces.xyxy
        if len(boxes):
            th, tw = thumb.shape
            b = boxes * factor
            w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            cx = (b[:, 0] + b[:, 2]) / 2
            cols = np.arange(tw)[None, :]
            rows = np.arange(th)[None, :]
            in_x = (cols >= (cx - BODY_SIDE * w)[:, None]) & (cols <= (cx + BODY_SIDE * w)[:, None])
            in_y = rows >= (b[:, 1] - BODY_ABOVE * h)[:, None]
            body = (in_y[:, :, None] & in_x[:, None, :]).any(axis=0)
            changed &= ~body
        return bool(changed.mean() >= self.config.motion_threshold)


def _shelves(sides: np.ndarray, row: int) -> tuple[np.ndarray, int, int]:
    """Squares of `sides` packed in shelves `row` wide, largest first: their places (x, y, side) and the size of
    the mosaic they need, in multiples of MOSAIC_STEP."""
    tiles = np.zeros((len(sides), 3), dtype=int)
    x = y = shelf = 0
    for i in np.argsort(-sides, kind="stable"):  # a handful of faces
        side = int(sides[i])
        if x and x + side > row:
            x, y, shelf = 0, y + shelf + TILE_GAP, 0
        tiles[i] = (x, y, side)
        x, shelf = x + side + TILE_GAP, max(shelf, side)
    return tiles, _round_up(int((tiles[:, 0] + tiles[:, 2]).max())), _round_up(int((tiles[:, 1] + tiles[:, 2]).max()))


def _round_up(value: int, step: int = MOSAIC_STEP) -> int:
    return max(step, -(-value // step) * step)
