"""Gallery files that are not what they should be, and writers that meet each other: one-line errors that name
the fix, nothing lost, nothing of a removed person left in the caches."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from facetrack.gallery import Enroller, GalleryStore, Template, open_gallery
from tests.conftest import run_cli_here


@pytest.fixture(scope="module")
def enroller(fast_detector_path: Path, recognizer_path: Path) -> Enroller:
    from facetrack.config import load_config
    from facetrack.detect import FaceDetector
    from facetrack.embed import FaceEmbedder

    cfg = load_config(None)
    return Enroller(FaceDetector(fast_detector_path, cfg.detector, cfg.runtime),
                    FaceEmbedder(recognizer_path, cfg.runtime))


@pytest.fixture(scope="module")
def templates(enroller: Enroller, gallery_dir: Path) -> dict[str, list[Template]]:
    people = sorted(p for p in gallery_dir.iterdir() if p.is_dir())[:2]
    return {person.name: [enroller.template(sorted(person.iterdir())[0])] for person in people}


@pytest.fixture()
def built(tmp_path: Path, enroller: Enroller, templates: dict[str, list[Template]]) -> Path:
    path = tmp_path / "people.db"
    GalleryStore(path).build(templates, enroller.embedder)
    return path


def _one_error(result, *expected: str) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(text in lines[0] for text in expected), lines[0]
    return lines[0]


def test_random_bytes_are_not_a_gallery(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(bytes(range(256)) * 64)
    _one_error(run_cli_here("gallery", "list", bad), "not a facetrack gallery", "gallery build")
    _one_error(run_cli_here("gallery", "remove", bad, "ada"), "not a facetrack gallery")


def test_another_programs_sqlite_file_is_not_a_gallery(tmp_path: Path) -> None:
    foreign = tmp_path / "music.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
    for args in (("list", foreign), ("remove", foreign, "ada")):
        _one_error(run_cli_here("gallery", *args), "SQLite database of another program", "gallery build")


def test_a_gallery_without_its_fingerprint_is_damaged(built: Path) -> None:
    with sqlite3.connect(built) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'model_fingerprint'")
    _one_error(run_cli_here("gallery", "list", built), "is damaged", "which recognizer", "gallery build")


def test_a_cut_embedding_is_damage_named_with_its_fix(built: Path, images_dir: Path, fast_detector_path: Path,
                                                      recognizer_path: Path) -> None:
    with sqlite3.connect(built) as conn:
        conn.execute("UPDATE templates SET embedding = substr(embedding, 1, 100) WHERE id = 1")
    line = _one_error(run_cli_here("identify", images_dir / "two_people.jpg", "-g", built,
                                   "--detector", fast_detector_path, "--recognizer", recognizer_path),
                      "is damaged", "are not 128 numbers", "gallery remove")
    assert str(built) in line


def test_a_broken_link_among_the_photos(tmp_path: Path, gallery_dir: Path) -> None:
    person = tmp_path / "photos" / "ada"
    person.mkdir(parents=True)
    shutil.copy(next((gallery_dir / "obama").iterdir()), person / "one.jpg")
    (person / "two.jpg").symlink_to(tmp_path / "gone.jpg")
    _one_error(run_cli_here("gallery", "build", tmp_path / "photos", "-o", tmp_path / "g.db"),
               "two.jpg is a broken link", "restore the photo or delete the link")


def test_build_onto_a_folder(tmp_path: Path, gallery_dir: Path) -> None:
    (tmp_path / "out").mkdir()
    _one_error(run_cli_here("gallery", "build", gallery_dir, "-o", tmp_path / "out"),
               "is a folder", "give the gallery a file name")


@pytest.mark.parametrize("name", ["", "  ", "../x", "a/b", "."])
def test_a_name_that_is_empty_or_a_path(tmp_path: Path, images_dir: Path, name: str) -> None:
    _one_error(run_cli_here("gallery", "add", tmp_path / "g.db", name, images_dir / "two_people.jpg"),
               "the person's name")
    assert not (tmp_path / "g.db").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("exists", [False, True])
def test_adds_at_the_same_time_all_land(tmp_path: Path, enroller: Enroller, templates: dict[str, list[Template]],
                                        exists: bool) -> None:
    path = tmp_path / "people.db"
    if exists:
        GalleryStore(path).build(templates, enroller.embedder)
    template = next(iter(templates.values()))
    names = [f"person_{i}" for i in range(8)]
    start = threading.Barrier(len(names))
    failures: list[BaseException] = []

    def add(name: str) -> None:
        start.wait()
        try:
            GalleryStore(path).add(name, template, enroller.embedder)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    people = GalleryStore(path).people()
    assert set(names) <= set(people) and all(people[n] == 1 for n in names), people


def _names_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM people")}


def test_a_removed_person_leaves_no_cache_behind(tmp_path: Path, enroller: Enroller, gallery_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "team"
    for person in ("obama", "biden"):
        (photos / person).mkdir(parents=True)
        shutil.copy(sorted((gallery_dir / person).iterdir())[0], photos / person)
    cache = tmp_path / "home" / "galleries"
    assert set(open_gallery(photos, enroller, cache).names) == {"obama", "biden"}
    [first] = list(cache.glob("*.db"))
    other_model = cache / "team-0123456789abcdef.db"  # what another recognizer's run cached of the same folder
    shutil.copy(first, other_model)
    shutil.rmtree(photos / "biden")
    assert open_gallery(photos, enroller, cache).names == ["obama"]
    left = list(cache.glob("*.db"))
    assert left and all("biden" not in _names_in(p) for p in left), left
    assert not other_model.exists()
    assert b"biden" not in b"".join(p.read_bytes() for p in cache.iterdir())

    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "home"))
    result = run_cli_here("gallery", "clear-cache")
    assert result.returncode == 0 and "removed 1 cached galleries" in result.stdout, result.stderr
    assert not list(cache.iterdir())
