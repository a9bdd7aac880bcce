"""The store in PostgreSQL: several `watch` workers, on several machines, share one identity memory.

Selected by a URL: `--store postgresql://user@host:5432/facetrack` (or `store.path` in the config). The password
comes from the environment (`PGPASSWORD`) or `~/.pgpass`, as for every libpq client; one written in the URL works
too, but no location facetrack prints ever shows it (`redact`).

One truth for every worker:
- stranger numbers come from a sequence (never given twice, never reused);
- the match-or-mint decision for a new stranger runs under a transaction-level advisory lock, against the
  templates other workers banked up to that moment, and the new stranger's first template is stored with it: two
  workers that see the same new person at the same moment end with one ID;
- every change (a stranger minted or banked, a naming, a merge, an ignore, a forget, a purge) is written to the
  change journal (under a lock held to the commit, so its order is commit order) and announced with NOTIFY; a
  listener thread per worker reloads the people the journal names, in its in-memory bank and gallery, within
  about a second (`subscribe`).

A lost connection does not stop a worker: it matches from its cache, new strangers take numbers it holds in
reserve, sightings wait in a bounded queue (the oldest dropped when it is full, said once) and are written, in
order, when a reconnection (with back-off) succeeds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.store import Sighting, pgvector
from facetrack.store.bank import BankMatch, StrangerBank
from facetrack.store.pgvector import VectorSearch
from facetrack.store.schema_postgres import CHANNEL, LOCK_JOURNAL, LOCK_MINT, PRESENCE, migrate
from facetrack.store.sql import SqlStore

log = logging.getLogger(__name__)

SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL without any password (in the authority or as a `password=` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise FacetrackError("a postgresql:// store needs psycopg 3: pip install 'facetrack[postgres]'") from None
    return psycopg


class PostgresStore(VectorSearch, SqlStore):
    """See `facetrack.store.Store` (the SQL is in sql.py); safe to share between the threads of one process."""

    CAMERAS = "string_agg(DISTINCT s.camera, ',')"
    FOR_UPDATE = " FOR UPDATE"

    def __init__(self, url: str, create: bool = True, max_templates: int = 5, diversity: float = 0.97,
                 queue_size: int = 10000, reserve: int = 2, connect_timeout: float = 5.0,
                 max_backoff: float = 5.0, vector_search: bool = True) -> None:
        self._pg = _psycopg()
        self.url = url
        self.location = redact(url)
        self.max_templates = max_templates
        self.diversity = diversity
        self.queue_size = queue_size
        self.reserve_size = reserve
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._pending: deque[tuple[str, Any]] = deque()  # waiting for the database: ("mint"|"sighting", ...)
        self._dropped = 0
        self._reserve: list[int] = []  # stranger numbers held for minting while the database is away
        self._online = True
        self._reconnector: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self.flushed = 0  # queued items written after a reconnection
        self._worker = uuid.uuid4().hex  # tells this process's own presence notes from others'
        self._on_presence: Callable[[str, str, float | None], None] | None = None
        self._callback: Callable[[], None] | None = None
        self._listening = threading.Event()
        self._conn = self._connect(first=True)
        self.vector_search = vector_search  # pgvector, where the server has it (pgvector.py)
        self.vector_dim: int | None = None  # the store's vector column, once there
        try:
            migrate(self._conn, self.location, create)
            with self._conn.transaction():
                self.vector_dim = pgvector.column_dim(self._conn) if vector_search else None
        except self._pg.Error as exc:
            self._conn.close()
            raise FacetrackError(f"cannot set up the store in {self.location}: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    # --- connections ------------------------------------------------------------------------------------------

    def _connect(self, first: bool = False, autocommit: bool = False) -> Any:
        try:
            # Keepalives and a TCP user timeout: a database host that vanishes (no reset) is noticed in seconds,
            # not after the kernel's minutes, so the worker goes on from its cache.
            return self._pg.connect(self.url, connect_timeout=max(1, int(self.connect_timeout)),
                                    application_name="facetrack", autocommit=autocommit, keepalives=1,
                                    keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                                    tcp_user_timeout=10000)
        except self._pg.Error as exc:
            if not first:
                raise
            reason = self._scrub(exc)
            hint = ""
            if "does not exist" in reason and "database" in reason:
                hint = " (create it: `createdb` or CREATE DATABASE, then run again)"
            elif "password" in reason:
                hint = " (set PGPASSWORD or a ~/.pgpass line for this host, port, database and user)"
            raise FacetrackError(f"cannot reach the store {self.location}: {reason}{hint}") from None

    def _scrub(self, exc: BaseException) -> str:
        """An error's first line, without the password should the driver quote the URL back."""
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        secret = urlsplit(self.url).password
        return reason.replace(secret, "***") if secret else reason

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction on the main connection; a lost connection becomes `FacetrackError` (and the
        reconnection starts in the background)."""
        with self._lock:
            if not self._online:
                raise FacetrackError(f"the store {self.location} is unreachable (reconnecting)")
            try:
                with self._conn.transaction():
                    yield self._conn
            except self._pg.OperationalError as exc:
                self._went_offline(exc)
                raise FacetrackError(f"the store {self.location} is unreachable: {self._scrub(exc)}") from None

    def _went_offline(self, exc: BaseException) -> None:
        with self._lock:
            if not self._online:
                return
            self._online = False
            log.warning("store %s unreachable (%s): tracking goes on from memory, sightings wait for it",
                        self.location, self._scrub(exc))
            self._reconnector = threading.Thread(target=self._reconnect, name="store-reconnect", daemon=True)
            self._reconnector.start()

    def _reconnect(self) -> None:
        delay = 0.25
        while not self._stop.wait(delay):
            try:
                conn = self._connect()
            except self._pg.Error:
                delay = min(delay * 2, self.max_backoff)
                continue
            with self._lock:
                try:
                    self._conn.close()
                except self._pg.Error:
                    pass
                self._conn = conn
                self._online = True
                try:
                    written = self._flush()
                except self._pg.OperationalError as exc:  # lost again while writing: try again later
                    self._online = False
                    log.warning("store %s lost again while writing the queue (%s)", self.location, self._scrub(exc))
                    delay = min(delay * 2, self.max_backoff)
                    continue
            log.warning("store %s is back: %d queued sightings written%s", self.location, written,
                        f", {self._dropped} dropped while it was away" if self._dropped else "")
            self._dropped = 0
            if self._callback is not None:  # what other workers changed meanwhile
                self._fire(self._callback)
            return

    def _flush(self) -> int:
        """Write what waited, oldest first, one transaction each (an item leaves the queue once written)."""
        written = 0
        while self._pending:
            kind, item = self._pending[0]
            with self._conn.transaction():
                if kind == "mint":
                    label, mean = item
                    row = self._conn.execute("INSERT INTO people (label, named, created) VALUES (%s, false, %s) "
                                             "ON CONFLICT (label) DO NOTHING RETURNING id",
                                             (label, time.time())).fetchone()
                    if row is not None:
                        self._insert_template(self._conn, int(row[0]), mean, 0.0)
                        self._changed(self._conn, int(row[0]), what="bank")
                else:
                    sighting, template = item
                    self._record(self._conn, sighting, template)
                    written += 1
            self._pending.popleft()
            self.flushed += 1
        return written

    def _queue(self, kind: str, item: Any) -> None:
        if len(self._pending) >= self.queue_size:
            self._pending.popleft()
            if self._dropped == 0:
                log.warning("store %s unreachable and %d sightings waiting: the oldest are dropped from now on",
                            self.location, self.queue_size)
            self._dropped += 1
        self._pending.append((kind, item))

    @property
    def online(self) -> bool:
        return self._online

    @property
    def waiting(self) -> int:
        """Sightings (and strangers minted offline) waiting for the database."""
        return len(self._pending)

    # --- change notifications ---------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None], debounce: float = 0.2,
                  on_presence: Callable[[str, str, float | None], None] | None = None) -> None:
        """Call `callback` (from a listener thread) soon after any worker or command changed the store, and after
        each reconnection of the listener (what changed meanwhile was missed); `on_presence(name, camera, left)`
        when another worker announces where a gallery name is (`announce`)."""
        if self._listener is not None:
            return
        self._on_presence = on_presence
        self._callback = callback
        self._listener = threading.Thread(target=self._listen, args=(callback, debounce), name="store-listener",
                                          daemon=True)
        self._listener.start()
        self._listening.wait(self.connect_timeout)  # from here on no change is missed
        try:  # a worker holds a few stranger numbers, to mint with while the database is away
            with self._tx() as conn:
                while len(self._reserve) < self.reserve_size:
                    self._reserve.append(self._take_number(conn))
        except FacetrackError as exc:
            log.warning("%s", exc)

    def _listen(self, callback: Callable[[], None], debounce: float) -> None:
        delay = 0.25
        while not self._stop.is_set():
            try:
                with self._connect(autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {PRESENCE}")
                    delay = 0.25
                    self._listening.set()
                    self._fire(callback)  # what changed before LISTEN, or while the listener was away
                    while not self._stop.is_set():
                        changed = False
                        for note in conn.notifies(timeout=debounce):
                            if note.channel == PRESENCE:
                                self._presence(note.payload)
                            else:
                                changed = True
                        if changed:
                            self._fire(callback)
            except self._pg.Error:
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.max_backoff)

    def announce(self, name: str, camera: str, left: float | None) -> None:
        """Tell the other workers that `name` is on `camera` (`left` None) or left it at `left`; nothing when the
        database is away (presence is only of the moment)."""
        payload = json.dumps({"worker": self._worker, "name": name, "camera": camera, "left": left})
        try:
            with self._tx() as conn:
                conn.execute("SELECT pg_notify(%s, %s)", (PRESENCE, payload))
        except FacetrackError:
            pass

    def _presence(self, payload: str) -> None:
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if note.get("worker") != self._worker and self._on_presence is not None:
            self._on_presence(str(note["name"]), str(note["camera"]), note.get("left"))

    def _fire(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except FacetrackError as exc:  # the main connection is down: the reconnection reloads again
            log.debug("reload after a change failed: %s", exc)

    # --- the dialect ------------------------------------------------------------------------------------------

    def _read(self) -> Any:
        return self._tx()

    def _write(self) -> Any:
        return self._tx()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _take_number(self, conn: Any) -> int:
        return int(conn.execute("SELECT nextval('stranger_numbers')").fetchone()[0])

    def _mint_number(self, conn: Any) -> int:
        number = self._reserve.pop(0) if self._reserve else self._take_number(conn)
        while len(self._reserve) < self.reserve_size:
            self._reserve.append(self._take_number(conn))
        return number

    def _lock_people(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MINT,))

    def _lock_journal(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_JOURNAL,))

    def _announce(self, conn: Any, what: str) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, what))

    def _own_store_hint(self, recognizer: object) -> str:
        return "give this model its own database"

    def _erase_freed(self) -> None:
        """Let PostgreSQL reclaim the deleted rows' space now (plain VACUUM: workers keep writing meanwhile)."""
        with self._lock:
            try:
                self._conn.autocommit = True
                self._conn.execute("VACUUM people, aliases, templates, sightings, changes")
                self._conn.autocommit = False
            except self._pg.Error as exc:
                log.warning("VACUUM of %s failed: %s", self.location, self._scrub(exc))

    # --- what goes on while the database is away --------------------------------------------------------------

    def discard_stranger(self, label: str) -> None:
        try:
            super().discard_stranger(label)
        except FacetrackError:
            if self._online:
                raise  # offline: the stranger stays, without sightings (`store purge` removes such ones)

    def match_or_mint(self, mean: np.ndarray, bank: StrangerBank,
                      catch_up: Callable[[], object] = lambda: None) -> tuple[str, BankMatch, bool]:
        """As `SqlStore.match_or_mint`; offline, the cached bank decides and a new stranger takes a number held
        in reserve (written when the database is back)."""
        try:
            return super().match_or_mint(mean, bank, catch_up)
        except FacetrackError:
            if self._online:
                raise
        match = bank.match(mean)  # the database is away: the cache decides
        if match.label is not None:
            return match.label, match, False
        with self._lock:
            if not self._reserve:
                raise FacetrackError(f"the store {self.location} is unreachable and no stranger number is left in "
                                     "reserve")
            label = f"unknown-{self._reserve.pop(0)}"
            self._queue("mint", (label, mean.astype(np.float32).copy()))
        return label, match, True

    def record(self, sighting: Sighting, template: bool) -> str | None:
        try:
            return super().record(sighting, template)
        except FacetrackError:
            if self._online:
                raise
        with self._lock:
            self._queue("sighting", (sighting, template))
        return sighting.identity

    def close(self, timeout: float = 5.0) -> None:
        """Write what waits if the database is reachable (within `timeout`), then close."""
        deadline = time.monotonic() + timeout
        while self._pending and not self._online and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stop.set()
        if self._pending:
            log.warning("store %s unreachable: %d queued sightings are lost", self.location, len(self._pending))
        for thread in (self._reconnector, self._listener):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2.0)
        with self._lock:
            self._conn.close()
