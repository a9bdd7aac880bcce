"""The identity memory through the command line, as a user meets it: runs that write one store at the same
time, `people`, `seen`, naming and merging strangers, a `watch` that names them, `forget` leaving no bytes of a
person in the file, `purge`, and a store made with another recognizer refused."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from facetrack.store.sqlite import SqliteStore
from loopback import WebhookReceiver, wait_until
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def models(fast_detector_path: Path, recognizer_path: Path) -> list[str]:
    return ["--detector", str(fast_detector_path), "--recognizer", str(recognizer_path)]


@pytest.fixture(scope="module")
def asl(assets: Path) -> Path:
    return assets / "media/real/asl"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, asl: Path, models: list[str]) -> Path:
    """Two runs of the same person (the Misfits shirt) writing one new store at the same time."""
    path = tmp_path_factory.mktemp("store") / "S.db"
    env = {**os.environ, "COLUMNS": "200"}
    runs = [subprocess.Popen([sys.executable, "-m", "facetrack", "annotate", str(asl / clip), "--store", str(path),
                              *models], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for clip in ("again.mkv", "brother.mkv")]
    try:
        for run in runs:
            _, err = run.communicate(timeout=180)
            assert run.returncode == 0, err
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    return path


def people(path: Path) -> dict[str, dict]:
    result = run_cli("people", "--store", path, "--json")
    assert result.returncode == 0, result.stderr
    return {p["identity"]: p for p in json.loads(result.stdout)["people"]}


def test_concurrent_runs_lose_nothing_and_the_file_is_private(store: Path) -> None:
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    everyone = people(store)
    assert sum(p["sightings"] for p in everyone.values()) == 2  # both runs' tracks are there
    assert set(everyone) <= {"unknown-1", "unknown-2"}  # no number given twice, none skipped by a lost write
    assert all(p["templates"] >= 1 and not p["named"] for p in everyone.values())


def test_name_seen_merge_and_a_watch_that_names_them(store: Path, asl: Path, models: list[str],
                                                     tmp_path: Path) -> None:
    before = people(store)
    result = run_cli("unknowns", "name", "unknown-1", "alice", "--store", store)
    assert result.returncode == 0 and "unknown-1 is now alice" in result.stdout, result.stderr
    if "unknown-2" in before:  # the two runs decided at the same time, each minting: one person, two IDs
        assert run_cli("unknowns", "merge", "alice", "unknown-2", "--store", store).returncode == 0
    seen = json.loads(run_cli("seen", "alice", "--store", store, "--json", "--export", tmp_path / "crops").stdout)
    assert seen["identity"] == "alice" and len(seen["sightings"]) == 2
    assert all(Path(s["crop"]).read_bytes()[:2] == b"\xff\xd8" for s in seen["sightings"])  # JPEG crops
    # A later run (live runner, a camera named door) names the same person alice; its alert says since when
    # and how often they have been seen.
    receiver = WebhookReceiver()
    try:
        result = run_cli("watch", f"door={asl / 'help.mkv'}", "--store", store, "--events", tmp_path / "e.jsonl",
                         "--webhook", receiver.url, *models, timeout=180)
        assert result.returncode == 0, result.stderr
        assert wait_until(lambda: any(p["topic"] == "left" for p in receiver.posts), timeout=10)
    finally:
        receiver.close()
    alert = next(p for p in receiver.posts if p["topic"] == "identity")
    assert alert["identity"] == "alice" and alert["times_seen"] == 3
    first = datetime.fromisoformat(seen["sightings"][0]["started"])
    assert abs((datetime.fromisoformat(alert["first_seen"]) - first).total_seconds()) < 1.0
    decisions = [e for e in map(json.loads, (tmp_path / "e.jsonl").read_text().splitlines())
                 if e["type"] == "identity"]
    assert decisions[-1]["identity"] == "alice" and decisions[-1]["state"] == "known"
    on_door = json.loads(run_cli("seen", "alice", "--camera", "door", "--since", "1h", "--store", store,
                                 "--json").stdout)["sightings"]
    assert len(on_door) == 1 and on_door[0]["seconds"] > 1.0


def test_forget_leaves_no_bytes_of_the_person_in_the_file(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "S.db"
    shutil.copy(store, copy)  # the last connection closed: no write-ahead log is pending
    db = SqliteStore(copy, create=False)
    traces = [vector.tobytes() for label, _, vector in db.templates() if label == "alice"]
    for sighting in db.sightings("alice"):
        assert sighting.embedding is not None and sighting.crop is not None
        traces += [sighting.embedding.tobytes(), sighting.crop[200:264]]
    db.close()
    data = copy.read_bytes()
    assert traces and all(t in data for t in traces) and b"alice" in data  # the test would see them
    result = run_cli("forget", "alice", "--store", copy)
    assert result.returncode == 0, result.stderr
    data = b"".join(p.read_bytes() for p in tmp_path.glob("S.db*"))
    assert not any(t in data for t in traces) and b"alice" not in data
    assert "alice" not in people(copy)
    assert run_cli("seen", "alice", "--store", copy).returncode == 2


def test_purge_deletes_what_is_older_than_the_retention(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "S.db"
    shutil.copy(store, copy)
    kept = run_cli("store", "purge", "--store", copy, "--json")  # the default: 30 days
    assert json.loads(kept.stdout)["sightings"] == 0
    gone = json.loads(run_cli("store", "purge", "--older-than", "0", "--store", copy, "--json").stdout)
    assert gone["sightings"] >= 1
    assert all(p["sightings"] == 0 and p["named"] for p in people(copy).values())  # named people stay


def test_a_store_of_another_recognizer_is_refused(store: Path, asl: Path, fast_detector_path: Path,
                                                  assets: Path, recognizer_path: Path) -> None:
    other = assets / "models/mobilefacenet_128_dynbatch.onnx"
    result = run_cli("annotate", asl / "eat.mkv", "--store", store, "--detector", fast_detector_path,
                     "--recognizer", other)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and f"--recognizer {recognizer_path}" in lines[0]


def test_bad_names_and_stores_are_one_line_errors(store: Path, tmp_path: Path, asl: Path) -> None:
    not_a_store = tmp_path / "notes.db"
    not_a_store.write_text("hello")
    for args in (("seen", "bob", "--store", store), ("people", "--store", tmp_path / "missing.db"),
                 ("people", "--store", not_a_store), ("unknowns", "name", "unknown-99", "carol", "--store", store),
                 ("unknowns", "name", "unknown-1", "unknown-5", "--store", store),
                 ("seen", "alice", "--since", "yesterday-ish", "--store", store)):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.stderr)


WRITER = """
import sys, time
import numpy as np
from facetrack.store import Sighting
from facetrack.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
for i in range(40):
    label = store.mint_stranger()
    vector = rng.standard_normal(128).astype(np.float32)
    now = time.time()
    store.record(Sighting(label, f"cam{sys.argv[2]}", "run", i, now, now, 0.0, 1.0, 3, vector / np.linalg.norm(vector),
                          b"jpeg"), template=True)
