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
from tests.conftest import run_cli
from tests.servers import WebhookReceiver, wait_until


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
