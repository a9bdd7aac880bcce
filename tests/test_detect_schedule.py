"""Detection on a schedule (`detector.interval`): what a user sees must not change, only the work behind it.

Real SCRFD (scrfd_2.5g_bnkps: dynamic input, so following on crops is cheap) on the test clip and on scenes made
here from the gallery photos: faces pasted on a background, moving, crossing, appearing, cut away from.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from facetrack.config import FacetrackConfig, load_config
from facetrack.detect import FaceDetector
from facetrack.pipeline import Pipeline
from facetrack.sources import Frame
from tests.conftest import run_cli
from tests.footage import read_frames, write_video

FPS = 25
FIRST = 90  # frames of the test clip: two faces, then a close-up after a cut


def _config(detector_path: Path, **detector: object) -> FacetrackConfig:
    return load_config(None, {"models": {"detector": str(detector_path)}, "detector": detector})


@pytest.fixture(scope="module")
def detector(detector_path: Path) -> FaceDetector:
    config = load_config()
    return FaceDetector(detector_path, config.detector, config.runtime)


@pytest.fixture(scope="module")
def clip_frames(clip_path: Path) -> list[np.ndarray]:
    return read_frames(clip_path, FIRST)


@pytest.fixture(scope="module")
def faces(detector: FaceDetector, gallery_dir: Path) -> dict[str, np.ndarray]:
    """Two real faces cut from the gallery photos, 96 pixels square with some hair and chin around them."""
    cut = {}
    for name, photo in (("obama", "obama/obama.jpg"), ("biden", "biden/biden.jpg")):
        image = cv2.imread(str(gallery_dir / photo))
        box = detector.detect(image).xyxy[0]
        cx, cy, side = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.5 * max(box[2] - box[0], box[3] - box[1])
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        crop = image[y0:int(y0 + side), x0:int(x0 + side)]
        cut[name] = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA)
    return cut


def _background(width: int = 480, height: int = 272, colour: tuple[int, int, int] = (90, 110, 70)) -> np.ndarray:
    rng = np.random.default_rng(7)
    base = np.full((height, width, 3), colour, dtype=np.uint8)
    texture = rng.integers(-12, 12, size=(height // 8, width // 8, 1))
    return np.clip(base + cv2.resize(texture.astype(np.float32), (width, height))[..., None], 0, 255).astype(np.uint8)


def _scene(background: np.ndarray, placed: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    image = background.copy()
    for face, x, y in placed:
        h, w = face.shape[:2]
        image[y:y + h, x:x + w] = face
    return image


def _run(config: FacetrackConfig, detector: FaceDetector, images: list[np.ndarray],
         breaks: tuple[int, ...] = ()) -> tuple[Pipeline, list]:
    pipeline = Pipeline(config, detector=detector, frame_rate=FPS)
    results = [pipeline.process(Frame(image, i, i / FPS, discontinuity=i in breaks)) for i, image in
               enumerate(images)]
    return pipeline, results


def _ids_near(result, x: float, y: float) -> list[int]:  # noqa: ANN001
    """Track IDs of the faces whose box holds the point (x, y)."""
    boxes = result.detections.xyxy
    inside = (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])
    return [int(t) for t in result.detections.tracker_id[inside]]


@pytest.fixture(scope="module")
def every_frame(clip_frames: list[np.ndarray], detector: FaceDetector) -> list[sv.Detections]:
    """What full-frame detection on every frame finds with confidence on the clip's first frames."""
    found = [detector.detect(image) for image in clip_frames]
    return [faces[faces.confidence >= 0.6] for faces in found]


def test_at_interval_3_every_frame_is_labelled(tmp_path: Path, clip_frames: list[np.ndarray], detector_path: Path,
                                              every_frame: list[sv.Detections]) -> None:
    count = 36
    clip = write_video(tmp_path / "first.mp4", clip_frames[:count], fps=30)
    events = tmp_path / "events.jsonl"
    result = run_cli("annotate", clip, "--events", events, "--detector", detector_path, "--detect-interval", "3",
                     timeout=240)
    assert result.returncode == 0, result.stderr
    frames = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(count))  # one frame event per frame
    # The frames between full detections have their faces too, with track IDs (a track shows from its second
    # frame, so the first frames of a shot are left out).
    between = [e for e in frames if e["frame"] % 3 and e["frame"] > 1 and len(every_frame[e["frame"] - 1])
               and len(every_frame[e["frame"]])]
    assert len(between) >= 15
    assert sum(len(e["faces"]) >= len(every_frame[e["frame"]]) for e in between) >= 0.8 * len(between)
    assert all(face["track_id"] >= 0 for e in frames for face in e["faces"])


