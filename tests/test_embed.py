"""The embedder on real faces with the real ArcFace-family test models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.config import load_config
from facetrack.detect import LANDMARKS, FaceDetector
from facetrack.embed import FaceEmbedder, face_quality
from facetrack.errors import FacetrackError


@pytest.fixture(scope="module")
def detector(detector_path: Path) -> FaceDetector:
    config = load_config()
    return FaceDetector(detector_path, config.detector, config.runtime)


@pytest.mark.parametrize("model", ["mobilefacenet_128.onnx", "mobilefacenet_128_dynbatch.onnx"])
def test_dimension_read_from_model_and_unit_length(assets: Path, detector: FaceDetector, model: str) -> None:
    embedder = FaceEmbedder(assets / "models" / model, load_config().runtime)
    assert embedder.dim == 128
    assert embedder.batchable == ("dynbatch" in model)
    image = cv2.imread(str(assets / "media/images/t1.jpg"))
    vectors = embedder.embed(image, detector.detect(image).data[LANDMARKS])
    assert vectors.shape == (6, 128)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batched_call_equals_one_face_at_a_time(assets: Path, detector: FaceDetector) -> None:
    embedder = FaceEmbedder(assets / "models/mobilefacenet_128_dynbatch.onnx", load_config().runtime)
    image = cv2.imread(str(assets / "media/images/t1.jpg"))
    crops = embedder.align(image, detector.detect(image).data[LANDMARKS])
    calls = embedder.calls
    batched = embedder.embed_crops(crops)
    assert embedder.calls == calls + 1  # six faces, one inference call
    single = np.concatenate([embedder.embed_crops(crops[i:i + 1]) for i in range(len(crops))])
    assert np.abs(batched - single).max() < 1e-5


def test_same_person_closer_than_different_people(gallery_dir: Path, recognizer_path: Path,
                                                  detector: FaceDetector) -> None:
    embedder = FaceEmbedder(recognizer_path, load_config().runtime)
    vectors, people = [], []
    for photo in sorted(gallery_dir.glob("*/*")):
        image = cv2.imread(str(photo))
        faces = detector.detect(image)
        vectors.append(embedder.embed(image, faces.data[LANDMARKS][:1])[0])
        people.append(photo.parent.name)
    sims = np.array(vectors) @ np.array(vectors).T
    same = [sims[i, j] for i in range(len(people)) for j in range(i) if people[i] == people[j]]
    other = [sims[i, j] for i in range(len(people)) for j in range(i) if people[i] != people[j]]
    assert min(same) > max(other)


def test_quality_prefers_large_frontal_sharp_faces(assets: Path, detector: FaceDetector) -> None:
    image = cv2.imread(str(assets / "media/images/t1.jpg"))
    faces = detector.detect(image)
    blurred = cv2.GaussianBlur(image, (0, 0), 4)
    embedder = FaceEmbedder(assets / "models/mobilefacenet_128.onnx", load_config().runtime)
    sharp_q = face_quality(faces.xyxy, faces.data[LANDMARKS], embedder.align(image, faces.data[LANDMARKS]))
    blur_q = face_quality(faces.xyxy, faces.data[LANDMARKS], embedder.align(blurred, faces.data[LANDMARKS]))
    assert all(b.sharpness < s.sharpness / 3 for b, s in zip(blur_q, sharp_q, strict=True))
    assert all(0.0 <= q.score <= 1.0 for q in sharp_q)
    assert sum(q.frontal > 0.6 for q in sharp_q) >= 4  # a group photo: most people face the camera


def test_detector_given_as_recognizer_is_refused(detector_path: Path) -> None:
    with pytest.raises(FacetrackError, match="not an ArcFace-family face recognizer.*--detector"):
        FaceEmbedder(detector_path, load_config().runtime)
