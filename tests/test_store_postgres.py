"""The identity store on a real PostgreSQL server (Debian's PostgreSQL 15, started by the tests): the Store
protocol on both backends, and several workers sharing one truth — two `annotate` runs at once give the same
person one ID, workers deciding at the same moment mint one ID, a naming reaches a running `watch` at once, and a
database stopped mid-run loses no sighting. No printed location ever shows the password."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from facetrack.config import RecognizerThresholds, StoreConfig
from facetrack.errors import FacetrackError
from facetrack.store import Recognizer, Sighting, Store, open_store
from facetrack.store.memory import IdentityMemory
from loopback import PostgresServer, postgres, wait_until
from tests.conftest import run_cli

pytest.importorskip("psycopg", reason="the PostgreSQL store needs psycopg: pip install -e '.[postgres]'")

RECOGNIZER = Recognizer("f" * 64, "mobilefacenet_128", "/models/mobilefacenet_128.onnx", 128)
THRESHOLDS = RecognizerThresholds(threshold=0.4, margin=0.05, relink_threshold=0.45)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with postgres(tmp_path_factory.mktemp("pg")) as running:
        yield running


@pytest.fixture(scope="module")
def models(fast_detector_path: Path, recognizer_path: Path) -> list[str]:
    return ["--detector", str(fast_detector_path), "--recognizer", str(recognizer_path)]


@pytest.fixture(scope="module")
def asl(assets: Path) -> Path:
    return assets / "media/real/asl"


_databases = iter(range(1, 1000))


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens one store of the backend under test (every call another connection to the same one)."""
    if request.param == "postgres":
        location: str | Path = request.getfixturevalue("server").create_database(f"protocol{next(_databases)}")
    else:
        location = tmp_path / "S.db"
    opened: list[Store] = []

    def make() -> Store:
        opened.append(open_store(location))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def _unit(seed: int, dim: int = 128) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _sighting(label: str, embedding: np.ndarray, camera: str = "door", started: float | None = None) -> Sighting:
    started = time.time() if started is None else started
    return Sighting(label, camera, "run-1", 1, started, started + 2.0, 0.0, 2.0, 5, embedding, b"\xff\xd8crop", 0.6)


# --- the Store protocol, on both backends ------------------------------------------------------------------------


