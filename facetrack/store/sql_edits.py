"""The edits of the people in a SQL store: name, merge, ignore, remove a template, forget, purge.

A mixin of `SqlStore` (sql.py): the transactions, the journal and the lookups it calls are that class's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.store import is_stranger
from facetrack.store.rows import JOURNAL_DAYS, check_name, vector


class SqlEdits:
    """What changes people; every edit writes the journal, so running workers reload the people it touched."""

    _write: Any
    _x: Any
    _person: Any
    _changed: Any

    def name(self, stranger: str, name: str) -> str:
        check_name(name)
        if not is_stranger(stranger):
            raise FacetrackError(f"{stranger!r} is not a stranger: pass the unknown-N label `facetrack people` shows")
        with self._write() as conn:
            self._lock_people(conn)
            person_id, current, _ = self._person(conn, stranger)
            if current != stranger:
                raise FacetrackError(f"{stranger} is already {current} (named or merged before)")
            target = self._resolve(conn, name)
            if target is None:
                self._x(conn, "UPDATE people SET label = ?, named = true WHERE id = ?", (name, person_id))
            else:
                self._move(conn, person_id, target[0])
            into = person_id if target is None else target[0]
            self._x(conn, "INSERT INTO aliases VALUES (?, ?) ON CONFLICT (label) DO UPDATE SET person_id = "
                          "excluded.person_id", (stranger, into))
            self._changed(conn, person_id, into)
        return name

    def merge(self, keep: str, other: str) -> int:
        with self._write() as conn:
            self._lock_people(conn)
            keep_id, keep_label, _ = self._person(conn, keep)
            other_id, other_label, other_named = self._person(conn, other)
            if keep_id == other_id:
                raise FacetrackError(f"{keep} and {other} are already one person ({keep_label})")
            if other_named:
                raise FacetrackError(f"{other_label} is a named person: merge strangers into a person, e.g. "
                                     f"`facetrack unknowns merge {other_label} {keep_label}`")
            moved = self._move(conn, other_id, keep_id)
            self._x(conn, "INSERT INTO aliases VALUES (?, ?) ON CONFLICT (label) DO UPDATE SET person_id = "
                          "excluded.person_id", (other_label, keep_id))
            self._prune_templates(conn, keep_id)
            self._changed(conn, keep_id, other_id)
        return moved

    def _move(self, conn: Any, source: int, target: int) -> int:
        """Everything of person `source` goes to `target`; `source` is deleted. Returns the sightings moved."""
        moved = self._x(conn, "UPDATE sightings SET person_id = ? WHERE person_id = ?", (target, source)).rowcount
        self._x(conn, "UPDATE templates SET person_id = ? WHERE person_id = ?", (target, source))
        self._x(conn, "UPDATE aliases SET person_id = ? WHERE person_id = ?", (target, source))
        self._x(conn, "DELETE FROM people WHERE id = ?", (source,))
        return int(moved)

    def _prune_templates(self, conn: Any, person_id: int) -> None:
        rows = self._x(conn, "SELECT id, embedding FROM templates WHERE person_id = ? ORDER BY id",
                       (person_id,)).fetchall()
        while len(rows) > self.max_templates:  # drop the most redundant template until the cap holds
            kept = np.stack([vector(b) for _, b in rows])
            sims = kept @ kept.T
            np.fill_diagonal(sims, -2.0)
            worst = int(np.argmax(sims.max(axis=1)))
            self._x(conn, "DELETE FROM templates WHERE id = ?", (rows[worst][0],))
            rows.pop(worst)

    def ignore(self, label: str, ignored: bool = True) -> str:
        """Mark a person or stranger ignored (still recognised; events say `ignored`, alerts skip them), or no
        longer. A gallery name the store has not seen yet is remembered for when it is. Returns the label."""
        with self._write() as conn:
            found = self._resolve(conn, label)
            if found is None and (is_stranger(label) or not ignored):
                found = self._person(conn, label)  # the usual error: nobody called …
            if found is None:
                person_id, current = self._new_person(conn, check_name(label), True, ignored=True), label
            else:
                person_id, current = found[0], found[1]
                self._x(conn, "UPDATE people SET ignored = ? WHERE id = ?", (ignored, person_id))
            self._changed(conn, person_id)
        return current

    def remove_template(self, label: str, template_id: int) -> int:
        """Delete one of a person's templates (a bad crop that made it in); returns how many they have left."""
        with self._write() as conn:
            person_id, current, _ = self._person(conn, label)
            deleted = self._x(conn, "DELETE FROM templates WHERE id = ? AND person_id = ?",
                              (template_id, person_id)).rowcount
            if not deleted:
                raise FacetrackError(f"{current} has no template {template_id} (see their page for the ones they "
                                     "have)")
            left = int(self._x(conn, "SELECT COUNT(*) FROM templates WHERE person_id = ?",
                               (person_id,)).fetchone()[0])
            self._changed(conn, person_id)
        self._erase_freed()
        return left

    def forget(self, label: str) -> int:
        with self._write() as conn:
            person_id, _, _ = self._person(conn, label)
            erased = self._x(conn, "SELECT COUNT(*) FROM sightings WHERE person_id = ?", (person_id,)).fetchone()[0]
            self._x(conn, "DELETE FROM people WHERE id = ?", (person_id,))  # templates, sightings, aliases follow
            self._changed(conn, person_id)
        self._erase_freed()
        return int(erased)

    def purge(self, older_than: float) -> tuple[int, int]:
        with self._write() as conn:
            sightings = self._x(conn, "DELETE FROM sightings WHERE ended < ?", (older_than,)).rowcount
            strangers = [int(r[0]) for r in self._x(
                conn, "DELETE FROM people WHERE NOT named AND created < ? AND NOT EXISTS (SELECT 1 FROM sightings s "
                      "WHERE s.person_id = people.id) RETURNING id", (older_than,)).fetchall()]
            dropped = self._x(conn, "DELETE FROM changes WHERE at < ? RETURNING seq",
                              (time.time() - JOURNAL_DAYS * 86400,)).fetchall()
            if dropped:
                self._set_meta(conn, "changes_pruned", str(max(int(r[0]) for r in dropped)))
            if strangers:
                self._changed(conn, *strangers)
        if sightings or strangers:
            self._erase_freed()
        return int(sightings), len(strangers)
