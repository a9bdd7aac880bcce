"""The gallery: built from the shared photos with the real models, stored privately, edited atomically, and
never compared with embeddings of another model."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from facetrack.gallery import GalleryStore
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def models(detector_path: Path, recognizer_path: Path) -> list[str]:
    return ["--detector", str(detector_path), "--recognizer", str(recognizer_path)]


@pytest.fixture(scope="module")
def gallery_db(tmp_path_factory: pytest.TempPathFactory, gallery_dir: Path, models: list[str]) -> Path:
    path = tmp_path_factory.mktemp("gallery") / "people.db"
    result = run_cli("gallery", "build", gallery_dir, "-o", path, *models)
    assert result.returncode == 0, result.stderr
    assert "6 people, 11 templates" in result.stdout
    return path


def test_gallery_file_is_private(gallery_db: Path) -> None:
    assert stat.S_IMODE(gallery_db.stat().st_mode) == 0o600


def test_list_shows_people_and_templates(gallery_db: Path) -> None:
    result = run_cli("gallery", "list", gallery_db)
    assert result.returncode == 0
    for person in ("alex_lacamoire", "biden", "kit_harington", "lin_manuel_miranda", "obama", "rose_leslie"):
        assert person in result.stdout


def test_each_gallery_photo_identifies_as_its_own_person(gallery_db: Path, gallery_dir: Path,
                                                         models: list[str]) -> None:
    photos = sorted(gallery_dir.glob("*/*"))
    result = run_cli("identify", *photos, "--gallery", gallery_db, "--json", *models)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["images"]
    for photo, entry in zip(photos, report, strict=True):
        best = max(entry["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
        assert best["identity"] == photo.parent.name, entry


def test_two_people_named_and_strangers_unknown(gallery_db: Path, images_dir: Path, models: list[str]) -> None:
    result = run_cli("identify", images_dir / "two_people.jpg", images_dir / "t1.jpg", "-g", gallery_db,
                     "--json", *models)
    two, group = json.loads(result.stdout)["images"]
    assert sorted(f["identity"] for f in two["faces"]) == ["biden", "obama"]
    assert len(group["faces"]) == 6 and all(f["identity"] == "unknown" for f in group["faces"])


def test_folder_gallery_is_built_once_and_cached(tmp_path: Path, gallery_dir: Path, images_dir: Path,
                                                 models: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "home"))
    photos = tmp_path / "photos"
    shutil.copytree(gallery_dir, photos)
    first = run_cli("identify", images_dir / "two_people.jpg", "-g", photos, "--json", *models)
    cached = list((tmp_path / "home" / "galleries").glob("*.db"))
    assert first.returncode == 0 and len(cached) == 1
    built_at = cached[0].stat().st_mtime_ns
    run_cli("identify", images_dir / "two_people.jpg", "-g", photos, "--json", *models)
    assert cached[0].stat().st_mtime_ns == built_at  # unchanged photos: not rebuilt
    shutil.rmtree(photos / "biden")
    third = run_cli("identify", images_dir / "two_people.jpg", "-g", photos, "--json", *models)
    names = sorted(f["identity"] for f in json.loads(third.stdout)["images"][0]["faces"])
    assert names == ["obama", "unknown"]  # a removed person is gone at once


def test_remove_really_deletes(tmp_path: Path, gallery_db: Path) -> None:
    copy = tmp_path / "g.db"
    shutil.copy(gallery_db, copy)
    with sqlite3.connect(copy) as conn:
        blobs = [row[0] for row in conn.execute(
            "SELECT t.embedding FROM templates t JOIN people p ON p.id = t.person_id WHERE p.name = 'obama'")]
    assert len(blobs) == 2
    result = run_cli("gallery", "remove", copy, "obama")
    assert result.returncode == 0 and "2 templates" in result.stdout
    raw = copy.read_bytes()
    assert all(blob not in raw for blob in blobs)  # not in a row, not in a free page
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM people WHERE name = 'obama'").fetchone()[0] == 0
    assert "obama" not in GalleryStore(copy).people()


def test_add_is_all_or_nothing(tmp_path: Path, gallery_db: Path, gallery_dir: Path, images_dir: Path,
                               models: list[str]) -> None:
    copy = tmp_path / "g.db"
    shutil.copy(gallery_db, copy)
    before = copy.read_bytes()
    good = gallery_dir / "obama" / "obama.jpg"
    result = run_cli("gallery", "add", copy, "someone", good, images_dir / "t1.jpg", *models)
    assert result.returncode == 2 and "t1.jpg" in result.stderr and "clearly the subject" in result.stderr
    assert copy.read_bytes() == before
    ok = run_cli("gallery", "add", copy, "tom_hanks", images_dir / "Tom_Hanks_54745.png", *models)
    assert ok.returncode == 0, ok.stderr  # a tight face crop is found inside a border
    assert GalleryStore(copy).people()["tom_hanks"] == 1


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xd8\xff garbage, not really a jpeg", "not a readable image"),
    (None, "no face found"),
])
def test_unusable_photos_are_refused_by_name(tmp_path: Path, gallery_db: Path, models: list[str],
                                             content: bytes | None, message: str) -> None:
    photo = tmp_path / "photo.jpg"
    if content is None:
        import cv2

        cv2.imwrite(str(photo), np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1)))
    else:
        photo.write_bytes(content)
    result = run_cli("gallery", "add", tmp_path / "new.db", "x", photo, *models)
    assert result.returncode == 2 and message in result.stderr and "photo.jpg" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "new.db").exists()


def test_gallery_of_another_model_is_refused(gallery_db: Path, images_dir: Path, detector_path: Path,
                                             assets: Path) -> None:
    other = assets / "models" / "mobilefacenet_128_dynbatch.onnx"
    result = run_cli("identify", images_dir / "two_people.jpg", "-g", gallery_db, "--detector", detector_path,
                     "--recognizer", other)
    assert result.returncode == 2
    assert "built with recognizer mobilefacenet_128" in result.stderr and "rebuild" in result.stderr


def test_empty_gallery_is_an_error(tmp_path: Path, gallery_db: Path, images_dir: Path, models: list[str]) -> None:
    copy = tmp_path / "g.db"
    shutil.copy(gallery_db, copy)
    for person in GalleryStore(copy).people():
        GalleryStore(copy).remove(person)
    result = run_cli("identify", images_dir / "two_people.jpg", "-g", copy, *models)
    assert result.returncode == 2 and "is empty" in result.stderr


def test_folder_without_photos_is_an_error(tmp_path: Path, models: list[str]) -> None:
    (tmp_path / "people" / "nobody").mkdir(parents=True)
    result = run_cli("gallery", "build", tmp_path / "people", "-o", tmp_path / "g.db", *models)
    assert result.returncode == 2 and "has no photos" in result.stderr


def test_missing_or_corrupt_gallery_file(tmp_path: Path, images_dir: Path, models: list[str]) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    result = run_cli("identify", images_dir / "two_people.jpg", "-g", bad, *models)
    assert result.returncode == 2 and "not a facetrack gallery" in result.stderr
    missing = run_cli("identify", images_dir / "two_people.jpg", "-g", tmp_path / "nope.db", *models)
    assert missing.returncode == 2 and "gallery not found" in missing.stderr
