"""The store in one embedded SQLite file: WAL (readers never wait for the writer, several processes may write),
created readable by its owner only, deletes that overwrite what they free (`secure_delete`) and end with a
`VACUUM`, so a forgotten person leaves no bytes behind.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.store import PersonSummary, Recognizer, Sighting, is_stranger
from facetrack.store.bank import template_slot
from facetrack.store.schema import migrate, schema_version

_NAME = re.compile(r"^[\w][\w .'-]{0,63}$")


def check_name(name: str) -> str:
    if is_stranger(name) or not _NAME.match(name) or name != name.strip():
        raise FacetrackError(f"{name!r} cannot be a person's name: use letters, digits, spaces, '.', \"'\", '_' or "
                             "'-' (up to 64), and not the unknown-N form strangers have")
    return name


class SqliteStore:
    """See `facetrack.store.Store`; safe to share between the threads of one process."""

    def __init__(self, path: Path, create: bool = True, max_templates: int = 5, diversity: float = 0.97,
                 busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = str(path)
        self.max_templates = max_templates
        self.diversity = diversity
        self._lock = threading.RLock()
        self._data_version: int | None = None
        if not self.path.exists():
            if not create:
                raise FacetrackError(f"no store at {self.path}: runs with `--store {self.path}` (or `watch`) "
                                     "write one")
            if not self.path.parent.is_dir():
                raise FacetrackError(f"cannot create the store {self.path}: folder {self.path.parent} does not exist")
            try:  # embeddings and face crops are biometric data: readable by the owner only, from the first byte
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass  # another process made it first
        elif not self.path.is_file():
            raise FacetrackError(f"the store {self.path} is not a file (pass a .db path to --store)")
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=busy_timeout)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and schema_version(self._conn) == 0:
                hint = " (it looks like a gallery: pass it to --gallery)" if "templates" in tables else ""
                raise FacetrackError(f"{self.path} is not a facetrack store{hint}")
            migrate(self._conn, self.location)
        except sqlite3.DatabaseError as exc:
            raise FacetrackError(f"{self.path} is not a facetrack store ({exc})") from None

    # --- plumbing ------------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the file's write lock at once (no deadlock between two writers)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _meta(self, conn: sqlite3.Connection) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def _resolve(self, conn: sqlite3.Connection, label: str) -> tuple[int, str, bool] | None:
        """(person id, current label, named) for a label or an alias of one."""
        row = conn.execute("SELECT id, label, named FROM people WHERE label = ?", (label,)).fetchone()
        if row is None:
            row = conn.execute("SELECT p.id, p.label, p.named FROM aliases a JOIN people p ON p.id = a.person_id "
                               "WHERE a.label = ?", (label,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bool(row[2]))

    def _person(self, conn: sqlite3.Connection, label: str) -> tuple[int, str, bool]:
        found = self._resolve(conn, label)
        if found is None:
            labels = [r[0] for r in conn.execute("SELECT label FROM people ORDER BY named DESC, id")]
            held = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "") if labels else "nobody yet"
            raise FacetrackError(f"nobody called {label!r} in {self.location} (it holds: {held}; see `facetrack "
                                 f"people --store {self.location}`)")
        return found

    def _erase_freed(self) -> None:
        """Rebuild the file and empty the write-ahead log: no freed page or old page image keeps deleted data."""
        with self._lock:
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- the recognizer -------------------------------------------------------------------------------------

    def recognizer(self) -> Recognizer | None:
        with self._lock:
            meta = self._meta(self._conn)
        if "model_fingerprint" not in meta:
            return None
        return Recognizer(meta["model_fingerprint"], meta.get("model_name", "?"), meta.get("model_path", "?"),
                          int(meta.get("dim", "0")))

    def bind_recognizer(self, recognizer: Recognizer) -> None:
        with self._write() as conn:
            meta = self._meta(conn)
            if "model_fingerprint" not in meta:
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("model_fingerprint", recognizer.fingerprint), ("model_name", recognizer.name),
                    ("model_path", recognizer.path), ("dim", str(recognizer.dim))])
                return
        if meta["model_fingerprint"] != recognizer.fingerprint:
            raise FacetrackError(
                f"{self.location} holds embeddings of recognizer {meta.get('model_name', '?')} "
                f"({meta['model_fingerprint'][:12]}), not of {recognizer.name} ({recognizer.fingerprint[:12]}): run "
                f"with `--recognizer {meta.get('model_path', '?')}`, or give this model its own store "
                f"(`--store {self.path.with_name(f'{self.path.stem}-{recognizer.name}{self.path.suffix}')}`)")

    def changed(self) -> bool:
        version = int(self._query("PRAGMA data_version")[0][0])
        changed, self._data_version = version != self._data_version, version
        return changed

    # --- the bank ---------------------------------------------------------------------------------------------

    def templates(self) -> list[tuple[str, bool, np.ndarray]]:
        rows = self._query("SELECT p.label, p.named, t.embedding FROM templates t JOIN people p ON p.id = t.person_id "
                           "ORDER BY p.id, t.id")
        return [(label, bool(named), np.frombuffer(blob, dtype=np.float32)) for label, named, blob in rows]

    def mint_stranger(self) -> str:
        with self._write() as conn:
            number = int(self._meta(conn).get("next_unknown", "1"))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_unknown', ?)", (str(number + 1),))
            label = f"unknown-{number}"
            conn.execute("INSERT INTO people (label, named, created) VALUES (?, 0, ?)", (label, time.time()))
        return label

    def discard_stranger(self, label: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM people WHERE label = ? AND named = 0 AND NOT EXISTS (SELECT 1 FROM sightings s "
                         "WHERE s.person_id = people.id) AND NOT EXISTS (SELECT 1 FROM templates t WHERE "
                         "t.person_id = people.id)", (label,))

    def record(self, sighting: Sighting, template: bool) -> str | None:
        with self._write() as conn:
            found = self._resolve(conn, sighting.identity)
            if found is None:
                if is_stranger(sighting.identity):
                    return None  # forgotten while this run still showed them: nothing of them is written back
                cursor = conn.execute("INSERT INTO people (label, named, created) VALUES (?, 1, ?)",
                                      (sighting.identity, time.time()))
                found = (int(cursor.lastrowid or 0), sighting.identity, True)
            person_id, label, named = found
            embedding = None if sighting.embedding is None else sighting.embedding.astype(np.float32).tobytes()
            cursor = conn.execute(
                "INSERT INTO sightings (person_id, camera, run_id, track_id, started, ended, pts_start, pts_end, "
                "looks, embedding, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (person_id, sighting.camera, sighting.run_id, sighting.track_id, sighting.started, sighting.ended,
                 sighting.pts_start, sighting.pts_end, sighting.looks, embedding, sighting.crop))
            sighting.id = cursor.lastrowid
            if template and not named and sighting.embedding is not None:
                self._add_template(conn, person_id, sighting.embedding, sighting.quality)
        return label

    def _add_template(self, conn: sqlite3.Connection, person_id: int, embedding: np.ndarray, quality: float) -> None:
        rows = conn.execute("SELECT id, embedding FROM templates WHERE person_id = ? ORDER BY id",
                            (person_id,)).fetchall()
        kept = np.stack([np.frombuffer(b, dtype=np.float32) for _, b in rows]) if rows else np.empty((0, 0))
        slot = template_slot(kept, embedding, self.max_templates, self.diversity)
        if slot is None:
            return
        if slot < len(rows):
            conn.execute("DELETE FROM templates WHERE id = ?", (rows[slot][0],))
        conn.execute("INSERT INTO templates (person_id, embedding, quality, created) VALUES (?, ?, ?, ?)",
                     (person_id, embedding.astype(np.float32).tobytes(), quality, time.time()))

    # --- questions --------------------------------------------------------------------------------------------

    def people(self) -> list[PersonSummary]:
        return self._summaries("")

    def person(self, label: str) -> PersonSummary | None:
        with self._lock:
            found = self._resolve(self._conn, label)
        if found is None:
            return None
        summaries = self._summaries("WHERE p.id = ?", (found[0],))
        return summaries[0] if summaries else None

    def _summaries(self, where: str, args: tuple[object, ...] = ()) -> list[PersonSummary]:
        rows = self._query(
            "SELECT p.label, p.named, COUNT(s.id), MIN(s.started), MAX(s.ended), GROUP_CONCAT(DISTINCT s.camera), "
            "(SELECT COUNT(*) FROM templates t WHERE t.person_id = p.id) "
            f"FROM people p LEFT JOIN sightings s ON s.person_id = p.id {where} GROUP BY p.id "
            "ORDER BY p.named DESC, p.id", args)
        return [PersonSummary(label, bool(named), count, templates, first, last,
                              sorted(cameras.split(",")) if cameras else [])
                for label, named, count, first, last, cameras, templates in rows]

    def sightings(self, label: str, since: float | None = None, camera: str | None = None) -> list[Sighting]:
        with self._lock:
            person_id, current, _ = self._person(self._conn, label)
            sql = ("SELECT id, camera, run_id, track_id, started, ended, pts_start, pts_end, looks, embedding, crop "
                   "FROM sightings WHERE person_id = ?")
            args: list[object] = [person_id]
            if since is not None:
                sql += " AND ended >= ?"
                args.append(since)
            if camera is not None:
                sql += " AND camera = ?"
                args.append(camera)
            rows = self._conn.execute(sql + " ORDER BY started", args).fetchall()
        return [Sighting(current, cam, run, track, started, ended, p0, p1, looks,
                         None if emb is None else np.frombuffer(emb, dtype=np.float32), crop, id=sid)
                for sid, cam, run, track, started, ended, p0, p1, looks, emb, crop in rows]

    # --- edits ------------------------------------------------------------------------------------------------

    def name(self, stranger: str, name: str) -> str:
        check_name(name)
        if not is_stranger(stranger):
            raise FacetrackError(f"{stranger!r} is not a stranger: pass the unknown-N label `facetrack people` shows")
        with self._write() as conn:
            person_id, current, _ = self._person(conn, stranger)
            if current != stranger:
                raise FacetrackError(f"{stranger} is already {current} (named or merged before)")
            target = self._resolve(conn, name)
            if target is None:
                conn.execute("UPDATE people SET label = ?, named = 1 WHERE id = ?", (name, person_id))
            else:
                self._move(conn, person_id, target[0])
            conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?)",
                         (stranger, person_id if target is None else target[0]))
        return name

    def merge(self, keep: str, other: str) -> int:
        with self._write() as conn:
            keep_id, keep_label, _ = self._person(conn, keep)
            other_id, other_label, other_named = self._person(conn, other)
            if keep_id == other_id:
                raise FacetrackError(f"{keep} and {other} are already one person ({keep_label})")
            if other_named:
                raise FacetrackError(f"{other_label} is a named person: merge strangers into a person, e.g. "
                                     f"`facetrack unknowns merge {other_label} {keep_label}`")
            moved = self._move(conn, other_id, keep_id)
            conn.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?)", (other_label, keep_id))
            self._prune_templates(conn, keep_id)
        return moved

    def _move(self, conn: sqlite3.Connection, source: int, target: int) -> int:
        """Everything of person `source` goes to `target`; `source` is deleted. Returns the sightings moved."""
        moved = conn.execute("UPDATE sightings SET person_id = ? WHERE person_id = ?", (target, source)).rowcount
        conn.execute("UPDATE templates SET person_id = ? WHERE person_id = ?", (target, source))
        conn.execute("UPDATE aliases SET person_id = ? WHERE person_id = ?", (target, source))
        conn.execute("DELETE FROM people WHERE id = ?", (source,))
        return moved

    def _prune_templates(self, conn: sqlite3.Connection, person_id: int) -> None:
        rows = conn.execute("SELECT id, embedding FROM templates WHERE person_id = ? ORDER BY id",
                            (person_id,)).fetchall()
        while len(rows) > self.max_templates:  # drop the most redundant template until the cap holds
            kept = np.stack([np.frombuffer(b, dtype=np.float32) for _, b in rows])
            sims = kept @ kept.T
            np.fill_diagonal(sims, -2.0)
            worst = int(np.argmax(sims.max(axis=1)))
            conn.execute("DELETE FROM templates WHERE id = ?", (rows[worst][0],))
            rows.pop(worst)

    def forget(self, label: str) -> int:
        with self._write() as conn:
            person_id, _, _ = self._person(conn, label)
            erased = conn.execute("SELECT COUNT(*) FROM sightings WHERE person_id = ?", (person_id,)).fetchone()[0]
            conn.execute("DELETE FROM people WHERE id = ?", (person_id,))  # templates, sightings, aliases follow
        self._erase_freed()
        return int(erased)

    def purge(self, older_than: float) -> tuple[int, int]:
        with self._write() as conn:
            sightings = conn.execute("DELETE FROM sightings WHERE ended < ?", (older_than,)).rowcount
            strangers = conn.execute(
                "DELETE FROM people WHERE named = 0 AND created < ? AND NOT EXISTS "
                "(SELECT 1 FROM sightings s WHERE s.person_id = people.id)", (older_than,)).rowcount
        if sightings or strangers:
            self._erase_freed()
        return sightings, strangers

    def close(self) -> None:
        with self._lock:
            self._conn.close()

