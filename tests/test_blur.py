"""`--blur` on a real clip: the audience shot of the test clip (Obama, named from the gallery, among strangers),
annotated with `--blur unknown` and watched with `annotation.blur: all`; the written videos are decoded and the
pixels inside each face's box compared with the input's."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import run_cli, run_cli_here
from tests.footage import read_frames, write_video

START, FRAMES = 212, 60  # the audience shot, from its first frame


def gray_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.float32) for f in container.decode(video=0)]


def detail_kept(shown: np.ndarray, source: np.ndarray, box: list[float]) -> float:
    """How much of the face's fine detail (its high-pass picture, inside the middle of its box, away from the drawn
    box and label) the written frame still holds: the correlation with the input's, about 1 untouched (less after
    H.264), about 0 pixelated."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    w, h = x2 - x1, y2 - y1
    area = slice(max(0, y1 + h // 4), y2 - h // 4), slice(max(0, x1 + w // 4), x2 - w // 4)

    def fine(image: np.ndarray) -> np.ndarray:
        return (image - cv2.GaussianBlur(image, (0, 0), 1.5))[area].ravel()

    return float(np.corrcoef(fine(shown), fine(source))[0, 1])


@pytest.fixture(scope="module")
def audience(tmp_path_factory: pytest.TempPathFactory, clip_path: Path) -> Path:
    frames = read_frames(clip_path, FRAMES, start=START)
    return write_video(tmp_path_factory.mktemp("blur") / "audience.mp4", frames, fps=30)


@pytest.fixture(scope="module")
def annotated(audience: Path, gallery_dir: Path, detector_path: Path, recognizer_path: Path) -> dict:
    out = audience.parent
    video, events = out / "unknown.mp4", out / "unknown.jsonl"
    result = run_cli("annotate", audience, "-o", video, "--events", events, "--blur", "unknown", "--gallery",
                     gallery_dir, "--detector", detector_path, "--recognizer", recognizer_path, timeout=120)
    assert result.returncode == 0, result.stderr
    frames = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "frame"]
    return {"frames": frames, "shown": gray_frames(video), "video": video}


@pytest.fixture(scope="module")
def source(audience: Path) -> list[np.ndarray]:
    return gray_frames(audience)


def test_strangers_and_unnamed_faces_are_pixelated_named_faces_are_not(annotated: dict,
                                                                       source: list[np.ndarray]) -> None:
    shown, frames = annotated["shown"], annotated["frames"]
    assert len(shown) == len(source) == len(frames) == FRAMES
    kept: dict[bool, list[float]] = {True: [], False: []}
    for event in frames:
        i = event["frame"]
        for face in event["faces"]:
            kept[face["known"]].append(detail_kept(shown[i], source[i], face["box"]))
    assert len(kept[True]) >= FRAMES / 2  # Obama is named for most of the shot…
    # …and shown as he is: nine in ten of his face-frames keep most of their detail (H.264, and a neighbour's
    # pixelated square reaching into his box, take some from the others), and every one more than any stranger's.
    assert np.percentile(kept[True], 10) > 0.3, sorted(kept[True])[:5]
    assert min(kept[True]) > max(kept[False]), (sorted(kept[True])[:3], sorted(kept[False])[-3:])
    assert len(kept[False]) >= 2 * FRAMES  # the strangers, and faces before they are named…
    assert max(kept[False]) < 0.23, sorted(kept[False])[-5:]  # …never show their face
    # A look: the input above, the written frame below.
    i = frames[-1]["frame"]
    cv2.imwrite(str(annotated["video"].with_suffix(".png")), np.vstack([source[i], shown[i]]).astype(np.uint8))


def test_faces_no_track_holds_yet_are_pixelated_too(annotated: dict, source: list[np.ndarray]) -> None:
    first, second = annotated["frames"][:2]
    assert first["faces"] == [] and second["faces"]  # tracks are confirmed on their second frame…
    for face in second["faces"]:  # …but in the first the same faces are hidden already
        assert detail_kept(annotated["shown"][0], source[0], face["box"]) < 0.25


def test_blur_all_in_the_config_hides_named_faces_in_recordings(audience: Path, source: list[np.ndarray],
                                                               gallery_dir: Path, detector_path: Path,
                                                               recognizer_path: Path) -> None:
    out = audience.parent
    config, record, events = out / "all.yaml", out / "all.mp4", out / "all.jsonl"
    config.write_text("annotation:\n  blur: all\n")
    result = run_cli("watch", f"door={audience}", "--record", record, "--events", events, "--no-store", "-c",
                     config, "--max-frames", "30", "--gallery", gallery_dir, "--detector", detector_path,
                     "--recognizer", recognizer_path, timeout=120)
    assert result.returncode == 0, result.stderr
    frames = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "frame"]
    shown = gray_frames(record)
    assert len(shown) == len(frames) == 30
    named = [(e["frame"], f["box"]) for e in frames for f in e["faces"] if f["known"]]
    assert len(named) >= 15
    assert max(detail_kept(shown[i], source[i], box) for i, box in named) < 0.25
    faces = [(e["frame"], f["box"]) for e in frames for f in e["faces"]]
    assert max(detail_kept(shown[i], source[i], box) for i, box in faces) < 0.25


def _one_line_error(result, message: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) == 1


def test_bad_blur_mode(tmp_path: Path, clip_path: Path) -> None:
    _one_line_error(run_cli_here("annotate", clip_path, "-o", tmp_path / "o.mp4", "--blur", "faces"),
                    "--blur 'faces': use unknown")
    _one_line_error(run_cli_here("watch", clip_path, "--record", tmp_path / "o.mp4", "--blur", "yes"),
                    "--blur 'yes': use unknown")
    config = tmp_path / "c.yaml"
    config.write_text("annotation:\n  blur: strangers\n")
    _one_line_error(run_cli_here("annotate", clip_path, "-o", tmp_path / "o.mp4", "-c", config),
                    "invalid setting annotation.blur")


def test_blur_without_a_video_to_draw(tmp_path: Path, clip_path: Path) -> None:
    _one_line_error(run_cli_here("annotate", clip_path, "--events", tmp_path / "e.jsonl", "--blur", "unknown"),
                    "add -o OUTPUT.mp4")
    _one_line_error(run_cli_here("watch", clip_path, "--events", tmp_path / "e.jsonl", "--blur", "all"),
                    "add --record OUT.mp4, --display or --serve")
