"""The runner and the pipeline with a scripted detector and embedder (tests/fakes.py): no model files, seconds.

What a user relies on: the threaded runner gives a file's events exactly as `Pipeline.process` gives them
frame by frame (identities included), several cameras each get their own, the events file holds them as one
JSON line each, and every source is closed at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

from facetrack.config import FacetrackConfig
from facetrack.live import CameraSpec
from facetrack.models.faces import FaceModels
from facetrack.pipeline import Pipeline
from facetrack.runner import Runner
from facetrack.types import to_json
from tests.fakes import Face, PersonEmbedder, ScriptedDetector, ScriptedSource, frames_of, gallery_of

FRAMES = 90


def _script() -> list[list[Face]]:
    """Ann throughout; Bob leaves for a while and comes back; a stranger passes by in the middle."""
    script = []
    for index in range(FRAMES):
        faces = [Face(0, 20 + index * 0.5, 60)]
        if index < 30 or index >= 55:
            faces.append(Face(1, 260, 80))
        if 35 <= index < 70:
            faces.append(Face(2, 460, 70))
        script.append(faces)
    return script


def _config(identity: bool = True) -> FacetrackConfig:
    config = FacetrackConfig()
    config.tracker.cut_threshold = 0  # the scripted frames are all black: nothing to cut on
    config.live.stats_interval = 0
    config.identity.enabled = identity
    return config


def _models(script: list[list[Face]], identity: bool = True) -> FaceModels:
    detector = ScriptedDetector(script)
    if not identity:
        return FaceModels(detector)  # type: ignore[arg-type]
    # Without noise: cameras that share the embedder get the vectors they would get alone.
    embedder = PersonEmbedder(script, noise=0.0)
    return FaceModels(detector, embedder, gallery_of({"ann": 0, "bob": 1}))  # type: ignore[arg-type]


def _sequential(script: list[list[Face]], identity: bool = True) -> list[dict]:
    frames = frames_of(script, [i / 30 for i in range(len(script))])
    pipeline = Pipeline(_config(identity), models=_models(script, identity))
    events: list[dict] = []
    for frame in frames:
        events += pipeline.process(frame).events
    return events + pipeline.finish(frames[-1].index, frames[-1].pts)  # type: ignore[operator]


def _threaded(script: list[list[Face]], tmp_path: Path, cameras: int = 1, identity: bool = True,
              tag_camera: bool = False) -> tuple[list[dict], list[ScriptedSource]]:
    frames = frames_of(script, [i / 30 for i in range(len(script))])
    sources = [ScriptedSource(frames, f"cam{i}") for i in range(cameras)]
    events = tmp_path / "events.jsonl"
    runner = Runner(_config(identity), [CameraSpec(f"cam{i}", f"scripted-{i}.mp4") for i in range(cameras)],
                    sources=sources, models=_models(script, identity), events=events,  # type: ignore[arg-type]
                    tag_camera=tag_camera)
    summary = runner.run()
    assert summary.frames == cameras * len(script) and summary.stop_reason == "end" and not summary.errors
    return [json.loads(line) for line in events.read_text().splitlines()], sources


def test_the_runner_writes_the_events_of_the_sequential_pipeline(tmp_path: Path) -> None:
    script = _script()
    expected = _sequential(script)
    written, sources = _threaded(script, tmp_path)
    names = {e["identity"] for e in expected if e["type"] == "identity"}
    assert {"ann", "bob"} <= names and any(n and n.startswith("unknown-") for n in names)
    assert written == expected
    assert (tmp_path / "events.jsonl").read_text() == "".join(to_json(e) + "\n" for e in expected)  # type: ignore[arg-type]
    assert all(source.closed for source in sources)


def test_each_camera_gets_its_own_events_first_field_its_name(tmp_path: Path) -> None:
    script = _script()
    expected = _sequential(script)
    written, _ = _threaded(script, tmp_path, cameras=2, tag_camera=True)
    for name in ("cam0", "cam1"):
        mine = [e for e in written if e["camera"] == name]
        assert all(next(iter(e)) == "camera" for e in mine)
        assert [{k: v for k, v in e.items() if k != "camera"} for e in mine] == expected


def test_without_identity_the_runner_gives_tracks_and_frames_only(tmp_path: Path) -> None:
    script = _script()
    expected = _sequential(script, identity=False)
    written, _ = _threaded(script, tmp_path, identity=False)
    assert written == expected
    assert {e["type"] for e in written} == {"frame", "track_start", "track_end"}
    assert all(face["identity"] is None for e in written if e["type"] == "frame" for face in e["faces"])
