"""The store's logic, in SQL both backends run: people, strangers, sightings and templates, the stranger decision,
and the change journal running workers catch up from (schema.py describes the tables); the edits (names, merges,
ignores, forgets, purges) are in sql_edits.py, the rows read and the name check in rows.py.

A backend (sqlite.py, postgres.py) gives the dialect and the plumbing: its connection and transactions
(`_read`, `_write`), its placeholders (`?` here; `_sql` rewrites them), how stranger numbers are taken, the lock
a decision on people takes, what a change announces (NOTIFY) and how freed space is erased. The SQL is written
once, in what both run (SQLite 3.35 or later: RETURNING, ON CONFLICT upserts, true and false).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.store import PersonSummary, Recognizer, Sighting, is_stranger
from facetrack.store.bank import BankMatch, StrangerBank, template_slot
from facetrack.store.rows import CHUNK, Identity, Template, vector
from facetrack.store.sql_edits import SqlEdits


class SqlStore(SqlEdits):
    """`facetrack.store.Store` on a DB-API connection; the backends below fill in the dialect."""

    location: str
    max_templates: int
    diversity: float
    CAMERAS = "GROUP_CONCAT(DISTINCT s.camera)"  # the distinct cameras of a person, comma-separated
    FOR_UPDATE = ""  # row locks on a person's templates while one is added (PostgreSQL)

    # --- the dialect ----------------------------------------------------------------------------------------

    def _read(self) -> AbstractContextManager[Any]:
        """A transaction that reads (one snapshot)."""
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Any]:
        """A transaction that writes."""
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    def _take_number(self, conn: Any) -> int:
        """The next stranger number, never given twice."""
        raise NotImplementedError

    def _mint_number(self, conn: Any) -> int:
        """A number for a stranger minted by a decision (PostgreSQL: from the numbers held in reserve)."""
        return self._take_number(conn)

    def _lock_people(self, conn: Any) -> None:
        """Serialise the decisions and edits on who is who (SQLite's write transaction already does)."""

    def _lock_journal(self, conn: Any) -> None:
        """Held from a journal row to the commit, so journal order is commit order (SQLite's writes are)."""

    def _announce(self, conn: Any, what: str) -> None:
        """Tell running workers that the store changed (PostgreSQL: NOTIFY)."""

    def _erase_freed(self) -> None:
        """Make deleted rows unreadable in the store's files."""

    def _own_store_hint(self, recognizer: Recognizer) -> str:
        return "give this model its own store"

    def _x(self, conn: Any, sql: str, args: tuple[object, ...] | list[object] = ()) -> Any:
        return conn.execute(self._sql(sql), args)

    # --- helpers ----------------------------------------------------------------------------------------------

    def _meta(self, conn: Any) -> dict[str, str]:
        return dict(self._x(conn, "SELECT key, value FROM meta").fetchall())

    def _set_meta(self, conn: Any, key: str, value: str) -> None:
        self._x(conn, "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value))

    def _resolve(self, conn: Any, label: str) -> tuple[int, str, bool] | None:
        """(person id, current label, named) for a label or an alias of one."""
        row = self._x(conn, "SELECT id, label, named FROM people WHERE label = ?", (label,)).fetchone()
        if row is None:
            row = self._x(conn, "SELECT p.id, p.label, p.named FROM aliases a JOIN people p ON p.id = a.person_id "
                                "WHERE a.label = ?", (label,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bool(row[2]))

    def _person(self, conn: Any, label: str) -> tuple[int, str, bool]:
        found = self._resolve(conn, label)
        if found is None:
            labels = [r[0] for r in self._x(conn, "SELECT label FROM people ORDER BY named DESC, id").fetchall()]
            held = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "") if labels else "nobody yet"
            raise FacetrackError(f"nobody called {label!r} in {self.location} (it holds: {held}; see `facetrack "
                                 f"people --store {self.location}`)")
        return found

    def _changed(self, conn: Any, *person_ids: int, what: str = "people") -> None:
        """Journal the people a transaction changed, and announce it; the transaction's last statements."""
        self._lock_journal(conn)
        now = time.time()
        for person_id in sorted(set(person_ids)):
            self._x(conn, "INSERT INTO changes (person_id, at) VALUES (?, ?)", (person_id, now))
        self._announce(conn, what)

    def _new_person(self, conn: Any, label: str, named: bool, ignored: bool = False) -> int:
        return int(self._x(conn, "INSERT INTO people (label, named, ignored, created) VALUES (?, ?, ?, ?) "
                                 "RETURNING id", (label, named, ignored, time.time())).fetchone()[0])

    # --- the recognizer -------------------------------------------------------------------------------------

    def recognizer(self) -> Recognizer | None:
        with self._read() as conn:
            meta = self._meta(conn)
        if "model_fingerprint" not in meta:
            return None
        return Recognizer(meta["model_fingerprint"], meta.get("model_name", "?"), meta.get("model_path", "?"),
                          int(meta.get("dim", "0")))

    def bind_recognizer(self, recognizer: Recognizer) -> None:
        with self._write() as conn:
            for key, value in (("model_fingerprint", recognizer.fingerprint), ("model_name", recognizer.name),
                               ("model_path", recognizer.path), ("dim", str(recognizer.dim))):
                self._x(conn, "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            meta = self._meta(conn)
        if meta["model_fingerprint"] != recognizer.fingerprint:
            raise FacetrackError(
                f"{self.location} holds embeddings of recognizer {meta.get('model_name', '?')} "
                f"({meta['model_fingerprint'][:12]}), not of {recognizer.name} ({recognizer.fingerprint[:12]}): run "
                f"with `--recognizer {meta.get('model_path', '?')}`, or {self._own_store_hint(recognizer)}")

    # --- what running workers keep in memory ----------------------------------------------------------------

    def changes(self, since: int | None) -> tuple[int, set[int] | None]:
        """(the journal's newest entry, the people changed after entry `since`); None instead of the people when
        every one must be read again (`since` None, or older than what the journal keeps)."""
        with self._read() as conn:
            pruned = int(self._meta(conn).get("changes_pruned", "0"))  # the newest entry trimmed away
            head = max(pruned, int(self._x(conn, "SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]))
            if since is None or since < pruned:
                return head, None
            rows = self._x(conn, "SELECT person_id FROM changes WHERE seq > ? AND seq <= ?", (since, head))
            return head, {int(r[0]) for r in rows.fetchall()}

    def identities(self, ids: Collection[int] | None = None) -> dict[int, Identity | None]:
        """The people `ids` as they are now (None: every one); an id no longer there maps to None."""
        found: dict[int, Identity | None] = {} if ids is None else dict.fromkeys(ids)
        chunks: list[list[int] | None] = [None] if ids is None else [
            sorted(ids)[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]
        with self._read() as conn:
            for chunk in chunks:
                marks = "" if chunk is None else ", ".join("?" * len(chunk))
                where, args = ("", []) if chunk is None else (f" WHERE person_id IN ({marks})", list(chunk))
                people = self._x(conn, "SELECT id, label, named, ignored FROM people"
                                 + ("" if chunk is None else f" WHERE id IN ({marks})"), args).fetchall()
                vectors: dict[int, list[np.ndarray]] = {}
                for person_id, blob in self._x(conn, "SELECT person_id, embedding FROM templates" + where
                                               + " ORDER BY person_id, id", args).fetchall():
                    vectors.setdefault(int(person_id), []).append(vector(blob))
                aliases: dict[int, list[str]] = {}
                for label, person_id in self._x(conn, "SELECT label, person_id FROM aliases" + where,
                                                args).fetchall():
                    aliases.setdefault(int(person_id), []).append(str(label))
                for person_id, label, named, ignored in people:
                    mine = vectors.get(int(person_id), [])
                    found[int(person_id)] = Identity(
                        int(person_id), str(label), bool(named), bool(ignored),
                        np.stack(mine) if mine else np.empty((0, 0), np.float32),
                        tuple(aliases.get(int(person_id), ())))
        return found

    def templates(self) -> list[tuple[str, bool, np.ndarray]]:
        """(label, named, embedding) of every template."""
        with self._read() as conn:
            rows = self._x(conn, "SELECT p.label, p.named, t.embedding FROM templates t JOIN people p ON "
                                 "p.id = t.person_id ORDER BY p.id, t.id").fetchall()
        return [(label, bool(named), vector(blob)) for label, named, blob in rows]

    def aliases(self) -> dict[str, str]:
        """Former labels (strangers named or merged) → the label they answer to now."""
        with self._read() as conn:
            return {str(a): str(b) for a, b in self._x(
                conn, "SELECT a.label, p.label FROM aliases a JOIN people p ON p.id = a.person_id").fetchall()}

    # --- strangers ----------------------------------------------------------------------------------------------

    def mint_stranger(self) -> str:
        with self._write() as conn:
            label = f"unknown-{self._take_number(conn)}"
            self._changed(conn, self._new_person(conn, label, False), what="bank")
        return label

    def match_or_mint(self, mean: np.ndarray, bank: StrangerBank,
                      catch_up: Callable[[], object] = lambda: None) -> tuple[str, BankMatch, bool]:
        """The persistent ID of a track just decided unknown. Under the lock on people, `catch_up` brings `bank`
        up to the templates every worker banked until now; the track matches a stranger, or a new one is minted
        with `mean` as their first template in the same transaction: two workers deciding on one new person at
        once end with one ID. Returns (label, the match, minted?)."""
        with self._write() as conn:
            self._lock_people(conn)
            catch_up()
            match = self._bank_match(conn, mean, bank)
            if match.label is not None:
                return match.label, match, False
            label = f"unknown-{self._mint_number(conn)}"
            person_id = self._new_person(conn, label, False)
            self._insert_template(conn, person_id, mean, 0.0)
            self._changed(conn, person_id, what="bank")
        return label, match, True

    def _bank_match(self, conn: Any, mean: np.ndarray, bank: StrangerBank) -> BankMatch:
        """The stranger decision's search: the in-memory bank (PostgreSQL with pgvector: the database)."""
        return bank.match(mean)

    def discard_stranger(self, label: str) -> None:
        with self._write() as conn:
            row = self._x(conn, "DELETE FROM people WHERE label = ? AND NOT named AND NOT EXISTS (SELECT 1 FROM "
                                "sightings s WHERE s.person_id = people.id) RETURNING id", (label,)).fetchone()
            if row is not None:
                self._changed(conn, int(row[0]), what="bank")

    # --- sightings --------------------------------------------------------------------------------------------

    def record(self, sighting: Sighting, template: bool) -> str | None:
        with self._write() as conn:
            return self._record(conn, sighting, template)

    def _record(self, conn: Any, sighting: Sighting, template: bool) -> str | None:
        found = self._resolve(conn, sighting.identity)
        changed: list[int] = []
        if found is None:
            if is_stranger(sighting.identity):
                return None  # forgotten while this run still showed them: nothing of them is written back
            row = self._x(conn, "INSERT INTO people (label, named, created) VALUES (?, true, ?) ON CONFLICT (label) "
                                "DO UPDATE SET label = excluded.label RETURNING id",
                          (sighting.identity, time.time())).fetchone()
            found = (int(row[0]), sighting.identity, True)
            changed.append(found[0])
        person_id, label, named = found
        embedding = None if sighting.embedding is None else sighting.embedding.astype(np.float32).tobytes()
        row = self._x(conn, "INSERT INTO sightings (person_id, camera, run_id, track_id, started, ended, pts_start, "
                            "pts_end, looks, embedding, crop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                      (person_id, sighting.camera, sighting.run_id, sighting.track_id, sighting.started,
                       sighting.ended, sighting.pts_start, sighting.pts_end, sighting.looks, embedding,
                       sighting.crop)).fetchone()
        sighting.id = int(row[0])
        if template and not named:  # a stranger's first template (their decision's mean) shows this track's crop
            self._x(conn, "UPDATE templates SET sighting_id = ? WHERE person_id = ? AND sighting_id IS NULL",
                    (sighting.id, person_id))
        if template and not named and sighting.embedding is not None and self._add_template(
                conn, person_id, sighting.embedding, sighting.quality, sighting.id):
            changed.append(person_id)
        if changed:
            self._changed(conn, *changed, what="bank")
        return label

    def _insert_template(self, conn: Any, person_id: int, embedding: np.ndarray, quality: float,
                         sighting_id: int | None = None) -> int:
        return int(self._x(conn, "INSERT INTO templates (person_id, embedding, quality, created, sighting_id) "
                                 "VALUES (?, ?, ?, ?, ?) RETURNING id",
                           (person_id, embedding.astype(np.float32).tobytes(), quality, time.time(),
                            sighting_id)).fetchone()[0])

    def _add_template(self, conn: Any, person_id: int, embedding: np.ndarray, quality: float,
                      sighting_id: int | None) -> bool:
        rows = self._x(conn, "SELECT id, embedding FROM templates WHERE person_id = ? ORDER BY id" + self.FOR_UPDATE,
                       (person_id,)).fetchall()
        kept = np.stack([vector(b) for _, b in rows]) if rows else np.empty((0, 0))
        slot = template_slot(kept, embedding, self.max_templates, self.diversity)
        if slot is None:
            return False
        if slot < len(rows):
            self._x(conn, "DELETE FROM templates WHERE id = ?", (rows[slot][0],))
        self._insert_template(conn, person_id, embedding, quality, sighting_id)
        return True

    # --- questions --------------------------------------------------------------------------------------------

    def _summaries(self, where: str = "", args: tuple[object, ...] = ()) -> list[PersonSummary]:
        with self._read() as conn:
            rows = self._x(conn, "SELECT p.label, p.named, COUNT(s.id), MIN(s.started), MAX(s.ended), "
                                 f"{self.CAMERAS}, (SELECT COUNT(*) FROM templates t WHERE t.person_id = p.id), "
                                 f"p.ignored FROM people p LEFT JOIN sightings s ON s.person_id = p.id {where} "
                                 "GROUP BY p.id ORDER BY p.named DESC, p.id", args).fetchall()
        return [PersonSummary(label, bool(named), int(count), int(templates), first, last,
                              sorted(cameras.split(",")) if cameras else [], bool(ignored))
                for label, named, count, first, last, cameras, templates, ignored in rows]

    def people(self) -> list[PersonSummary]:
        return self._summaries()

    def person(self, label: str) -> PersonSummary | None:
        with self._read() as conn:
            found = self._resolve(conn, label)
        if found is None:
            return None
        summaries = self._summaries("WHERE p.id = ?", (found[0],))
        return summaries[0] if summaries else None

    def sightings(self, label: str, since: float | None = None, camera: str | None = None) -> list[Sighting]:
        with self._read() as conn:
            person_id, current, _ = self._person(conn, label)
            sql = ("SELECT id, camera, run_id, track_id, started, ended, pts_start, pts_end, looks, embedding, crop "
                   "FROM sightings WHERE person_id = ?")
            args: list[object] = [person_id]
            if since is not None:
                sql += " AND ended >= ?"
                args.append(since)
            if camera is not None:
                sql += " AND camera = ?"
                args.append(camera)
            rows = self._x(conn, sql + " ORDER BY started, id", args).fetchall()
        return [Sighting(current, cam, run, track, started, ended, p0, p1, looks,
                         None if emb is None else vector(emb), None if crop is None else bytes(crop), id=sid)
                for sid, cam, run, track, started, ended, p0, p1, looks, emb, crop in rows]

    def person_templates(self, label: str) -> list[Template]:
        """A person's templates, the oldest first."""
        with self._read() as conn:
            person_id, _, _ = self._person(conn, label)
            rows = self._x(conn, "SELECT id, quality, created, sighting_id FROM templates WHERE person_id = ? "
                                 "ORDER BY id", (person_id,)).fetchall()
        return [Template(int(i), float(q), float(c), None if s is None else int(s)) for i, q, c, s in rows]
