"""Persistent strangers on real footage: the 9 ASL clips, each its own run into one store, show 5 people
(MANIFEST.md, by their clothes). Each person must get one ID, and no ID may hold two people; a stranger named
in the store is named in a later run, and nobody else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrack.config import FacetrackConfig, load_config
from facetrack.detect import FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.models.faces import FaceModels
from facetrack.runner import file_runner
from facetrack.store.sqlite import SqliteStore

PEOPLE = {"again": "misfits", "brother": "misfits", "help": "misfits", "book": "yellow", "learn": "yellow",
          "bird": "grey", "milk": "grey", "eat": "sweater", "hungry": "plaid"}


class Runner:
    """Runs clips in-process into one store, with the models loaded once."""

    def __init__(self, config: FacetrackConfig, clips: Path) -> None:
        self.config = config
        self.clips = clips
        self.detector = FaceDetector(config.models.detector, config.detector, config.runtime)  # type: ignore[arg-type]
        self.embedder = FaceEmbedder(config.models.recognizer, config.runtime)  # type: ignore[arg-type]

    def run(self, clip: str, events: Path | None = None) -> str:
        """One run of one clip; returns its run id."""
        runner = file_runner(self.config, self.clips / f"{clip}.mkv", None, events,
                             models=FaceModels(self.detector, self.embedder), camera=clip)
        runner.run()
        assert runner.memory is not None
        return runner.memory.run_id


def ids_by_clip(path: Path) -> dict[str, list[str]]:
    """The identities each clip's run was filed under (the camera is named after the clip)."""
    store = SqliteStore(path, create=False)
    try:
        found: dict[str, list[str]] = {}
        for person in store.people():
            for sighting in store.sightings(person.label):
                found.setdefault(sighting.camera, []).append(person.label)
        return found
    finally:
        store.close()


@pytest.fixture(scope="module")
def asl(tmp_path_factory: pytest.TempPathFactory, assets: Path, fast_detector_path: Path,
        recognizer_path: Path) -> tuple[Runner, Path]:
    path = tmp_path_factory.mktemp("asl") / "S.db"
    config = load_config(None, {"models": {"detector": fast_detector_path, "recognizer": recognizer_path},
                                "store": {"path": path}})
    runner = Runner(config, assets / "media/real/asl")
    for clip in sorted(PEOPLE):
        runner.run(clip)
    return runner, path


def test_nine_runs_of_five_people_give_five_ids_none_holding_two_people(asl: tuple[Runner, Path]) -> None:
    _, path = asl
    found = ids_by_clip(path)
    assert sorted(found) == sorted(PEOPLE)  # every run wrote its sighting
    assert all(len(labels) == 1 for labels in found.values()), found  # one track per clip
    people_of_id: dict[str, set[str]] = {}
    ids_of_person: dict[str, set[str]] = {}
    for clip, (label,) in found.items():
        people_of_id.setdefault(label, set()).add(PEOPLE[clip])
        ids_of_person.setdefault(PEOPLE[clip], set()).add(label)
    assert all(len(p) == 1 for p in people_of_id.values()), f"an ID holds two people: {people_of_id}"
    assert all(len(i) == 1 for i in ids_of_person.values()), f"a person got two IDs: {ids_of_person}"
    assert len(people_of_id) == 5


def test_a_named_stranger_is_named_in_a_later_run_and_nobody_else_is(asl: tuple[Runner, Path],
                                                                     tmp_path: Path) -> None:
    import json

    runner, path = asl
    misfits = ids_by_clip(path)["again"][0]
    store = SqliteStore(path, create=False)
    store.name(misfits, "alice")
    # Past sightings answer to the new name: the three clips of the Misfits shirt.
    assert sorted(s.camera for s in store.sightings("alice")) == ["again", "brother", "help"]
    store.close()
    events = tmp_path / "help.jsonl"
    runner.run("help", events)
    named = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "identity"]
    assert named and named[-1]["identity"] == "alice" and named[-1]["state"] == "known"
    grey = ids_by_clip(path)["milk"][0]
    runner.run("milk", tmp_path / "milk.jsonl")  # a different person stays who they were, not alice
    store = SqliteStore(path, create=False)
    try:
        assert len(store.sightings("alice")) == 4
        assert [s.camera for s in store.sightings(grey)] == ["bird", "milk", "milk"]
    finally:
        store.close()
