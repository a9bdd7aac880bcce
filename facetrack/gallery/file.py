"""A gallery .db file: people, templates (embedding, source photo, quality) and the fingerprint of the recognizer
that made them; built, added to, removed from, listed and loaded."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np

from facetrack.embed import FaceEmbedder
from facetrack.errors import FacetrackError
from facetrack.gallery.enrol import Template, check_person_name
from facetrack.gallery.match import Gallery, check_fingerprint

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    source TEXT NOT NULL,
    quality REAL NOT NULL
);
"""


def _create_private(path: Path) -> None:
    """Create an empty file only its owner can read or write (embeddings are biometric data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_gallery_output(path: Path) -> None:
    """A gallery file can be written at `path` (a folder there, or no folder to put it in, is a one-line error)."""
    if path.is_dir():
        raise FacetrackError(f"{path} is a folder: give the gallery a file name, e.g. {path / 'people.db'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise FacetrackError(f"cannot write {path}: {path.parent} is a file, not a folder")


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(path, isolation_level=None, timeout=30)) as conn:  # waits for another writer
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left holding old embeddings
        yield conn


class GalleryStore:
    """A gallery .db file: build, add, remove, list, load."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # Writes go to a private temporary file renamed over the target: a crash never leaves half a gallery.
    def build(self, templates: dict[str, list[Template]], embedder: FaceEmbedder, extra_meta: dict[str, str]
              | None = None) -> None:
        if not any(templates.values()):
            raise FacetrackError("the gallery would be empty: no usable photo (see the messages above)")
        check_gallery_output(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        _create_private(tmp)
        try:
            with _connect(tmp) as conn:
                conn.executescript(SCHEMA)
                conn.execute("BEGIN")
                meta = {"model_fingerprint": embedder.fingerprint, "model_name": embedder.name,
                        "dim": str(embedder.dim), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        **(extra_meta or {})}
                conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                for name, person_templates in templates.items():
                    if person_templates:
                        self._insert(conn, name, person_templates)
                conn.execute("COMMIT")
            _fsync(tmp)  # on disk before the rename makes it the gallery: a power cut leaves the old or the new
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _insert(conn: sqlite3.Connection, name: str, templates: Iterable[Template]) -> None:
        conn.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
        person_id = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
        conn.executemany(
            "INSERT INTO templates (person_id, embedding, source, quality) VALUES (?, ?, ?, ?)",
            [(person_id, t.embedding.astype(np.float32).tobytes(), t.source, t.quality) for t in templates],
        )

    def _open_existing(self) -> None:
        if not self.path.is_file():
            raise FacetrackError(f"gallery not found: {self.path} (build one with `facetrack gallery build DIR -o "
                                 f"{self.path}`)")

    def meta(self) -> dict[str, str]:
        self._open_existing()
        fix = f"(build one with `facetrack gallery build PHOTOS_DIR -o {self.path}`, or pass the right file)"
        try:
            with _connect(self.path) as conn:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if not {"meta", "people", "templates"} <= tables:
                    raise FacetrackError(f"{self.path} is an SQLite database of another program, not a facetrack "
                                         f"gallery {fix}")
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            raise FacetrackError(f"{self.path} is not a facetrack gallery (not an SQLite database, or damaged) "
                                 f"{fix}") from None
        if not meta.get("model_fingerprint") or not str(meta.get("dim", "")).isdigit():
            raise FacetrackError(f"gallery {self.path} is damaged: it does not say which recognizer made it "
                                 f"(rebuild it with `facetrack gallery build PHOTOS_DIR -o {self.path}`)")
        return meta

    def add(self, name: str, templates: list[Template], embedder: FaceEmbedder) -> None:
        """Add templates in one transaction on the file itself: all or none, and two adds at once both land."""
        check_person_name(name)
        created = False
        if not self.path.exists():
            check_gallery_output(self.path)
            try:
                _create_private(self.path)
                created = True
            except FileExistsError:
                pass  # another add made it meanwhile: its schema is written under the lock below
        if self.path.stat().st_size:
            self.meta()  # a file that is not a gallery fails here, before any write
        try:
            with _connect(self.path) as conn:
                conn.execute("BEGIN IMMEDIATE")  # one writer at a time; the others wait (timeout above)
                for statement in filter(str.strip, SCHEMA.split(";")):
                    conn.execute(statement)
                conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", {
                    "model_fingerprint": embedder.fingerprint, "model_name": embedder.name, "dim": str(embedder.dim),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}.items())
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if meta.get("model_fingerprint") != embedder.fingerprint:
                    conn.execute("ROLLBACK")
                    check_fingerprint(meta.get("model_fingerprint", ""), meta.get("model_name", "?"), embedder,
                                      self.path)
                self._insert(conn, name, templates)
                conn.execute("COMMIT")
        except BaseException:
            if created:
                self._unlink_if_empty()  # nothing of it was kept: no empty gallery is left behind
            raise

    def _unlink_if_empty(self) -> None:
        try:
            with _connect(self.path) as conn:
                empty = conn.execute("SELECT COUNT(*) FROM people").fetchone()[0] == 0
        except sqlite3.DatabaseError:
            empty = True  # not even the schema was written
        if empty:
            self.path.unlink(missing_ok=True)

    def remove(self, name: str) -> int:
        """Delete a person and their templates; returns how many templates went."""
        self.meta()  # a file that is not a gallery fails here
        with _connect(self.path) as conn:
            row = conn.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if row is None:
                known = ", ".join(self.people()) or "nobody"
                raise FacetrackError(f"{name!r} is not in {self.path} (it holds: {known})")
            conn.execute("BEGIN IMMEDIATE")
            count = conn.execute("DELETE FROM templates WHERE person_id = ?", (row[0],)).rowcount
            conn.execute("DELETE FROM people WHERE id = ?", (row[0],))
            conn.execute("COMMIT")
            conn.execute("VACUUM")  # rebuild the file: no free page keeps the removed person's data
        return count

    def people(self) -> dict[str, int]:
        """{name: number of templates}."""
        self.meta()
        with _connect(self.path) as conn:
            rows = conn.execute(
                "SELECT p.name, COUNT(t.id) FROM people p LEFT JOIN templates t ON t.person_id = p.id "
                "GROUP BY p.id ORDER BY p.name").fetchall()
        return dict(rows)

    def load(self) -> Gallery:
        meta = self.meta()
        with _connect(self.path) as conn:
            rows = conn.execute(
                "SELECT p.name, t.embedding FROM templates t JOIN people p ON p.id = t.person_id "
                "ORDER BY p.name, t.id").fetchall()
        if not rows:
            raise FacetrackError(f"gallery {self.path} is empty: add people with `facetrack gallery add "
                                 f"{self.path} NAME PHOTO...`")
        dim = int(meta.get("dim", "0"))
        names = sorted({name for name, _ in rows})
        index = {name: i for i, name in enumerate(names)}
        short = [name for name, blob in rows if not isinstance(blob, bytes) or len(blob) != 4 * dim]
        if short:
            raise FacetrackError(f"gallery {self.path} is damaged: {len(short)} embedding(s) of {short[0]} are not "
                                 f"{dim} numbers (remove the person with `facetrack gallery remove {self.path} "
                                 f"{short[0]}` and add them again, or rebuild the gallery)")
        templates = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
        owners = np.array([index[name] for name, _ in rows])
        return Gallery(names, owners, templates, meta["model_fingerprint"], meta.get("model_name", "?"), self.path)
