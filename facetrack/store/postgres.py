"""The store in PostgreSQL: several `watch` workers, on several machines, share one identity memory.

Selected by a URL: `--store postgresql://user@host:5432/facetrack` (or `store.path` in the config). The password
comes from the environment (`PGPASSWORD`) or `~/.pgpass`, as for every libpq client; one written in the URL works
too, but no location facetrack prints ever shows it (`redact`).

One truth for every worker:
- stranger numbers come from a sequence (never given twice, never reused);
- the match-or-mint decision for a new stranger runs under a transaction-level advisory lock, against the
  templates other workers banked up to that moment, and the new stranger's first template is stored with it: two
  workers that see the same new person at the same moment end with one ID;
- every change (a stranger minted or banked, a naming, a merge, a forget, a purge) is announced with NOTIFY; a
  listener thread per worker reloads its in-memory bank and gallery within about a second (`subscribe`).

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
from facetrack.store import PersonSummary, Recognizer, Sighting, is_stranger
from facetrack.store.bank import BankMatch, StrangerBank, template_slot
from facetrack.store.schema_postgres import CHANNEL, LOCK_MINT, PRESENCE, migrate

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


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class PostgresStore:
    """See `facetrack.store.Store`; safe to share between the threads of one process."""

    def __init__(self, url: str, create: bool = True, max_templates: int = 5, diversity: float = 0.97,
                 queue_size: int = 10000, reserve: int = 2, connect_timeout: float = 5.0,
                 max_backoff: float = 5.0) -> None:
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
        self._changed = True
        self._seen_template = 0  # the highest template id this process has loaded
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
        try:
            migrate(self._conn, self.location, create)
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

    def _notify(self, conn: Any, what: str) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, what))

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
                    self._notify(self._conn, "bank")
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
        self._changed = True
        try:
            callback()
        except FacetrackError as exc:  # the main connection is down: the reconnection reloads again
            log.debug("reload after a change failed: %s", exc)

    # --- the recognizer ---------------------------------------------------------------------------------------

    def _meta(self, conn: Any) -> dict[str, str]:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())

    def recognizer(self) -> Recognizer | None:
        with self._tx() as conn:
            meta = self._meta(conn)
        if "model_fingerprint" not in meta:
            return None
        return Recognizer(meta["model_fingerprint"], meta.get("model_name", "?"), meta.get("model_path", "?"),
                          int(meta.get("dim", "0")))

    def bind_recognizer(self, recognizer: Recognizer) -> None:
        with self._tx() as conn:
            conn.cursor().executemany("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", [
                ("model_fingerprint", recognizer.fingerprint), ("model_name", recognizer.name),
                ("model_path", recognizer.path), ("dim", str(recognizer.dim))])
            meta = self._meta(conn)
        if meta["model_fingerprint"] != recognizer.fingerprint:
            raise FacetrackError(
                f"{self.location} holds embeddings of recognizer {meta.get('model_name', '?')} "
                f"({meta['model_fingerprint'][:12]}), not of {recognizer.name} ({recognizer.fingerprint[:12]}): run "
                f"with `--recognizer {meta.get('model_path', '?')}`, or give this model its own database")

    def changed(self) -> bool:
        changed, self._changed = self._changed, False
        return changed

    # --- the bank ---------------------------------------------------------------------------------------------

    def templates(self) -> list[tuple[str, bool, np.ndarray]]:
        with self._tx() as conn:
            rows = conn.execute("SELECT p.label, p.named, t.embedding, t.id FROM templates t "
                                "JOIN people p ON p.id = t.person_id ORDER BY p.id, t.id").fetchall()
        self._seen_template = max((int(r[3]) for r in rows), default=0)
        return [(label, bool(named), _vector(blob)) for label, named, blob, _ in rows]

    def _take_number(self, conn: Any) -> int:
        return int(conn.execute("SELECT nextval('stranger_numbers')").fetchone()[0])

    def mint_stranger(self) -> str:
        with self._tx() as conn:
            label = f"unknown-{self._take_number(conn)}"
            conn.execute("INSERT INTO people (label, named, created) VALUES (%s, false, %s)", (label, time.time()))
            self._notify(conn, "bank")
        return label

    def discard_stranger(self, label: str) -> None:
        try:
            with self._tx() as conn:
                deleted = conn.execute(
                    "DELETE FROM people WHERE label = %s AND NOT named AND NOT EXISTS (SELECT 1 FROM sightings s "
                    "WHERE s.person_id = people.id)", (label,)).rowcount
                if deleted:
                    self._notify(conn, "bank")
        except FacetrackError:
            if self._online:
                raise  # offline: the stranger stays, without sightings (`store purge` removes such ones)

    def match_or_mint(self, mean: np.ndarray, bank: StrangerBank) -> tuple[str, BankMatch, bool]:
        """The persistent ID of a track just decided unknown: under the mint lock the bank catches up with the
        templates banked since it was loaded, then the track matches a stranger or a new one is minted with
        `mean` as their first template. Returns (label, the match, minted?). Offline: the cached bank decides
        and a new stranger takes a reserved number."""
        try:
            with self._tx() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MINT,))
                rows = conn.execute("SELECT p.label, t.embedding, t.id FROM templates t JOIN people p ON "
                                    "p.id = t.person_id WHERE t.id > %s AND NOT p.named ORDER BY t.id",
                                    (self._seen_template,)).fetchall()
                for label, blob, template_id in rows:
                    bank.add(label, _vector(blob))
                    self._seen_template = max(self._seen_template, int(template_id))
                match = bank.match(mean)
                if match.label is not None:
                    return match.label, match, False
                number = self._reserve.pop(0) if self._reserve else self._take_number(conn)
                label = f"unknown-{number}"
                row = conn.execute("INSERT INTO people (label, named, created) VALUES (%s, false, %s) RETURNING id",
                                   (label, time.time())).fetchone()
                template_id = self._insert_template(conn, int(row[0]), mean, 0.0)
                self._seen_template = max(self._seen_template, template_id)
                while len(self._reserve) < self.reserve_size:
                    self._reserve.append(self._take_number(conn))
                self._notify(conn, "bank")
            bank.add(label, mean)
            return label, match, True
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
        bank.add(label, mean)
        return label, match, True

    def record(self, sighting: Sighting, template: bool) -> str | None:
        try:
            with self._tx() as conn:
                return self._record(conn, sighting, template)
        except FacetrackError:
            if self._online:
                raise
        with self._lock:
            self._queue("sighting", (sighting, template))
        return sighting.identity

    def _record(self, conn: Any, sighting: Sighting, template: bool) -> str | None:
        found = self._resolve(conn, sighting.identity)
        if found is None:
            if is_stranger(sighting.identity):
                return None  # forgotten while this run still showed them: nothing of them is written back
            row = conn.execute("INSERT INTO people (label, named, created) VALUES (%s, true, %s) "
                               "ON CONFLICT (label) DO UPDATE SET label = EXCLUDED.label RETURNING id",
                               (sighting.identity, time.time())).fetchone()
            found = (int(row[0]), sighting.identity, True)
        person_id, label, named = found
        embedding = None if sighting.embedding is None else sighting.embedding.astype(np.float32).tobytes()
        row = conn.execute(
            "INSERT INTO sightings (person_id, camera, run_id, track_id, started, ended, pts_start, pts_end, looks, "
            "embedding, crop) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (person_id, sighting.camera, sighting.run_id, sighting.track_id, sighting.started, sighting.ended,
             sighting.pts_start, sighting.pts_end, sighting.looks, embedding, sighting.crop)).fetchone()
        sighting.id = int(row[0])
        if template and not named and sighting.embedding is not None:
            if self._add_template(conn, person_id, sighting.embedding, sighting.quality):
                self._notify(conn, "bank")
        return label

    def _insert_template(self, conn: Any, person_id: int, embedding: np.ndarray, quality: float) -> int:
        row = conn.execute("INSERT INTO templates (person_id, embedding, quality, created) VALUES (%s, %s, %s, %s) "
                           "RETURNING id", (person_id, embedding.astype(np.float32).tobytes(), quality,
                                            time.time())).fetchone()
        return int(row[0])

    def _add_template(self, conn: Any, person_id: int, embedding: np.ndarray, quality: float) -> bool:
        rows = conn.execute("SELECT id, embedding FROM templates WHERE person_id = %s ORDER BY id FOR UPDATE",
                            (person_id,)).fetchall()
        kept = np.stack([_vector(b) for _, b in rows]) if rows else np.empty((0, 0))
        slot = template_slot(kept, embedding, self.max_templates, self.diversity)
        if slot is None:
            return False
        if slot < len(rows):
            conn.execute("DELETE FROM templates WHERE id = %s", (rows[slot][0],))
        self._insert_template(conn, person_id, embedding, quality)
        return True

    # --- questions --------------------------------------------------------------------------------------------

    def _resolve(self, conn: Any, label: str) -> tuple[int, str, bool] | None:
        row = conn.execute("SELECT id, label, named FROM people WHERE label = %s", (label,)).fetchone()
        if row is None:
            row = conn.execute("SELECT p.id, p.label, p.named FROM aliases a JOIN people p ON p.id = a.person_id "
                               "WHERE a.label = %s", (label,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), bool(row[2]))

    def _person(self, conn: Any, label: str) -> tuple[int, str, bool]:
        found = self._resolve(conn, label)
        if found is None:
            labels = [r[0] for r in conn.execute("SELECT label FROM people ORDER BY named DESC, id")]
            held = ", ".join(labels[:12]) + (", …" if len(labels) > 12 else "") if labels else "nobody yet"
            raise FacetrackError(f"nobody called {label!r} in {self.location} (it holds: {held}; see `facetrack "
                                 f"people --store {self.location}`)")
        return found

    def _summaries(self, where: str = "", args: tuple[object, ...] = ()) -> list[PersonSummary]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT p.label, p.named, COUNT(s.id), MIN(s.started), MAX(s.ended), "
                "array_remove(array_agg(DISTINCT s.camera), NULL), "
                "(SELECT COUNT(*) FROM templates t WHERE t.person_id = p.id) "
                f"FROM people p LEFT JOIN sightings s ON s.person_id = p.id {where} GROUP BY p.id "
                "ORDER BY p.named DESC, p.id", args).fetchall()
        return [PersonSummary(label, bool(named), int(count), int(templates), first, last, sorted(cameras or []))
                for label, named, count, first, last, cameras, templates in rows]

    def people(self) -> list[PersonSummary]:
        return self._summaries()

    def person(self, label: str) -> PersonSummary | None:
        with self._tx() as conn:
            found = self._resolve(conn, label)
        if found is None:
            return None
        summaries = self._summaries("WHERE p.id = %s", (found[0],))
        return summaries[0] if summaries else None

    def aliases(self) -> dict[str, str]:
        """Former labels (strangers named or merged) → the label they answer to now."""
        with self._tx() as conn:
            return dict(conn.execute("SELECT a.label, p.label FROM aliases a JOIN people p ON p.id = a.person_id"))

    def sightings(self, label: str, since: float | None = None, camera: str | None = None) -> list[Sighting]:
        with self._tx() as conn:
            person_id, current, _ = self._person(conn, label)
            sql = ("SELECT id, camera, run_id, track_id, started, ended, pts_start, pts_end, looks, embedding, crop "
                   "FROM sightings WHERE person_id = %s")
            args: list[object] = [person_id]
            if since is not None:
                sql += " AND ended >= %s"
                args.append(since)
            if camera is not None:
                sql += " AND camera = %s"
                args.append(camera)
            rows = conn.execute(sql + " ORDER BY started, id", args).fetchall()
        return [Sighting(current, cam, run, track, started, ended, p0, p1, looks,
                         None if emb is None else _vector(emb), None if crop is None else bytes(crop), id=sid)
                for sid, cam, run, track, started, ended, p0, p1, looks, emb, crop in rows]

    # --- edits ------------------------------------------------------------------------------------------------

    def name(self, stranger: str, name: str) -> str:
        from facetrack.store.sqlite import check_name

        check_name(name)
        if not is_stranger(stranger):
            raise FacetrackError(f"{stranger!r} is not a stranger: pass the unknown-N label `facetrack people` shows")
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MINT,))
            person_id, current, _ = self._person(conn, stranger)
            if current != stranger:
                raise FacetrackError(f"{stranger} is already {current} (named or merged before)")
            target = self._resolve(conn, name)
            if target is None:
                conn.execute("UPDATE people SET label = %s, named = true WHERE id = %s", (name, person_id))
            else:
                self._move(conn, person_id, target[0])
            conn.execute("INSERT INTO aliases VALUES (%s, %s) ON CONFLICT (label) DO UPDATE SET person_id = "
                         "EXCLUDED.person_id", (stranger, person_id if target is None else target[0]))
            self._notify(conn, "people")
        return name

    def merge(self, keep: str, other: str) -> int:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_MINT,))
            keep_id, keep_label, _ = self._person(conn, keep)
            other_id, other_label, other_named = self._person(conn, other)
            if keep_id == other_id:
                raise FacetrackError(f"{keep} and {other} are already one person ({keep_label})")
            if other_named:
                raise FacetrackError(f"{other_label} is a named person: merge strangers into a person, e.g. "
                                     f"`facetrack unknowns merge {other_label} {keep_label}`")
            moved = self._move(conn, other_id, keep_id)
            conn.execute("INSERT INTO aliases VALUES (%s, %s) ON CONFLICT (label) DO UPDATE SET person_id = "
                         "EXCLUDED.person_id", (other_label, keep_id))
            self._prune_templates(conn, keep_id)
            self._notify(conn, "people")
        return moved

    def _move(self, conn: Any, source: int, target: int) -> int:
        moved = conn.execute("UPDATE sightings SET person_id = %s WHERE person_id = %s", (target, source)).rowcount
        conn.execute("UPDATE templates SET person_id = %s WHERE person_id = %s", (target, source))
        conn.execute("UPDATE aliases SET person_id = %s WHERE person_id = %s", (target, source))
        conn.execute("DELETE FROM people WHERE id = %s", (source,))
        return int(moved)

    def _prune_templates(self, conn: Any, person_id: int) -> None:
        rows = conn.execute("SELECT id, embedding FROM templates WHERE person_id = %s ORDER BY id",
                            (person_id,)).fetchall()
        while len(rows) > self.max_templates:  # drop the most redundant template until the cap holds
            kept = np.stack([_vector(b) for _, b in rows])
            sims = kept @ kept.T
            np.fill_diagonal(sims, -2.0)
            worst = int(np.argmax(sims.max(axis=1)))
            conn.execute("DELETE FROM templates WHERE id = %s", (rows[worst][0],))
            rows.pop(worst)

    def _vacuum(self) -> None:
        """Let PostgreSQL reclaim the deleted rows' space now (plain VACUUM: workers keep writing meanwhile)."""
        with self._lock:
            try:
                self._conn.autocommit = True
                self._conn.execute("VACUUM people, aliases, templates, sightings")
                self._conn.autocommit = False
            except self._pg.Error as exc:
                log.warning("VACUUM of %s failed: %s", self.location, self._scrub(exc))

    def forget(self, label: str) -> int:
        with self._tx() as conn:
            person_id, _, _ = self._person(conn, label)
            erased = conn.execute("SELECT COUNT(*) FROM sightings WHERE person_id = %s", (person_id,)).fetchone()[0]
            conn.execute("DELETE FROM people WHERE id = %s", (person_id,))  # templates, sightings, aliases follow
            self._notify(conn, "people")
        self._vacuum()
        return int(erased)

    def purge(self, older_than: float) -> tuple[int, int]:
        with self._tx() as conn:
            sightings = conn.execute("DELETE FROM sightings WHERE ended < %s", (older_than,)).rowcount
            strangers = conn.execute(
                "DELETE FROM people WHERE NOT named AND created < %s AND NOT EXISTS "
                "(SELECT 1 FROM sightings s WHERE s.person_id = people.id)", (older_than,)).rowcount
            if sightings or strangers:
                self._notify(conn, "people")
        if sightings or strangers:
            self._vacuum()
        return int(sightings), int(strangers)

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
