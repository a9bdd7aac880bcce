"""The stranger decision searched inside PostgreSQL, where the server has the pgvector extension.

Never required: a store whose database has the `vector` extension installed (or may install it: `CREATE EXTENSION
vector` needs the right to) keeps, beside each template's float32 bytes, the same embedding as a `vector(D)` column
with an HNSW index (cosine), and a worker's stranger decision (under the mint lock) asks the database for the
nearest templates instead of scanning its in-memory bank. Without the extension nothing changes: the bank is
matched in memory, as on SQLite. Any failure of the vector search (an extension dropped meanwhile, an old
version) falls back to the in-memory bank, said once in the log.

The gallery match (every embedding of every track, named people only) stays in memory: a round trip per face
would cost more than it saves.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.store import Recognizer
from facetrack.store.bank import BankMatch, StrangerBank
from facetrack.store.schema_postgres import LOCK_MIGRATE

log = logging.getLogger(__name__)

CANDIDATES = 64  # nearest templates asked for; their people's best similarities decide
_BACKFILL = 1000  # templates converted per statement when the column is added to a filled store


def literal(vector: np.ndarray) -> str:
    """pgvector's text form of an embedding: `[0.1,-0.2,…]`."""
    return "[" + ",".join(f"{float(x):.8g}" for x in vector) + "]"


def installed(conn: Any) -> bool:
    """Whether the database has the extension, installing it when the server offers it and we may."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return True
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
        return False
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return True
    except Exception as exc:  # no privilege: the in-memory bank it is
        log.info("pgvector is on the server but cannot be installed here (%s): matching in memory", exc)
        return False


def column_dim(conn: Any) -> int | None:
    """The size of `templates.vec` where the store has that column."""
    row = conn.execute("SELECT atttypmod FROM pg_attribute WHERE attrelid = 'templates'::regclass AND "
                       "attname = 'vec' AND NOT attisdropped").fetchone()
    return None if row is None else int(row[0])


def prepare(conn: Any, dim: int) -> int | None:
    """Add the vector column and its index for embeddings of size `dim` (once per store; callers hold the
    migration lock), filling it from the templates already there. Returns the column's size, None without the
    extension."""
    found = column_dim(conn)
    if found is not None:
        return found
    if not installed(conn):
        return None
    conn.execute(f"ALTER TABLE templates ADD COLUMN vec vector({int(dim)})")
    while True:
        rows = conn.execute("SELECT id, embedding FROM templates WHERE vec IS NULL LIMIT %s", (_BACKFILL,)).fetchall()
        if not rows:
            break
        for template_id, blob in rows:
            conn.execute("UPDATE templates SET vec = %s::vector WHERE id = %s",
                         (literal(np.frombuffer(bytes(blob), np.float32)), template_id))
    conn.execute("CREATE INDEX templates_vec ON templates USING hnsw (vec vector_cosine_ops)")
    log.info("pgvector: templates searched in the database (vector(%d), HNSW)", dim)
    return dim


def match(conn: Any, mean: np.ndarray, threshold: float, margin: float) -> BankMatch:
    """The bank's decision (bank.py's rule: the best person's closest template at `threshold` or more, `margin`
    ahead of the next person) over the nearest strangers' templates in the database."""
    conn.execute(f"SET LOCAL hnsw.ef_search = {max(CANDIDATES * 2, 100)}")
    rows = conn.execute(
        "SELECT p.label, 1 - (t.vec <=> %s::vector) FROM templates t JOIN people p ON p.id = t.person_id "
        "WHERE NOT p.named AND t.vec IS NOT NULL ORDER BY t.vec <=> %s::vector LIMIT %s",
        (literal(mean), literal(mean), CANDIDATES)).fetchall()
    best: dict[str, float] = {}
    for label, similarity in rows:
        best[str(label)] = max(best.get(str(label), -1.0), float(similarity))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    if not ranked:
        return BankMatch(None, -1.0, -1.0)
    first = ranked[0][1]
    second = ranked[1][1] if len(ranked) > 1 else -1.0
    ok = first >= threshold and first - second >= margin
    return BankMatch(ranked[0][0] if ok else None, first, second)


class VectorSearch:
    """What PostgresStore does differently with pgvector: the column written with every template, the decision
    searched in the database. Mixed into PostgresStore (its connection, lock and error types)."""

    vector_search: bool
    vector_dim: int | None
    location: str
    _pg: Any

    def _tx(self) -> Any: ...

    def _scrub(self, exc: BaseException) -> str: ...

    def bind_recognizer(self, recognizer: Recognizer) -> None:
        super().bind_recognizer(recognizer)  # type: ignore[misc]
        if not self.vector_search or self.vector_dim is not None:
            return
        try:
            with self._tx() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MIGRATE,))
                self.vector_dim = prepare(conn, recognizer.dim)
        except (self._pg.Error, FacetrackError) as exc:
            log.warning("pgvector not used for %s (%s): matching in memory", self.location, self._scrub(exc))

    def _insert_template(self, conn: Any, person_id: int, embedding: np.ndarray, quality: float,
                         sighting_id: int | None = None) -> int:
        template_id = super()._insert_template(conn, person_id, embedding, quality, sighting_id)  # type: ignore[misc]
        if self.vector_dim is not None:
            conn.execute("UPDATE templates SET vec = %s::vector WHERE id = %s",
                         (literal(embedding), template_id))
        return template_id

    def _bank_match(self, conn: Any, mean: np.ndarray, bank: StrangerBank) -> BankMatch:
        if self.vector_dim is not None:
            try:
                with conn.transaction():
                    return match(conn, mean, bank.threshold, bank.margin)
            except self._pg.OperationalError:
                raise
            except self._pg.Error as exc:
                log.warning("pgvector search in %s failed (%s): matching in memory from now on", self.location,
                            self._scrub(exc))
                self.vector_dim = None
        return bank.match(mean)