def test_schedule_finds_the_confident_faces_every_frame_detection_finds(clip_frames: list[np.ndarray],
                                                                       detector: FaceDetector, detector_path: Path,
                                                                       every_frame: list[sv.Detections]) -> None:
    pipeline = Pipeline(_config(detector_path, interval=3), detector=detector, frame_rate=30)
    found = total = 0
    for index, (image, reference) in enumerate(zip(clip_frames, every_frame, strict=True)):
        scheduled = pipeline.schedule.detect(Frame(image, index, index / 30))
        assert len(scheduled.data["landmarks"]) == len(scheduled)
        total += len(reference)
        if len(reference) and len(scheduled):
            found += int((sv.box_iou_batch(reference.xyxy, scheduled.xyxy).max(axis=1) >= 0.5).sum())
    assert total >= 100
    assert found >= 0.9 * total
    assert pipeline.schedule.full_detections < 0.6 * len(clip_frames)  # it did follow faces in between


def test_two_faces_crossing_between_detections_keep_their_ids(faces: dict[str, np.ndarray], detector: FaceDetector,
                                                             detector_path: Path) -> None:
    background = _background()
    images, centres = [], []
    for i in range(34):  # Obama goes right along the top, Biden left below him: they pass each other mid-way
        a, b = 20 + 11 * i, 364 - 11 * i
        images.append(_scene(background, [(faces["obama"], a, 20), (faces["biden"], b, 150)]))
        centres.append(((a + 48, 68), (b + 48, 198)))
    pipeline, results = _run(_config(detector_path, interval=3), detector, images)
    owners: dict[str, set[int]] = {"obama": set(), "biden": set()}
    for result, (top, bottom) in zip(results[2:], centres[2:], strict=True):
        owners["obama"].update(_ids_near(result, *top))
        owners["biden"].update(_ids_near(result, *bottom))
    assert len(owners["obama"]) == 1 and len(owners["biden"]) == 1, owners
    assert owners["obama"] != owners["biden"]
    labelled = sum(len(r.detections) == 2 for r in results[2:])
    assert labelled >= 0.9 * len(results[2:])
    assert pipeline.schedule.full_detections < 0.6 * len(images)


@pytest.mark.parametrize("kind", ["cut", "clock break"])
def test_a_cut_or_a_clock_break_brings_a_full_detection_at_once(kind: str, faces: dict[str, np.ndarray],
                                                                 detector: FaceDetector, detector_path: Path) -> None:
    # Interval 10: without the restart the face that comes with it would wait for frame 10.
    first, second = _background(), _background(colour=(60, 60, 170) if kind == "cut" else (90, 110, 70))
    images = [_scene(first, [(faces["obama"], 40, 40)]) for _ in range(4)]
    images += [_scene(second, [(faces["obama"], 40, 40), (faces["biden"], 340, 130)]) for _ in range(4)]
    config = _config(detector_path, interval=10, motion_threshold=0.0)  # only the restart can find Biden
    pipeline, results = _run(config, detector, images, breaks=(4,) if kind == "clock break" else ())
    before = set(_ids_near(results[3], 88, 88))
    assert _ids_near(results[5], 388, 178), "the new face is tracked the frame after the restart"
    assert before and not before & set(_ids_near(results[5], 88, 88)), "tracks end at a restart"
    assert pipeline.schedule.reasons["cut"] == 1


@pytest.mark.parametrize("motion", [True, False])
def test_someone_appearing_between_detections_is_caught_by_motion(motion: bool, faces: dict[str, np.ndarray],
                                                                  detector: FaceDetector, detector_path: Path) -> None:
    background = _background()
    images = [_scene(background, [(faces["obama"], 40, 40)]) for _ in range(4)]
    images += [_scene(background, [(faces["obama"], 40, 40), (faces["biden"], 360, 150)]) for _ in range(4)]
    config = _config(detector_path, interval=10, **({} if motion else {"motion_threshold": 0.0}))
    pipeline, results = _run(config, detector, images)
    seen = [bool(_ids_near(r, 408, 198)) for r in results[4:]]
    if motion:
        assert seen[1:] == [True, True, True]  # found on the frame Biden appears, tracked from the next
        assert pipeline.schedule.reasons["motion"] >= 1
    else:
        assert not any(seen)  # without the motion check Biden waits for the next full detection (frame 10)


