"""The store's tables, versioned: `schema_version` holds the version a file is at, `MIGRATIONS[n]` takes a file
from version n-1 to n. A file made by a newer facetrack is refused rather than guessed at.

    meta        recognizer fingerprint, name, path and embedding size; the stranger counter (`next_unknown`)
    people      one row per identity: a stranger (`unknown-N`, named = 0) or a named person (named = 1)
    aliases     labels that went into another person (a stranger named or merged), so runs still holding the
                old label write to the right person
    templates   a few diverse embeddings per person, matched against new tracks
    sightings   one per track: camera, run, wall-clock and pts span, looks, mean embedding, best crop (JPEG)
    changes     the change journal: one row per person whose label, flags or templates changed (person ids
                only, no name), in commit order; running workers reload just those people (`since` their last)

Version 2 adds `people.ignored` (still recognised, never alerted), `templates.sighting_id` (the sighting a
template came from, whose crop shows it) and `changes`.
"""

from __future__ import annotations

import sqlite3

from facetrack.errors import FacetrackError

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    named INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE aliases (
    label TEXT PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE
);
CREATE TABLE templates (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BLOB NOT NULL,
    quality REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX templates_person ON templates(person_id);
CREATE TABLE sightings (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    camera TEXT NOT NULL,
    run_id TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    pts_start REAL NOT NULL,
    pts_end REAL NOT NULL,
    looks INTEGER NOT NULL,
    embedding BLOB,
    crop BLOB
);
CREATE INDEX sightings_person ON sightings(person_id, ended);
CREATE INDEX sightings_ended ON sightings(ended);
""",
    2: """
ALTER TABLE people ADD COLUMN ignored INTEGER NOT NULL DEFAULT 0;
ALTER TABLE templates ADD COLUMN sighting_id INTEGER REFERENCES sightings(id) ON DELETE SET NULL;
CREATE INDEX templates_sighting ON templates(sighting_id);
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id INTEGER NOT NULL,
    at REAL NOT NULL
);
""",
}

SCHEMA_VERSION = max(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, where: str) -> None:
    """Bring the file to `SCHEMA_VERSION`, one migration per transaction (two processes may race: the loser waits
    for the lock, then finds the work done)."""
    for version in range(1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(conn)
            if current > SCHEMA_VERSION:
                raise FacetrackError(f"{where} was made by a newer facetrack (store schema {current}, this one "
                                     f"reads up to {SCHEMA_VERSION}): upgrade facetrack")
            if current < version:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
