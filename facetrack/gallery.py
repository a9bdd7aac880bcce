"""The gallery of enrolled people, in one SQLite file: people, templates (embedding, source photo, quality) and
the fingerprint of the recognizer that made them.

Embeddings are biometric data: the file is created readable by its owner only, deletions overwrite the freed
pages (`secure_delete`) and `remove` ends with `VACUUM`, so nothing of a removed person stays in the file.
A gallery is only compared with embeddings of the model that built it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from facetrack.detect import FaceDetector, read_photo
from facetrack.embed import FaceEmbedder, face_quality
from facetrack.errors import FacetrackError
from facetrack.private import private_dir
from facetrack.types import LANDMARKS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
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
# The subject must be clearly the largest face: at least this many times the area of the next one.
SUBJECT_DOMINANCE = 2.0


@dataclass(frozen=True)
class Match:
    """The best gallery person for one embedding."""

    name: str | None  # best person, or None when the gallery is empty
    similarity: float
    runner_up: str | None
    runner_up_similarity: float

    @property
    def margin(self) -> float:
        return self.similarity - self.runner_up_similarity


class Gallery:
    """Enrolled people, held in memory for matching (per person: one row per template).

    `floors` optionally holds, per person, a similarity below which a best match on them counts as no match:
    people named from video (the store's) are held to the stricter bank threshold, photo-enrolled ones are not.
    """

    def __init__(self, names: list[str], person_of_template: np.ndarray, templates: np.ndarray,
                 fingerprint: str, model_name: str, path: Path | None = None,
                 floors: np.ndarray | None = None) -> None:
        self.names = names
        self._owner = person_of_template  # template row → index into names
        self._templates = templates  # T×D unit vectors
        self.fingerprint = fingerprint
        self.model_name = model_name
        self.path = path
        self.floors = floors

    def joined(self, other: Gallery) -> Gallery:
        """Both galleries' people in one (a name in both keeps every template, and the lower floor)."""
        names = sorted(set(self.names) | set(other.names))
        index = {name: i for i, name in enumerate(names)}
        floors = np.full(len(names), -1.0, dtype=np.float32)
        mine = self.floors if self.floors is not None else np.full(len(self.names), -1.0)
        theirs = other.floors if other.floors is not None else np.full(len(other.names), -1.0)
        seen: set[str] = set()
        for gallery, own in ((self, mine), (other, theirs)):
            for name, floor in zip(gallery.names, own, strict=True):
                floors[index[name]] = floor if name not in seen else min(floors[index[name]], floor)
                seen.add(name)
        owners = np.concatenate([[index[self.names[i]] for i in self._owner],
                                 [index[other.names[i]] for i in other._owner]]).astype(int)
        templates = np.concatenate([self._templates, other._templates]).astype(np.float32)
        return Gallery(names, owners, templates, self.fingerprint, self.model_name, self.path,
                       floors if (floors > -1.0).any() else None)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self._templates.shape[1]) if self._templates.size else 0

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """N×P: per embedding and person, the best similarity over that person's templates."""
        per_template = np.atleast_2d(embeddings) @ self._templates.T
        best = np.full((per_template.shape[0], len(self.names)), -1.0, dtype=np.float32)
        np.maximum.at(best.T, self._owner, per_template.T)  # max over each person's templates, no Python loop
        return best

    def match(self, embedding: np.ndarray) -> Match:
        sims = self.similarities(embedding)[0]
        if len(sims) == 0:
            return Match(None, -1.0, None, -1.0)
        order = np.argsort(-sims)
        first = int(order[0])
        second = int(order[1]) if len(order) > 1 else None
        if self.floors is not None and sims[first] < self.floors[first]:
            return Match(None, float(sims[first]), None, -1.0)  # closest to someone held to a higher bar
        return Match(self.names[first], float(sims[first]),
                     self.names[second] if second is not None else None,
                     float(sims[second]) if second is not None else -1.0)

    def top(self, embedding: np.ndarray, k: int = 2) -> list[tuple[str, float]]:
        """The `k` people most similar to `embedding`, best first, with their similarities (as they are: no
        threshold, no floor): what a decision was made from."""
        sims = self.similarities(embedding)[0]
        return [(self.names[int(i)], float(sims[i])) for i in np.argsort(-sims)[:k]]

    def identify(self, embeddings: np.ndarray, threshold: float, margin: float) -> list[tuple[str | None, float]]:
        """Name (or None) and similarity per embedding of one image; a name goes to one face at most.

        A face is a candidate for its best person when the similarity clears `threshold` by `margin` over the
        next person; when two faces want the same person, the assignment with the most similarity wins.
        """
        sims = self.similarities(embeddings)
        names: list[tuple[str | None, float]] = [(None, float(row.max(initial=-1.0))) for row in sims]
        if len(sims) == 0 or len(self.names) == 0:
            return names
        ordered = np.sort(sims, axis=1)
        second = ordered[:, -2] if sims.shape[1] > 1 else np.full(len(sims), -1.0)
        eligible = (sims >= threshold) & (sims - second[:, None] >= margin)
        faces, people = linear_sum_assignment(np.where(eligible, sims, -10.0), maximize=True)
        for face, person in zip(faces, people, strict=True):
            if eligible[face, person]:
                names[face] = (self.names[person], float(sims[face, person]))
        return names

    def check_model(self, embedder: FaceEmbedder) -> None:
        check_fingerprint(self.fingerprint, self.model_name, embedder, self.path)