def test_strangers_sightings_names_merges_and_forgetting(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.bind_recognizer(RECOGNIZER)
    a, b = store.mint_stranger(), store.mint_stranger()
    assert a != b and a.startswith("unknown-") and b.startswith("unknown-")
    assert store.record(_sighting(a, _unit(1)), template=True) == a
    assert store.record(_sighting(b, _unit(2), camera="hall"), template=True) == b
    assert sorted(label for label, named, _ in store.templates() if not named) == sorted([a, b])
    assert store.name(a, "alice") == "alice"
    # A run still holding the old label writes to the named person.
    assert store.record(_sighting(a, _unit(1), camera="hall"), template=False) == "alice"
    assert store.merge("alice", b) == 1
    alice = store.person(b)  # a former label finds the person it went into
    assert alice is not None and alice.label == "alice" and alice.sightings == 3
    ghost = store.mint_stranger()  # minted for a track that turned out to be someone known: no empty ID stays
    store.discard_stranger(ghost)
    assert store.person(ghost) is None
    everyone = {p.label: p for p in store.people()}
    assert set(everyone) == {"alice"} and everyone["alice"].sightings == 3
    assert everyone["alice"].named and everyone["alice"].cameras == ["door", "hall"]
    assert len(store.sightings("alice", camera="door")) == 1
    crops = [s.crop for s in store.sightings(b)]  # a merged label still finds the person
    assert crops == [b"\xff\xd8crop"] * 3
    assert store.forget("alice") == 3
    assert store.people() == [] and store.templates() == []
    with pytest.raises(FacetrackError, match="nobody called 'alice'"):
        store.sightings("alice")
    c = store.mint_stranger()
    assert c not in (a, b)  # a number is never given twice, even after its person is forgotten
    assert store.record(_sighting(a, _unit(1)), template=True) is None  # forgotten: nothing written back


def test_purge_and_another_recognizer_refused(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.bind_recognizer(RECOGNIZER)
    old, new = store.mint_stranger(), store.mint_stranger()
    store.record(_sighting(old, _unit(3), started=time.time() - 40 * 86400), template=True)
    store.record(_sighting(new, _unit(4)), template=True)
    assert store.purge(time.time() - 30 * 86400) == (1, 0)  # `old` was created just now: kept until next time
    assert [p.label for p in store.people() if p.sightings] == [new]
    other = make_store()  # a second connection sees the same store
    with pytest.raises(FacetrackError, match="holds embeddings of recognizer mobilefacenet_128"):
        other.bind_recognizer(Recognizer("0" * 64, "w600k_r50", "/m/r50.onnx", 512))


def test_ignore_and_remove_one_template(make_store: Callable[[], Store]) -> None:
    store = make_store()
    store.bind_recognizer(RECOGNIZER)
    courier = store.mint_stranger()
    store.record(_sighting(courier, _unit(1)), template=True)
    store.record(_sighting(courier, _unit(2)), template=True)
    assert store.ignore(courier) == courier
    assert [(p.label, p.ignored) for p in store.people()] == [(courier, True)]
    store.name(courier, "courier")
    assert store.person(courier).ignored  # type: ignore[union-attr]  # a naming keeps it
    assert store.ignore("courier", ignored=False) == "courier" and not store.person("courier").ignored  # type: ignore[union-attr]
    assert store.ignore("postman") == "postman"  # a gallery name not seen yet: ignored once seen
    assert store.person("postman").ignored and store.person("postman").named  # type: ignore[union-attr]
    for bad in ("unknown-99", "nobody"):
        with pytest.raises(FacetrackError, match="nobody called"):
            store.ignore(bad, ignored=False)
    templates = store.person_templates("courier")
    sightings = {s.id for s in store.sightings("courier")}
    assert len(templates) == 2 and {t.sighting_id for t in templates} == sightings  # each shows its crop
    assert store.remove_template("courier", templates[0].id) == 1
    assert [t.id for t in store.person_templates("courier")] == [templates[1].id]
    with pytest.raises(FacetrackError, match="no template"):
        store.remove_template("courier", templates[0].id)


def test_a_running_memory_follows_changes_made_elsewhere_person_by_person(make_store: Callable[[], Store]) -> None:
    """What a running worker holds (bank, named people, former labels, ignored) follows a naming, an ignore and
    a forget made through another connection, reading again only the people the change journal names."""
    store = make_store()
    memory = IdentityMemory(store, StoreConfig(), THRESHOLDS, RECOGNIZER)
    read: list[object] = []
    identities = store.identities
    store.identities = lambda ids=None: (read.append(ids), identities(ids))[1]  # type: ignore[method-assign]
    try:
        label = memory.stranger_label(_unit(5), looks=3)
        memory.record(_sighting(label, _unit(5)))
        other = make_store()
        for k in range(20):
            other.record(_sighting(other.mint_stranger(), _unit(100 + k)), template=True)
        assert wait_until(lambda: len(memory.bank) == 21, 5, step=0.05)
        head, _ = other.changes(None)
        other.name(label, "alice")
        other.ignore("alice")
        _, changed = other.changes(head)
        assert changed is not None and len(changed) == 1  # alice only
        assert wait_until(lambda: memory.renamed.get(label) == "alice" and "alice" in memory.ignored, 5, step=0.05)
        gallery = memory.gallery()
        assert gallery is not None and gallery.names == ["alice"] and len(memory.bank) == 20
        events: list[dict[str, object]] = [{"type": "identity", "identity": "alice"}, {"identity": "unknown-9"}]
        memory.mark(events)
        assert events[0].get("ignored") is True and "ignored" not in events[1]
        other.forget("alice")
        assert wait_until(lambda: memory.gallery() is None and not memory.ignored and not memory.renamed, 5,
                          step=0.05)
        assert read and all(ids is not None and len(ids) <= 20 for ids in read)  # never everyone again
    finally:
        memory.close()


def test_a_worker_behind_a_trimmed_journal_reads_everyone_again(make_store: Callable[[], Store]) -> None:
    store = make_store()
    memory = IdentityMemory(store, StoreConfig(), THRESHOLDS, RECOGNIZER)
    try:
        label = memory.stranger_label(_unit(21), looks=3)
        head, _ = store.changes(None)
        other = make_store()
        other.name(label, "alice")
        with other._write() as conn:  # type: ignore[attr-defined]  # the journal's rows, two days old
            other._x(conn, "UPDATE changes SET at = ?", (time.time() - 2 * 86400,))  # type: ignore[attr-defined]
        other.purge(time.time() - 30 * 86400)  # trims the journal to a day
        assert other.changes(head)[1] is None  # too far behind: everyone
        memory.reload()  # what the worker does then (its next refresh finds the same)
        assert memory.gallery() is not None and memory.gallery().names == ["alice"]  # type: ignore[union-attr]
        newest, _ = other.changes(None)
        other.ignore("alice")
        changed = other.changes(newest)[1]  # from there on, person by person again
        assert changed is not None and len(changed) == 1
    finally:
        memory.close()


# --- several workers, one truth ----------------------------------------------------------------------------------


def _memory(url: str) -> IdentityMemory:
    return IdentityMemory(open_store(url), StoreConfig(), THRESHOLDS, RECOGNIZER)


def test_workers_deciding_at_the_same_moment_mint_one_id(server: PostgresServer) -> None:
    url = server.create_database("race")
    workers = [_memory(url) for _ in range(6)]
    seen = _unit(7)
    views = [seen + 0.05 * _unit(100 + k) for k in range(len(workers))]  # each camera's look at one new face
    views = [v / np.linalg.norm(v) for v in views]
    start = threading.Barrier(len(workers))
    labels: list[str] = [""] * len(workers)

    def decide(k: int) -> None:
        start.wait(timeout=10)
        labels[k] = workers[k].stranger_label(views[k], looks=3)

    threads = [threading.Thread(target=decide, args=(k,)) for k in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    try:
        assert len(set(labels)) == 1 and labels[0].startswith("unknown-"), labels
        assert sum(w.minted for w in workers) == 1 and sum(w.matched for w in workers) == 5
        assert [p.label for p in workers[0].store.people()] == [labels[0]]
    finally:
        for worker in workers:
            worker.close()


def test_the_stranger_decision_with_or_without_pgvector(server: PostgresServer) -> None:
    """With the `vector` extension on the server the decision is searched in the database (HNSW), without it in
    memory; either way one person keeps one ID and a new one is minted. (Debian 12 ships no pgvector for
    PostgreSQL 15: here the server runs without it.)"""
    url = server.create_database("vectors")
    store = open_store(url)
    with store._tx() as conn:  # type: ignore[attr-defined]
        offered = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None
    worker, other = IdentityMemory(store, StoreConfig(), THRESHOLDS, RECOGNIZER), _memory(url)
    try:
        assert store.vector_dim == (128 if offered else None)  # type: ignore[attr-defined]
        first = worker.stranger_label(_unit(11), looks=3)
        again = _unit(11) + 0.1 * _unit(12)
        assert other.stranger_label(again / np.linalg.norm(again), looks=3) == first  # the other worker agrees
        assert worker.stranger_label(_unit(13), looks=3) not in (first, "")  # someone new
        assert worker.minted == 2 and other.matched == 1
    finally:
        worker.close()
        other.close()


def test_one_name_on_two_workers_cameras_is_a_possible_duplicate(server: PostgresServer) -> None:
    url = server.create_database("duplicates")
    entrance, back = _memory(url), _memory(url)
    try:
        assert entrance.arrived("alice", "door") == []
        # The other worker hears of it through the database (NOTIFY), not through a file or a shared process.
        assert wait_until(lambda: back.arrived("alice", "yard") == ["door"], 5, step=0.05)
        assert entrance.arrived("bob", "lobby") == []  # another name: nothing
        back.left("alice", "yard")
        entrance.left("alice", "door")
        assert back.arrived("alice", "dock") == ["door", "yard"]  # both left less than the window ago
    finally:
        entrance.close()
        back.close()


def test_locations_never_show_the_password(server: PostgresServer) -> None:
    url = server.create_database("secret")
    with_password = server.url("secret", password=True)
    assert server.password in with_password
    store = open_store(with_password)
    assert store.location == url and server.password not in store.location
    store.close()
    result = run_cli("people", "--store", with_password, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"store": url, "people": []}
    assert server.password not in result.stdout + result.stderr
    with pytest.raises(FacetrackError, match="does not exist.*createdb"):  # the CLI prints it on one error: line
        open_store(url.replace("/secret", "/missing"), create=False)
    with pytest.raises(FacetrackError, match="password") as refused:  # what the command line prints, in one line
        open_store(server.url("secret").replace(server.user, server.user + ":wrong-pw"))
    assert "wrong-pw" not in str(refused.value) and "\n" not in str(refused.value)


# --- real workers on real footage ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(server: PostgresServer, asl: Path, models: list[str]) -> str:
    """Two `annotate` runs at the same time into one new database: the same person (the Misfits shirt)."""
    url = server.create_database("shared")
    env = {**os.environ, "COLUMNS": "200"}
    runs = [subprocess.Popen([sys.executable, "-m", "facetrack", "annotate", str(asl / clip), "--store", url,
                              *models], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for clip in ("again.mkv", "brother.mkv")]
    try:
        for run in runs:
            out, err = run.communicate(timeout=180)
            assert run.returncode == 0, err
            assert url in out + err and server.password not in out + err
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    return url


def people(url: str) -> dict[str, dict]:
    result = run_cli("people", "--store", url, "--json")
    assert result.returncode == 0, result.stderr
    return {p["identity"]: p for p in json.loads(result.stdout)["people"]}


def test_two_runs_at_once_give_the_same_person_one_id(shared: str) -> None:
    everyone = people(shared)
    assert len(everyone) == 1, everyone
    (person,) = everyone.values()
    assert person["sightings"] == 2 and not person["named"] and person["templates"] >= 1


def test_the_review_page_on_a_postgresql_store(shared: str, server: PostgresServer) -> None:
    """`serve --store postgresql://…`: the same page and API as on a file, the location shown without password."""
    pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")
    import warnings

    with warnings.catch_warnings():  # newer Starlette would rather have httpx2 under its test client
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from facetrack.web.app import create_app

    with TestClient(create_app(server.url("shared", password=True)), base_url="http://127.0.0.1:8080") as client:
        session = client.get("/api/session").json()
        assert session["store"] == shared and server.password not in json.dumps(session)
        (person,) = client.get("/api/people").json()["people"]
        (stranger,) = client.get("/api/strangers").json()["strangers"]
        label = person["identity"]
        assert stranger["identity"] == label and person["sightings"] == 2 and len(stranger["crops"]) == 2
        assert client.get(person["crop"]).content[:3] == b"\xff\xd8\xff"  # the crop, from the database
        sightings = client.get("/api/sightings", params={"identity": label}).json()["sightings"]
        assert len(sightings) == 2 and {s["camera"] for s in sightings} == {"cam0"}
        page = client.get(f"/people/{label}", headers={"accept": "text/html"})
        assert page.status_code == 200 and 'data-action="remove-template"' in page.text
        csrf = {"X-CSRF-Token": session["csrf"]}
        assert client.post(f"/api/people/{label}/ignore", json={}, headers=csrf).json()["ignored"] is True
        assert people(shared)[label]["ignored"] is True  # what the CLI reads back
        client.post(f"/api/people/{label}/ignore", json={"ignored": False}, headers=csrf)
        assert people(shared)[label]["ignored"] is False


def _feed(clips: list[Path | None], target: Path) -> Path:
    """One "camera" showing the clips one after the other (re-encoded, 30 fps); None: a few black frames (a cut
    that ends the tracks: the ASL clips share one background)."""
    with av.open(str(target), "w") as dst:
        out = dst.add_stream("libx264", rate=30, options={"preset": "ultrafast", "crf": "23"})
        out.pix_fmt = "yuv420p"
        out.width, out.height = 640, 480  # the ASL clips' size
        for clip in clips:
            if clip is None:
                for _ in range(4):
                    for packet in out.encode(av.VideoFrame.from_ndarray(np.zeros((480, 640, 3), np.uint8))):
                        dst.mux(packet)
                continue
            with av.open(str(clip)) as src:
                for frame in src.decode(video=0):
                    image = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                    for packet in out.encode(image):
                        dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    return target


@pytest.fixture(scope="module")
def live(shared: str, server: PostgresServer, asl: Path, models: list[str],
         tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A `watch` on a door camera: the Misfits person (known to the store as a stranger) is named while the
    worker runs; then the database is stopped for a few seconds while people keep coming (two new ones)."""
    out = tmp_path_factory.mktemp("live")
    feed = _feed([asl / "help.mkv", asl / "help.mkv", None, asl / "eat.mkv", None, asl / "milk.mkv"],
                 out / "door.mp4")
    events = out / "door.jsonl"
    store = open_store(shared)
    (stranger,) = [p.label for p in store.people()]
    process = subprocess.Popen([sys.executable, "-m", "facetrack", "watch", f"door={feed}", "--store", shared,
                                "--events", str(events), *models], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "COLUMNS": "200"})
    seen = {"stranger": stranger}

    def written(kind: str) -> list[dict]:
        if not events.exists():
            return []
        lines = events.read_text().splitlines()
        return [e for e in map(json.loads, lines[:-1]) if e["type"] == kind]  # the last line may be partial

    try:
        assert wait_until(lambda: any(e["identity"] == stranger for e in written("identity")), 60), "no decision"
        store.name(stranger, "alice")
        seen["named_at"] = time.monotonic()
        store.close()
        assert wait_until(lambda: any(e["identity"] == "alice" for e in written("identity")), 10, step=0.05)
        seen["latency"] = time.monotonic() - seen["named_at"]
        server.stop()
        # Down until a track ended meanwhile (its sighting has to wait), and a next one was decided.
        ended = len(written("track_end"))
        assert wait_until(lambda: len(written("track_end")) > ended and written("identity")[-1]["frame"] >
                          written("track_end")[-1]["frame"], 60, step=0.05), "no track ended during the outage"
        server.start()
        _, err = process.communicate(timeout=120)
        seen.update(returncode=process.returncode, stderr=err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if not (server.data / "postmaster.pid").exists():
            server.start()
    all_events = [json.loads(line) for line in events.read_text().splitlines()]
    seen["events"] = all_events
    return seen


def test_a_naming_reaches_the_running_worker_within_a_second(live: dict) -> None:
    assert live["returncode"] == 0, live["stderr"]
    changes = [e for e in live["events"] if e["type"] == "identity" and e["previous"] == live["stranger"]]
    assert changes and changes[0]["identity"] == "alice" and changes[0]["state"] == "known"
    assert live["latency"] < 3.0  # the notification, the reload and the event file (on a loaded 2-core machine)


def test_a_database_stopped_mid_run_loses_no_sighting(live: dict, shared: str) -> None:
    assert live["returncode"] == 0, live["stderr"]
    back = re.search(r"is back: (\d+) queued sightings written", " ".join(live["stderr"].split()))
    assert "unreachable" in live["stderr"] and back, live["stderr"]
    assert int(back.group(1)) >= 1  # tracks ended while the database was away
    # Every track that had an identity is one sighting of the door camera, written now.
    decided: dict[int, str] = {}
    for event in live["events"]:
        if event["type"] == "identity" and event["identity"] is not None:
            decided[event["track_id"]] = event["identity"]
    store = open_store(shared)
    try:
        everyone = {p.label: p for p in store.people()}
        on_door = [s.identity for label in everyone for s in store.sightings(label, camera="door")]
    finally:
        store.close()
    assert len(on_door) == len(decided) >= 3, (on_door, decided)
    assert "alice" in on_door and everyone["alice"].sightings >= 3  # two annotate runs, then the door
    assert [p for p in everyone.values() if not p.named]  # a new person of the outage, minted from the reserve


def test_a_newer_schema_is_refused(server: PostgresServer) -> None:
    import psycopg

    url = server.create_database("future")
    open_store(url).close()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(FacetrackError, match="made by a newer facetrack .* upgrade facetrack"):
        open_store(url)
