"""Detection and tracking on real faces with the real SCRFD models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.config import load_config
from facetrack.detect import LANDMARKS, FaceDetector
from facetrack.errors import FacetrackError
from facetrack.sources import FileSource
from facetrack.track import FaceTracker


@pytest.mark.parametrize("model", ["scrfd_2.5g_bnkps.onnx", "scrfd_500m_bnkps.onnx"])
def test_all_six_faces_of_t1_found_with_landmarks_inside_boxes(assets: Path, model: str) -> None:
    config = load_config()
    detector = FaceDetector(assets / "models" / model, config.detector, config.runtime)
    image = cv2.imread(str(assets / "media/images/t1.jpg"))
    faces = detector.detect(image)
    assert len(faces) == 6
    landmarks = faces.data[LANDMARKS]
    assert landmarks.shape == (6, 5, 2)
    x1, y1, x2, y2 = (faces.xyxy[:, i, None] for i in range(4))
    inside = (landmarks[..., 0] >= x1) & (landmarks[..., 0] <= x2) & (landmarks[..., 1] >= y1) & (
        landmarks[..., 1] <= y2)
    assert inside.all()
    # Eyes above the mouth corners: the 5 points are in InsightFace's order, not shuffled.
    assert (landmarks[:, :2, 1].mean(axis=1) < landmarks[:, 3:, 1].mean(axis=1)).all()


def test_recognizer_given_as_detector_is_refused(assets: Path) -> None:
    config = load_config()
    with pytest.raises(FacetrackError, match="not an SCRFD face detector.*--recognizer"):
        FaceDetector(assets / "models/mobilefacenet_128.onnx", config.detector, config.runtime)


def test_face_in_view_keeps_its_track_id_and_landmarks_stay_with_box(fast_detector_path: Path,
                                                                     clip_path: Path) -> None:
    config = load_config()
    detector = FaceDetector(fast_detector_path, config.detector, config.runtime)
    source = FileSource(clip_path)
    tracker = FaceTracker(config.tracker, frame_rate=float(source.info.fps))
    ids_per_frame: list[set[int]] = []
    for frame in source:
        if frame.index < 120:
            continue
        if frame.index >= 180:  # the close-up of Lin-Manuel: one face, always in view
            break
        update = tracker.update(detector.detect(frame.image), timestamp=frame.pts)
        ids_per_frame.append({int(i) for i in update.detections.tracker_id})
        marks = update.detections.data[LANDMARKS]
        boxes = update.detections.xyxy
        assert ((marks[..., 0] >= boxes[:, None, 0] - 2) & (marks[..., 0] <= boxes[:, None, 2] + 2)).all()
    source.close()
    confirmed = [ids for ids in ids_per_frame if ids]
    assert len(confirmed) >= 55
    assert set.union(*confirmed) == confirmed[-1]  # one ID for the whole close-up
    assert len(confirmed[-1]) == 1


def test_detections_are_sorted_and_typed(fast_detector_path: Path, images_dir: Path) -> None:
    config = load_config()
    detector = FaceDetector(fast_detector_path, config.detector, config.runtime)
    faces = detector.detect(cv2.imread(str(images_dir / "two_people.jpg")))
    assert len(faces) == 2
    assert faces.confidence is not None and np.all(np.diff(faces.confidence) <= 0)
    assert faces.data[LANDMARKS].dtype == np.float32