def check_fingerprint(fingerprint: str, model_name: str, embedder: FaceEmbedder, where: Path | None) -> None:
    """Embeddings of two models are not comparable: a mismatch is an error, never a silent comparison."""
    if fingerprint != embedder.fingerprint:
        where = where or Path("the gallery")
        raise FacetrackError(
            f"{where} was built with recognizer {model_name} ({fingerprint[:12]}), not with "
            f"{embedder.name} ({embedder.fingerprint[:12]}): rebuild it with "
            f"`facetrack gallery build PHOTOS_DIR -o {where} --recognizer {embedder.model_path}`"
        )


# --- enrolment: photos → templates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    embedding: np.ndarray
    source: str
    quality: float


class Enroller:
    """Turns enrolment photos into templates, refusing photos whose subject is not clear."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder) -> None:
        self.detector = detector
        self.embedder = embedder

    def template(self, photo: Path) -> Template:
        read = read_photo(photo) if photo.is_file() else None
        if read is None:
            reason = "not found" if not photo.exists() else "not a readable image (corrupt or unsupported format)"
            raise FacetrackError(f"photo {photo}: {reason}")
        return self.template_of(read[0], str(photo))

    def template_of(self, image: np.ndarray, photo: str) -> Template:
        """The template of a decoded photo (BGR) named `photo` in messages."""
        faces = self.detector.detect_still(image)
        if len(faces) == 0:
            raise FacetrackError(f"photo {photo}: no face found (use a photo where the face is clearly visible)")
        areas = faces.area
        order = np.argsort(-areas)
        if len(faces) > 1 and areas[order[0]] < SUBJECT_DOMINANCE * areas[order[1]]:
            raise FacetrackError(
                f"photo {photo}: {len(faces)} faces and none is clearly the subject (crop it to one person)"
            )
        subject = faces[int(order[0]):int(order[0]) + 1]
        crops = self.embedder.align(image, subject.data[LANDMARKS])
        quality = face_quality(subject.xyxy, subject.data[LANDMARKS], crops)[0].score
        return Template(self.embedder.embed_crops(crops)[0], photo, quality)


def check_person_name(name: str) -> str:
    """A person's name is shown, stored and used as a folder name: not empty, no path in it."""
    if not name.strip():
        raise FacetrackError("the person's name is empty: give a name, e.g. `facetrack gallery add people.db "
                             "ada photo.jpg`")
    if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise FacetrackError(f"the person's name {name!r} holds a path separator or a control character: give a "
                             "plain name such as ada_lovelace")
    return name