def test_interval_auto_for_files_live_sources_and_fixed_size_detectors(faces: dict[str, np.ndarray],
                                                                      detector: FaceDetector, detector_path: Path,
                                                                      fast_detector_path: Path) -> None:
    config = _config(detector_path)
    assert Pipeline(config, detector=detector, frame_rate=FPS).schedule.interval == 5  # a file
    images = [_scene(_background(), [(faces["obama"], 40 + 4 * i, 40)]) for i in range(6)]
    for frame_rate, expected in ((1.0, 3), (10_000.0, 10)):  # a full detection is quick for 1 fps, not 10 000
        live = Pipeline(config, detector=detector, frame_rate=frame_rate, live=True)
        for i, image in enumerate(images):
            live.process(Frame(image, i, i / frame_rate))
        assert live.schedule.interval == expected
    # A fixed-size model pays a full pass for a crop: auto detects on the whole of every frame.
    fixed = Pipeline(_config(fast_detector_path), frame_rate=FPS, live=True)
    for i, image in enumerate(images):
        assert len(fixed.process(Frame(image, i, i / FPS)).detections) == (1 if i else 0)
    assert fixed.schedule.interval == 1 and fixed.schedule.full_detections == len(images)


CROWD_FRAMES = 40  # of real/crowd_1080p.mp4: eleven people walking toward the camera, faces 24–100 pixels


def _crowd_tracking(config: FacetrackConfig, detector: FaceDetector, frames: list[np.ndarray],
                    events: Path) -> tuple[dict, Pipeline]:
    """The crowd's tracking scores (`facetrack eval` against its hand-checked truth) for one configuration."""
    from facetrack.eval import evaluate_files
    from facetrack.sinks.events import frame_event

    pipeline = Pipeline(config, detector=detector, frame_rate=25)
    with events.open("w") as out:
        for index, image in enumerate(frames):
            result = pipeline.process(Frame(image, index, index / 25))
            out.write(json.dumps(frame_event(index, index / 25, result.detections)) + "\n")
    report, _ = evaluate_files(events, Path(__file__).parent / "data" / "crowd_1080p.truth.jsonl")
    return report.tracking, pipeline


def test_crowd_tracking_holds_with_the_schedule(assets: Path, detector: FaceDetector, detector_path: Path,
                                                tmp_path: Path) -> None:
    frames = read_frames(assets / "media/real/crowd_1080p.mp4", CROWD_FRAMES)
    every, _ = _crowd_tracking(_config(detector_path, interval=1), detector, frames, tmp_path / "every.jsonl")
    scheduled, pipeline = _crowd_tracking(_config(detector_path), detector, frames, tmp_path / "schedule.jsonl")
    assert pipeline.schedule.full_detections <= 0.5 * CROWD_FRAMES  # it did follow faces in between
    assert every["IDF1"] >= 0.8  # the truth is the crowd's: every-frame detection tracks it well
    assert scheduled["IDF1"] >= every["IDF1"] - 0.03
    assert scheduled["MOTA"] >= every["MOTA"] - 0.03
    assert scheduled["IDSW"] <= every["IDSW"]


def test_a_face_kept_whole_wider_than_the_detector_input_falls_back_to_a_full_detection(
        detector: FaceDetector) -> None:
    """A talking head close to the camera, due for an embedding: its crop at the full detection's scale is wider
    than the whole detector input, so following it would cost more than detecting the frame."""
    from facetrack.follow import FaceFollower

    image = np.zeros((1080, 1920, 3), np.uint8)
    box = np.array([[460.0, 40.0, 1460.0, 1040.0]], np.float32)  # a face 1000 px across
    scale = min(detector.input_size_for(1080, 1920)[0] / 1920, detector.input_size_for(1080, 1920)[1] / 1080)
    assert FaceFollower(detector).mosaic(image, box, scale, whole=np.array([True])) is None
