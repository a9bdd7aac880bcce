"""Invariants of the tracker, the identity stage and the pipeline on random streams (hypothesis).

Streams hold empty frames, one face, many faces, faces that vanish and come back, and timestamps that repeat,
go back or jump. Whatever the stream: no exception, every frame's detections carry their columns, no identity
on two faces of one frame, every started track ends once, one frame event per frame.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facetrack.config import FacetrackConfig, TrackerConfig
from facetrack.pipeline import Pipeline
from facetrack.track import FaceTracker
from facetrack.types import IDENTITY, IDENTITY_COLUMNS, LANDMARKS
from tests.fakes import Face, PersonEmbedder, ScriptedDetector, frames_of, gallery_of

LANES = 5  # a person keeps a lane (an x position), so that two faces never overlap


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[list[Face]], list[float]]:
    length = draw(st.integers(1, 45))
    people = draw(st.integers(0, LANES))
    present = [draw(st.lists(st.booleans(), min_size=length, max_size=length)) for _ in range(people)]
    # Runs of presence, so faces stay long enough to be tracked, vanish, and return.
    script: list[list[Face]] = []
    for index in range(length):
        faces = []
        for person in range(people):
            if present[person][index // 4 % length] if length > 4 else present[person][index]:
                drift = draw(st.floats(-3, 3))
                faces.append(Face(person, 10 + person * 120 + drift, 60 + drift, side=90))
        script.append(faces)
    steps = draw(st.lists(st.sampled_from([1 / 30] * 6 + [0.0, -0.5, 20.0]), min_size=length, max_size=length))
    times = list(np.cumsum([0.0] + steps[1:]))
    return script, times


def _config() -> FacetrackConfig:
    config = FacetrackConfig()
    config.tracker.cut_threshold = 0  # the scripted frames are all black: nothing to cut on
    return config


def _run(script: list[list[Face]], times: list[float], gallery_people: dict[str, int]) -> list[list[dict]]:
    embedder = PersonEmbedder(script)
    pipeline = Pipeline(_config(), detector=ScriptedDetector(script), embedder=embedder,  # type: ignore[arg-type]
                        gallery=gallery_of(gallery_people) if gallery_people else None)
    per_frame = []
    frames = frames_of(script, times)
    for frame in frames:
        result = pipeline.process(frame)
        faces = result.detections
        assert faces.tracker_id is not None and len(faces.tracker_id) == len(faces)
        assert faces.data[LANDMARKS].shape == (len(faces), 5, 2)
        assert all(column in faces.data and len(faces.data[column]) == len(faces) for column in IDENTITY_COLUMNS)
        shown = [name for name in faces.data[IDENTITY] if name]
        assert len(shown) == len(set(shown)), f"one identity on two faces at frame {frame.index}: {shown}"
        per_frame.append(result.events)
    per_frame.append(pipeline.finish(frames[-1].index, frames[-1].pts))
    return per_frame


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([{}, {"ann": 0}, {"ann": 0, "bob": 1, "cy": 2}]))
def test_pipeline_invariants(stream: tuple[list[list[Face]], list[float]], gallery: dict[str, int]) -> None:
    script, times = stream
    events = [e for frame in _run(script, times, gallery) for e in frame]
    frames = [e for e in events if e["type"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(len(script)))
    started = [e["track_id"] for e in events if e["type"] == "track_start"]
    ended = [e["track_id"] for e in events if e["type"] == "track_end"]
    assert len(started) == len(set(started)) and sorted(started) == sorted(ended)
    # Identity events come from tracks that exist at that moment.
    live: set[int] = set()
    for event in events:
        if event["type"] == "track_start":
            live.add(event["track_id"])
        elif event["type"] == "track_end":
            live.discard(event["track_id"])
        elif event["type"] == "identity":
            assert event["track_id"] in live


@settings(max_examples=60, deadline=None)
@given(streams())
def test_tracker_columns_and_lifecycle(stream: tuple[list[list[Face]], list[float]]) -> None:
    script, times = stream
    detector = ScriptedDetector(script)
    tracker = FaceTracker(TrackerConfig())
    alive: set[int] = set()
    seen: set[int] = set()
    for index, pts in enumerate(times):
        update = tracker.update(detector.detect(np.zeros((1, 1, 3), np.uint8), index=index), timestamp=pts)
        faces = update.detections
        assert faces.data[LANDMARKS].shape == (len(faces), 5, 2) and len(faces.tracker_id) == len(faces)
        ids = [int(t) for t in faces.tracker_id]
        assert len(ids) == len(set(ids)) and all(t >= 0 for t in ids)
        assert not set(update.started) & seen, "a track ID was used twice"
        seen |= set(update.started)
        alive = (alive | set(update.started)) - set(update.ended)
        assert set(ids) <= alive
    assert set(tracker.finish()) == alive


def test_faces_after_a_clock_that_goes_back_are_tracked() -> None:
    """Times that go back once: the tracker keeps tracking (it used to skip every later frame)."""
    script = [[Face(0, 100, 80)] for _ in range(40)]
    times = [i / 30 for i in range(20)] + [i / 30 for i in range(20)]
    tracker = FaceTracker(TrackerConfig())
    counts = [len(tracker.update(ScriptedDetector(script).detect(np.zeros((1, 1, 3)), index=i), timestamp=t)
                  .detections) for i, t in enumerate(times)]
    assert all(c == 1 for c in counts[22:]), counts
