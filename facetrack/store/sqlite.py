"""The store in one embedded SQLite file: WAL (readers never wait for the writer, several processes may write),
created readable by its owner only, deletes that overwrite what they free (`secure_delete`) and end with a
`VACUUM`, so a forgotten person leaves no bytes behind.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facetrack.errors import FacetrackError
from facetrack.store import Recognizer
from facetrack.store.rows import check_name
from facetrack.store.schema import migrate, schema_version
from facetrack.store.sql import SqlStore

__all__ = ["SqliteStore", "check_name"]
log = logging.getLogger(__name__)


class SqliteStore(SqlStore):
    """See `facetrack.store.Store` (the SQL is in sql.py); safe to share between the threads of one process."""

    def __init__(self, path: Path, create: bool = True, max_templates: int = 5, diversity: float = 0.97,
                 busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.location = str(path)
        self.max_templates = max_templates
        self.diversity = diversity
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
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
                hint = ("it looks like a gallery: pass it to --gallery" if "templates" in tables else
                        "pass the store's .db file, or a new file name to start one")
                raise FacetrackError(f"{self.path} is not a facetrack store ({hint})")
            migrate(self._conn, self.location)
        except sqlite3.DatabaseError as exc:
            raise FacetrackError(f"{self.path} is not a facetrack store ({exc}): pass the store's .db file, or a new "
                                 "file name to start one") from None

    # --- plumbing ------------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the file's write lock at once (no deadlock between two writers); inside
        another transaction of this store, that one."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: one snapshot, never waiting for a writer (WAL)."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _take_number(self, conn: Any) -> int:
        number = int(self._meta(conn).get("next_unknown", "1"))
        self._set_meta(conn, "next_unknown", str(number + 1))
        return number

    def _erase_freed(self) -> None:
        """Rebuild the file and empty the write-ahead log: no freed page or old page image keeps deleted data."""
        with self._lock:
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _own_store_hint(self, recognizer: Recognizer) -> str:
        return (f"give this model its own store "
                f"(`--store {self.path.with_name(f'{self.path.stem}-{recognizer.name}{self.path.suffix}')}`)")

    # --- change notifications ---------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[], None], interval: float = 1.0, **_: object) -> None:
        """Call `callback` (from a watcher thread) within `interval` seconds of any commit to the file, by this
        process or another one (`PRAGMA data_version` on a connection of the watcher's own)."""
        if self._watcher is not None:
            return
        watch = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5.0)
        watch.execute("PRAGMA query_only = ON")
        seen = int(watch.execute("PRAGMA data_version").fetchone()[0])

        def run() -> None:
            nonlocal seen
            try:
                while not self._stop.wait(interval):
                    try:
                        version = int(watch.execute("PRAGMA data_version").fetchone()[0])
                    except sqlite3.Error as exc:
                        log.debug("store watcher: %s", exc)
                        continue
                    if version != seen:
                        seen = version
                        try:
                            callback()
                        except (FacetrackError, sqlite3.Error) as exc:
                            log.warning("reload after a change to %s failed: %s", self.location, exc)
            finally:
                watch.close()

        self._watcher = threading.Thread(target=run, name="store-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5.0)
        with self._lock:
            self._conn.close()
