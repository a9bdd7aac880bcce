"""`annotate FILE --events A` and `watch FILE --events B` are one runner: the same events, line for line.

The clip is the first 100 frames of the shared test clip (two shot cuts, several tracks, gallery names), made on
the fly; both commands run as a user runs them. `watch` puts the camera's name first in each event; nothing
else may differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.footage import read_frames, write_video


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, clip_path: Path, fast_detector_path: Path, recognizer_path: Path,
         gallery_dir: Path) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("runner")
    clip = write_video(tmp / "clip.mp4", read_frames(clip_path, 100), fps=30)
    models = ["--detector", fast_detector_path, "--recognizer", recognizer_path, "--gallery", gallery_dir]
    annotated = run_cli("annotate", clip, "--events", tmp / "a.jsonl", *models)
    assert annotated.returncode == 0, annotated.stderr
    watched = run_cli("watch", clip, "--events", tmp / "b.jsonl", "--no-store", *models)
    assert watched.returncode == 0, watched.stderr
    return {name: [json.loads(line) for line in (tmp / f"{name}.jsonl").read_text().splitlines()]
            for name in ("a", "b")}


def test_annotate_and_watch_give_the_same_events(both: dict[str, list[dict]]) -> None:
    annotated, watched = both["a"], both["b"]
    assert all(next(iter(e)) == "camera" and e["camera"] == "cam0" for e in watched)
    assert all("camera" not in e for e in annotated)
    assert [{k: v for k, v in e.items() if k != "camera"} for e in watched] == annotated


def test_the_events_cover_every_frame_track_and_name(both: dict[str, list[dict]]) -> None:
    events = both["a"]
    assert [e["frame"] for e in events if e["type"] == "frame"] == list(range(100))
    started = [e["track_id"] for e in events if e["type"] == "track_start"]
    assert len(started) >= 3 and sorted(started) == sorted(e["track_id"] for e in events if e["type"] == "track_end")
    assert any(e["type"] == "identity" and e["state"] == "known" for e in events)