def photos_by_person(folder: Path) -> dict[str, list[Path]]:
    """`folder/<person>/*.jpg` → {person: photos}; the person's name is the folder name."""
    if not folder.is_dir():
        raise FacetrackError(f"gallery folder not found: {folder} (expected one sub-folder of photos per person)")
    people = {
        sub.name: sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
    }
    for photos in people.values():
        for photo in photos:
            if not photo.exists():  # a symlink to nothing
                raise FacetrackError(f"photo {photo} is a broken link (to {os.readlink(photo)}): restore the "
                                     "photo or delete the link")
    people = {name: photos for name, photos in people.items() if photos}
    if not people:
        raise FacetrackError(f"gallery folder {folder} has no photos: expected {folder}/<person>/<photo>.jpg")
    return people


# --- storage ------------------------------------------------------------------------------------------------


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


# --- the gallery a command asks for -------------------------------------------------------------------------


def enroll_folder(folder: Path, enroller: Enroller) -> dict[str, list[Template]]:
    """Templates for every usable photo; a refused photo is reported and skipped."""
    templates: dict[str, list[Template]] = {}
    for name, photos in photos_by_person(folder).items():
        templates[name] = []
        for photo in photos:
            try:
                templates[name].append(enroller.template(photo))
            except FacetrackError as exc:
                log.warning("skipped %s", exc)
        if not templates[name]:
            log.warning("%s has no usable photo and is left out of the gallery", name)
    return templates


def _folder_digest(folder: Path) -> str:
    """Changes whenever a photo is added, removed or replaced: the cached build is then redone."""
    digest = hashlib.sha256()
    for name, photos in photos_by_person(folder).items():
        for photo in photos:
            stat = photo.stat()
            digest.update(f"{name}/{photo.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def open_gallery(spec: Path, enroller: Enroller, cache_dir: Path) -> Gallery:
    """`--gallery`: a .db file, or a photo folder built once per (folder contents, model) and cached."""
    if spec.is_file():
        gallery = GalleryStore(spec).load()
        gallery.check_model(enroller.embedder)
        return gallery
    if not spec.exists():
        raise FacetrackError(f"gallery not found: {spec} (pass a photo folder or a .db built by `facetrack "
                             "gallery build`)")
    contents = _folder_digest(spec)
    key = hashlib.sha256(f"{spec.resolve()}|{enroller.embedder.fingerprint}".encode()).hexdigest()[:16]
    cached = GalleryStore(cache_dir / f"{spec.name}-{key}.db")
    if cached.path.is_file() and _cache_meta(cached).get("folder_digest") == contents:
        return cached.load()
    log.info("building the gallery from %s (cached in %s)", spec, cached.path)
    private_dir(cache_dir)  # the cache holds face embeddings: its owner only
    templates = enroll_folder(spec, enroller)
    # The folder changed: every older cache of it (this model's, another model's) may hold someone removed
    # from it since. They are overwritten and deleted; the one in use is rebuilt now, the others when needed.
    for stale in cache_dir.glob(f"{spec.name}-*.db"):
        if _cache_meta(GalleryStore(stale)).get("folder", str(spec.resolve())) == str(spec.resolve()):
            shred(stale)
    cached.build(templates, enroller.embedder, {"folder_digest": contents, "folder": str(spec.resolve())})
    return cached.load()


def _cache_meta(store: GalleryStore) -> dict[str, str]:
    try:
        return store.meta()
    except FacetrackError:
        return {}  # a damaged cache is rebuilt


def shred(path: Path) -> None:
    """Overwrite a file with zeros, flush it to disk and delete it (on a journalling or copy-on-write file
    system, or an SSD, old blocks may survive elsewhere: full-disk encryption covers that)."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        log.warning("could not overwrite %s before deleting it: %s", path, exc.strerror)
    path.unlink(missing_ok=True)


def clear_cache(cache_dir: Path) -> list[Path]:
    """Overwrite and delete every cached folder gallery (they are rebuilt from their folders when next used)."""
    if not cache_dir.is_dir():
        return []
    removed = sorted(p for p in cache_dir.iterdir() if p.is_file() and (p.suffix == ".db" or p.name.endswith(".tmp")))
    for path in removed:
        shred(path)
    return removed