store.close()
"""


def test_two_writers_at_once_lose_nothing_and_share_no_number(tmp_path: Path) -> None:
    path = tmp_path / "S.db"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seed)], stderr=subprocess.PIPE,
                                text=True) for seed in (1, 2)]
    try:
        for writer in writers:
            _, err = writer.communicate(timeout=60)
            assert writer.returncode == 0, err
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    everyone = people(path)
    assert sorted(everyone) == sorted(f"unknown-{n}" for n in range(1, 81))  # 80 numbers, each given once
    assert all(p["sightings"] == 1 and p["templates"] == 1 for p in everyone.values())
    assert {c for p in everyone.values() for c in p["cameras"]} == {"cam1", "cam2"}


def test_a_store_from_a_newer_facetrack_or_a_gallery_file_is_refused(store: Path, tmp_path: Path) -> None:
    import sqlite3

    newer = tmp_path / "newer.db"
    shutil.copy(store, newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    result = run_cli("people", "--store", newer)
    assert result.returncode == 2 and "newer facetrack" in result.stderr
    gallery = tmp_path / "people.db"
    with sqlite3.connect(gallery) as conn:
        conn.execute("CREATE TABLE templates (id INTEGER PRIMARY KEY, embedding BLOB)")
    conn.close()
    result = run_cli("people", "--store", gallery)
    assert result.returncode == 2 and "pass it to --gallery" in result.stderr


def test_a_run_holding_an_old_label_files_under_the_new_one_and_the_forgotten_stay_forgotten(tmp_path: Path) -> None:
    """What a `watch` still running writes after `unknowns name`, `merge` or `forget` in another process."""
    import time

    import numpy as np

    from facetrack.store import Sighting

    running = SqliteStore(tmp_path / "S.db")  # the long run, which minted its strangers earlier
    first, second, third = (running.mint_stranger() for _ in range(3))
    editor = SqliteStore(tmp_path / "S.db")  # the user, meanwhile
    editor.name(first, "alice")
    editor.merge("alice", second)
    editor.forget(third)
    now = time.time()
    vector = np.ones(128, np.float32) / np.sqrt(128)

    def sighting(label: str) -> Sighting:
        return Sighting(label, "door", "run", 1, now, now + 2, 0.0, 2.0, 3, vector, b"jpeg")

    assert running.record(sighting(first), template=True) == "alice"
    assert running.record(sighting(second), template=True) == "alice"
    assert running.record(sighting(third), template=True) is None  # nothing of them is written back
    assert len(editor.sightings("alice")) == 2 and third not in {p.label for p in editor.people()}
    assert running.mint_stranger() == "unknown-4"  # a forgotten number is never given again
    running.close()
    editor.close()


def test_store_people_join_the_photo_gallery_held_to_their_own_bar() -> None:
    """A person named from video (the store) must clear the bank threshold; photo-enrolled people the gallery's."""
    import numpy as np

    from facetrack.gallery import Gallery

    axes = np.eye(4, dtype=np.float32)
    photos = Gallery(["obama", "alice"], np.array([0, 1]), axes[:2], "fp", "m")
    store_people = Gallery(["alice", "bob"], np.array([0, 1]), axes[1:3], "fp", "m",
                           floors=np.array([0.65, 0.65], np.float32))
    joined = photos.joined(store_people)
    assert joined.names == ["alice", "bob", "obama"]
    halfway_to_bob = (axes[2] + axes[3]) / np.linalg.norm(axes[2] + axes[3])  # similarity 0.71 to bob
    assert joined.match(halfway_to_bob).name == "bob"
    weak_bob = np.array([0.0, 0.0, 0.5, 0.866], np.float32)  # 0.5 to bob: a gallery match, not a bank one
    assert joined.match(weak_bob).name is None
    weak_alice = np.array([0.0, 0.5, 0.0, 0.866], np.float32)  # alice is also photo-enrolled: her bar is the gallery's
    assert joined.match(weak_alice).name == "alice"
