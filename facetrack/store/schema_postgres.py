"""The store's tables in PostgreSQL, versioned like the SQLite file (schema.py describes the tables):
`schema_version` holds the version a database is at, `MIGRATIONS[n]` takes it from version n-1 to n, all in one
transaction under an advisory lock (workers starting together: one migrates, the others find it done). A
database made by a newer facetrack is refused. Stranger numbers come from the sequence `stranger_numbers`.
"""

from __future__ import annotations

from typing import Any

from facetrack.errors import FacetrackError

CHANNEL = "facetrack_store"  # NOTIFY channel: every change to people, aliases or templates
PRESENCE = "facetrack_presence"  # NOTIFY channel: where gallery names are on screen now (not stored)
LOCK_MIGRATE = 0x66740001  # advisory lock keys ("ft" + n)
LOCK_MINT = 0x66740002
LOCK_JOURNAL = 0x66740003  # held from a change's journal row to its commit: journal order is commit order

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE SEQUENCE stranger_numbers;
CREATE TABLE people (
    id BIGSERIAL PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    named BOOLEAN NOT NULL DEFAULT false,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE aliases (
    label TEXT PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE
);
CREATE TABLE templates (
    id BIGSERIAL PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    embedding BYTEA NOT NULL,
    quality DOUBLE PRECISION NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX templates_person ON templates(person_id);
CREATE TABLE sightings (
    id BIGSERIAL PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    camera TEXT NOT NULL,
    run_id TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    started DOUBLE PRECISION NOT NULL,
    ended DOUBLE PRECISION NOT NULL,
    pts_start DOUBLE PRECISION NOT NULL,
    pts_end DOUBLE PRECISION NOT NULL,
    looks INTEGER NOT NULL,
    embedding BYTEA,
    crop BYTEA
);
CREATE INDEX sightings_person ON sightings(person_id, ended);
CREATE INDEX sightings_ended ON sightings(ended);
""",
    2: """
ALTER TABLE people ADD COLUMN ignored BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE templates ADD COLUMN sighting_id BIGINT REFERENCES sightings(id) ON DELETE SET NULL;
CREATE INDEX templates_sighting ON templates(sighting_id);
CREATE TABLE changes (
    seq BIGSERIAL PRIMARY KEY,
    person_id BIGINT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
""",
}

SCHEMA_VERSION = max(MIGRATIONS)


def schema_version(conn: Any) -> int:
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Any, where: str, create: bool = True) -> None:
    """Bring the database to `SCHEMA_VERSION` (or refuse it)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MIGRATE,))
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise FacetrackError(f"{where} was made by a newer facetrack (store schema {current}, this one reads up "
                                 f"to {SCHEMA_VERSION}): upgrade facetrack")
        if current == 0:
            if conn.execute("SELECT to_regclass('people')").fetchone()[0] is not None:
                raise FacetrackError(f"{where} holds tables that are not a facetrack store: give facetrack a "
                                     "database of its own")
            if not create:
                raise FacetrackError(f"no facetrack store in {where} yet: runs with `--store {where}` (or `watch`) "
                                     "make one")
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (0)")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[version])
            conn.execute("UPDATE schema_version SET version = %s", (version,))
