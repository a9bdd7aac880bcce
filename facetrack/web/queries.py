"""What the review page asks the store beyond the `Store` protocol: best crops, strangers by last seen, sightings of
everyone filtered by camera and time, one crop's bytes.

These are reads only, in the store's read transactions and its SQL dialect (SQLite or PostgreSQL, sql.py); every
change goes through the store's methods, the same code as the CLI. They read the tables `facetrack.store.schema`
describes.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

from facetrack.errors import FacetrackError
from facetrack.store import is_stranger
from facetrack.store.sql import SqlStore

# Crops the review page shows per stranger.
STRANGER_CROPS = 4


@dataclass(frozen=True)
class Seen:
    """One sighting as the page lists it: no embedding, the crop by id."""

    id: int
    identity: str
    named: bool
    camera: str
    run_id: str
    track_id: int
    started: float
    ended: float
    seconds: float
    looks: int
    has_crop: bool


@dataclass(frozen=True)
class Stranger:
    label: str
    sightings: int
    first_seen: float | None
    last_seen: float | None
    cameras: list[str]
    crops: list[int]  # sighting ids, the most looked-at first


_SEEN = ("SELECT s.id, p.label, p.named, s.camera, s.run_id, s.track_id, s.started, s.ended, s.pts_start, s.pts_end, "
         "s.looks, s.crop IS NOT NULL FROM sightings s JOIN people p ON p.id = s.person_id")


class StoreQueries:
    """Read-only questions on `store` (either backend); safe to share between threads."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _rows(self, sql: str, args: tuple[object, ...] | list[object] = ()) -> list[tuple]:
        with self.store._read() as conn:
            return list(self.store._x(conn, sql, args).fetchall())

    def resolve(self, label: str) -> tuple[str, bool] | None:
        """(current label, named) of a label or of an old one (a stranger since named or merged)."""
        rows = self._rows("SELECT label, named FROM people WHERE label = ? UNION ALL "
                          "SELECT p.label, p.named FROM aliases a JOIN people p ON p.id = a.person_id "
                          "WHERE a.label = ?", (label, label))
        return None if not rows else (str(rows[0][0]), bool(rows[0][1]))

    def best_crops(self) -> dict[str, int]:
        """Per person, the sighting whose crop shows them best (most looks, then longest, then latest)."""
        rows = self._rows(
            "SELECT label, (SELECT s.id FROM sightings s WHERE s.person_id = p.id AND s.crop IS NOT NULL "
            "ORDER BY s.looks DESC, s.pts_end - s.pts_start DESC, s.ended DESC LIMIT 1) FROM people p")
        return {label: int(sid) for label, sid in rows if sid is not None}

    def cameras(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT camera FROM sightings ORDER BY camera")]

    def strangers(self) -> list[Stranger]:
        """Every stranger, the most recently seen first (never seen ones last)."""
        rows = self._rows(
            f"SELECT p.id, p.label, COUNT(s.id), MIN(s.started), MAX(s.ended), {self.store.CAMERAS} "
            "FROM people p LEFT JOIN sightings s ON s.person_id = p.id WHERE NOT p.named GROUP BY p.id "
            "ORDER BY MAX(s.ended) IS NULL, MAX(s.ended) DESC, p.id DESC")
        found = []
        for person_id, label, count, first, last, cameras in rows:
            crops = [int(r[0]) for r in self._rows(
                "SELECT id FROM sightings WHERE person_id = ? AND crop IS NOT NULL "
                "ORDER BY looks DESC, ended DESC LIMIT ?", (person_id, STRANGER_CROPS))]
            found.append(Stranger(label, int(count), first, last, sorted(cameras.split(",")) if cameras else [],
                                  crops))
        return found

    def sightings(self, identity: str | None = None, camera: str | None = None, since: float | None = None,
                  until: float | None = None, limit: int = 500) -> list[Seen]:
        """Sightings, the latest first: of one identity (a name, an unknown-N, or an old label of theirs) or of
        everyone, on one camera or all, overlapping [since, until]."""
        sql, args = _SEEN + " WHERE 1 = 1", []
        if identity is not None:
            found = self.resolve(identity)
            if found is None:
                raise LookupError(identity)
            sql += " AND p.label = ?"
            args.append(found[0])
        if camera is not None:
            sql += " AND s.camera = ?"
            args.append(camera)
        if since is not None:
            sql += " AND s.ended >= ?"
            args.append(since)
        if until is not None:
            sql += " AND s.started <= ?"
            args.append(until)
        rows = self._rows(sql + " ORDER BY s.started DESC, s.id DESC LIMIT ?", [*args, limit])
        return [Seen(int(sid), label, bool(named), cam, run, int(track), started, ended, max(0.0, p1 - p0),
                     int(looks), bool(has_crop))
                for sid, label, named, cam, run, track, started, ended, p0, p1, looks, has_crop in rows]

    def crop(self, sighting_id: int) -> bytes | None:
        rows = self._rows("SELECT crop FROM sightings WHERE id = ?", (sighting_id,))
        return None if not rows or rows[0][0] is None else bytes(rows[0][0])


_AGO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_when(text: str | None, what: str = "since") -> float | None:
    """A time as the page and the API take it: a time ago (30m, 12h, 2d, 1w), an ISO date or date-time
    (2026-12-01, 2026-12-01T08:00, with or without an offset; local time without), or Unix seconds."""
    if text is None or not text.strip():
        return None
    found = _AGO.fullmatch(text)
    if found:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[found.group(2)]
        return time.time() - float(found.group(1)) * unit
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise FacetrackError(f"{what}={text!r}: give a time ago (30m, 12h, 2d, 1w), a date or date-time "
                             "(2026-12-01, 2026-12-01T08:00) or Unix seconds") from None


def iso(seconds: float | None) -> str | None:
    """Local time with its offset, to the second (what `facetrack seen --json` prints)."""
    return None if seconds is None else dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def when(seconds: float | None) -> str:
    """Local time for people to read."""
    return "–" if seconds is None else dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def kind(label: str) -> str:
    return "stranger" if is_stranger(label) else "person"
