"""`facetrack bench` on a few frames of the real clip. Speed is reported here, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "home"))  # the gallery cache goes here
    return tmp_path


def test_bench_json_has_the_runs_on_the_same_frames(home: Path, clip_path: Path, detector_path: Path,
                                                    recognizer_path: Path, gallery_dir: Path) -> None:
    result = run_cli("bench", clip_path, "--frames", "8", "--detector", detector_path, "--recognizer",
                     recognizer_path, "--gallery", gallery_dir, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fps"] > 0 and report["naive_fps"] > 0 and report["floor_fps"] > 0
    assert report["speedup_vs_naive"] == pytest.approx(report["fps"] / report["naive_fps"], rel=0.01)
    runs = report["runs"]
    assert {name: run["frames"] for name, run in runs.items()} == {"facetrack": 8, "every_frame": 8, "naive": 8,
                                                                   "floor": 8}
    assert set(runs["floor"]["stages"]) == {"decode", "detect"}
    assert {"decode", "detect", "track", "embed", "identify"} <= set(runs["facetrack"]["stages"])
    # The naive baseline embeds every face of every frame (the clip opens on two faces); facetrack throttles.
    assert runs["naive"]["embeddings"] >= 2 * 8 > runs["facetrack"]["embeddings"] >= 1
    # The floor and the every-frame pipeline detect on every frame; the schedule (auto: 5 on a file) fewer.
    assert runs["floor"]["full_detections_per_frame"] == runs["every_frame"]["full_detections_per_frame"] == 1
    assert 2 / 8 <= report["full_detections_per_frame"] < 1 and report["detect_interval"] == "auto"
    assert report["every_frame_fps"] > 0
    assert report["gallery_people"] == 6 and report["speed_twin"] is False
    assert all(run["peak_rss_mb"] > 50 for run in runs.values())
    assert "not measured" not in result.stderr


def test_bench_table_with_video(home: Path, clip_path: Path, fast_detector_path: Path,
                                recognizer_path: Path) -> None:
    result = run_cli("bench", clip_path, "--frames", "4", "--video", "--detector", fast_detector_path,
                     "--recognizer", recognizer_path)
    assert result.returncode == 0, result.stderr
    for text in ("facetrack", "naive", "detector floor", "fps", "align+embed", "annotate", "encode",
                 "embeddings per frame", "peak memory", "facetrack / naive"):
        assert text in result.stdout


def test_bench_interleaved_and_repeated(home: Path, clip_path: Path, fast_detector_path: Path,
                                        recognizer_path: Path) -> None:
    result = run_cli("bench", clip_path, "--frames", "5", "--interleave", "--repeat", "2", "--detector",
                     fast_detector_path, "--recognizer", recognizer_path, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["interleaved"] is True and report["repeat"] == 2
    for run in report["runs"].values():
        assert run["frames"] == 5 and len(run["fps_all"]) == 2 and round(run["fps"], 3) in run["fps_all"]
    # The pass kept is one pass: the three share its decoding and report the same decode time.
    assert len({run["stages"]["decode"] for run in report["runs"].values()}) == 1


def test_speed_twin_says_identity_is_not_measured(home: Path, clip_path: Path, fast_detector_path: Path) -> None:
    twin = home / "twin.onnx"
    made = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_speed_twin.py"), "-o", str(twin)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    result = run_cli("bench", clip_path, "--frames", "3", "--detector", fast_detector_path, "--recognizer", twin,
                     "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["speed_twin"] is True
    assert "identity quality is not measured" in " ".join(result.stderr.split())


def test_bench_mistakes_are_one_line(home: Path, clip_path: Path, detector_path: Path,
                                     recognizer_path: Path) -> None:
    for args, message in (((clip_path, "--frames", "0"), "--frames must be 1 or more"),
                          ((home / "none.mp4",), "input file not found")):
        result = run_cli("bench", *args, "--detector", detector_path, "--recognizer", recognizer_path)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
