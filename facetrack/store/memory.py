"""What a run remembers and writes: persistent stranger IDs and one sighting per track.

`IdentityMemory` is shared by every camera of a run (one store, one bank, one lock). The identity stage asks it
for a stranger's ID at the moment a track is decided unknown: the track's mean embedding is matched against the
bank (strictly, see bank.py) and gets that person's ID, or a new `unknown-N` is minted. `SightingLog` follows the
tracks of one camera (span, looks, best crop); when a track ends its sighting is written, and a stranger's mean
becomes one of their templates when it rests on at least `store.min_looks` looks.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from facetrack.config import FacetrackConfig, RecognizerThresholds, StoreConfig
from facetrack.embed import FaceEmbedder
from facetrack.errors import FacetrackError
from facetrack.gallery import Gallery
from facetrack.store import Recognizer, Sighting, Store, is_stranger, open_store
from facetrack.store.bank import StrangerBank
from facetrack.store.sql import Identity
from facetrack.types import IDENTITY, IGNORED

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


class IdentityMemory:
    """The store as one run sees it; safe to call from several threads.

    It keeps every person of the store in memory (label, named, ignored, templates, former labels) and follows
    the store's change journal: after a change made anywhere — this run, another worker, the CLI, the review page
    — it reloads only the people the journal names (`refresh`), and the pipelines take the new gallery when
    `version` moves. The store calls `refresh` from its own thread (PostgreSQL: on NOTIFY; SQLite: within a second
    of a commit to the file), and this run calls it after its own writes.
    """

    def __init__(self, store: Store, config: StoreConfig, thresholds: RecognizerThresholds, recognizer: Recognizer,
                 run_id: str | None = None) -> None:
        store.bind_recognizer(recognizer)  # another model's store is refused before anything is written
        self.store = store
        self.config = config
        self.recognizer = recognizer
        self.thresholds = thresholds
        self.run_id = run_id or new_run_id()
        self.bank = StrangerBank(thresholds.bank_threshold, thresholds.bank_margin)
        self._provisional: dict[str, np.ndarray] = {}  # minted here, track still open: their decision means
        self._handed: Counter[str] = Counter()  # how many tracks of this run were given each ID
        self._lock = threading.RLock()
        self.minted = 0
        self.matched = 0
        self.written = 0
        # `version` tells the pipelines to take the new gallery (named people or former labels changed).
        self.version = 0
        self.reloads = 0  # refreshes that found something changed
        self.base_gallery: Gallery | None = None
        self._people: dict[int, Identity] = {}  # the store's people by id, as last read
        self._ids: dict[str, int] = {}  # label → id
        self._seq: int | None = None  # the journal entry the cache is up to (None: nothing read yet)
        self.renamed: dict[str, str] = {}  # former stranger labels → the label they answer to now
        self.ignored: frozenset[str] = frozenset()  # labels whose events say `ignored` (and are never alerted)
        self._unfiled: set[str] = set()  # strangers shown while a shared store was away, never written
        # Where each gallery name is: camera → None while on screen there, else the wall time it left.
        self._present: dict[str, dict[str, float | None]] = {}
        self._present_lock = threading.Lock()
        self.refresh()
        subscribe = getattr(store, "subscribe", None)
        if subscribe is not None:
            subscribe(self.refresh, on_presence=self._heard)

    def refresh(self) -> bool:
        """Catch up with the store's change journal: reload the people changed since the last call (everyone the
        first time). Returns whether anything changed."""
        with self._lock:
            head, changed = self.store.changes(self._seq)
            if changed is not None and not changed:
                self._seq = head
                return False
            found = self.store.identities(changed)
            if changed is None:  # everyone: what is no longer there goes too
                found = {**dict.fromkeys(self._people), **found}
            named_moved = self._apply(found)
            self._seq = head
            self.reloads += 1
            if named_moved:
                self.version += 1
        log.info("store changed: %d people reloaded", len(found))
        return True

    def reload(self) -> None:
        """Everything from the store again."""
        with self._lock:
            self._seq = None
            self.refresh()

    def _apply(self, found: dict[int, Identity | None]) -> bool:
        """Put the people just read in place of what was known of them; returns whether named people or former
        labels changed (the pipelines' gallery and renames)."""
        named_moved = False
        bank: dict[str, np.ndarray | None] = {}
        renamed, ignored = dict(self.renamed), set(self.ignored)
        for person_id, now in found.items():
            old = self._people.pop(person_id, None)
            if old is not None:
                self._ids.pop(old.label, None)
                ignored.discard(old.label)
                for alias in old.aliases:
                    renamed.pop(alias, None)
                named_moved = named_moved or old.named or bool(old.aliases)
                if not old.named:
                    bank[old.label] = None
            if now is None:
                continue
            self._people[person_id] = now
            self._ids[now.label] = person_id
            if now.ignored:
                ignored.add(now.label)
            for alias in now.aliases:
                renamed[alias] = now.label
            named_moved = named_moved or now.named or bool(now.aliases)
            if not now.named:
                bank[now.label] = self._bank_rows(now.label, now.templates)
        self.bank.update(bank)
        self.renamed, self.ignored = renamed, frozenset(ignored)
        return named_moved

    def _bank_rows(self, label: str, templates: np.ndarray) -> np.ndarray | None:
        """A stranger's rows in the bank: their stored templates, and the decision mean of a track of this run
        still open (not yet stored as a template)."""
        extra = self._provisional.get(label)
        if extra is None:
            return templates if len(templates) else None
        return extra[None].astype(np.float32) if not len(templates) else np.concatenate([templates, extra[None]])

    def _rebank(self, label: str) -> None:
        person = self._people.get(self._ids.get(label, -1))
        stored = person.templates if person is not None and not person.named else np.empty((0, 0), np.float32)
        self.bank.set(label, self._bank_rows(label, stored))

    def mark(self, events: list[dict[str, object]], detections: object | None = None) -> None:
        """Events about ignored people say `"ignored": true`, and so do their faces in frame events (the
        `IGNORED` column of `detections`)."""
        ignored = self.ignored
        if not ignored:
            return
        for event in events:
            if event.get("identity") in ignored:
                event["ignored"] = True
        data = getattr(detections, "data", None)
        if data is not None and IDENTITY in data:
            marks = np.array([name in ignored for name in data[IDENTITY]], dtype=bool)
            if marks.any():
                data[IGNORED] = marks

    def arrived(self, name: str, camera: str) -> list[str]:
        """A gallery name decided on `camera`: the other cameras where it is on screen now, or that it left less
        than `store.duplicate_window_s` ago (one person cannot be in two places: a possible duplicate)."""
        if self.config.duplicate_window_s <= 0:
            return []
        now = time.time()
        with self._present_lock:
            seen = self._present.setdefault(name, {})
            others = sorted(c for c, left in seen.items()
                            if c != camera and (left is None or now - left <= self.config.duplicate_window_s))
            seen[camera] = None
        self._announce(name, camera, None)
        return others

    def left(self, name: str, camera: str) -> None:
        """A gallery name's track on `camera` ended."""
        if self.config.duplicate_window_s <= 0:
            return
        now = time.time()
        with self._present_lock:
            self._present.setdefault(name, {})[camera] = now
        self._announce(name, camera, now)

    def _announce(self, name: str, camera: str, left: float | None) -> None:
        announce = getattr(self.store, "announce", None)
        if announce is not None:  # the other workers of a shared store hear of it
            announce(name, camera, left)

    def _heard(self, name: str, camera: str, left: float | None) -> None:
        with self._present_lock:
            self._present.setdefault(name, {})[camera] = left

    def gallery(self) -> Gallery | None:
        """The run's gallery joined with the store's named people as they are now."""
        people = self.people()
        if people is None:
            return self.base_gallery
        return people if self.base_gallery is None else self.base_gallery.joined(people)

    def people(self) -> Gallery | None:
        """The store's named people as a gallery, each held to the bank threshold (their templates are video)."""
        with self._lock:
            named = sorted((p for p in self._people.values() if p.named and len(p.templates)),
                           key=lambda p: p.label)
        if not named:
            return None
        names = [p.label for p in named]
        owners = np.concatenate([np.full(len(p.templates), i) for i, p in enumerate(named)])
        return Gallery(names, owners, np.concatenate([p.templates for p in named]), self.recognizer.fingerprint,
                       self.recognizer.name, Path(self.store.location),
                       floors=np.full(len(names), self.thresholds.bank_threshold, dtype=np.float32))

    def resembles(self, mean: np.ndarray, k: int = 2) -> list[tuple[str, float]]:
        """The `k` remembered strangers most like `mean`, best first, with their similarities (what a stranger's
        decision is explained by)."""
        with self._lock:
            best = sorted(self.bank.similarities(mean).items(), key=lambda pair: -pair[1])[:k]
            return [(label, float(sim)) for label, sim in best]

    def stranger_label(self, mean: np.ndarray, looks: int) -> str:
        """The persistent ID of a track just decided unknown: a remembered stranger it matches, or a new one.
        The store decides under its lock, against every worker's strangers as they are at that moment."""
        with self._lock:
            try:
                label, match, minted = self.store.match_or_mint(mean, self.bank, self.refresh)
            except FacetrackError as exc:  # a shared store away and no number left in hand: run-local
                label = f"unknown-offline-{len(self._unfiled) + 1}"
                self._unfiled.add(label)
                log.warning("%s: %s is shown but not remembered", exc, label)
                return label
            self._handed[label] += 1
            if minted:
                self.minted += 1
                self._provisional[label] = mean.astype(np.float32).copy()
                self._rebank(label)
                log.info("new stranger %s (closest remembered: %.2f, %d looks)", label, match.similarity, looks)
            else:
                self.matched += 1
                log.info("stranger matches %s (similarity %.2f, next %.2f, %d looks)", label, match.similarity,
                         match.runner_up, looks)
            return label

    def record(self, sighting: Sighting, template: bool = True) -> str | None:
        """Write a sighting as its track ends; returns the label it was filed under (None: forgotten meanwhile).
        A stranger's mean becomes a template when `template` and it rests on `store.min_looks` looks."""
        bank = template and is_stranger(sighting.identity) and sighting.looks >= self.config.min_looks
        if sighting.identity in self._unfiled:
            return None
        with self._lock:
            filed = self.store.record(sighting, template=bank)
            self.written += 1
            if self._provisional.pop(sighting.identity, None) is not None:
                self._rebank(sighting.identity)  # the stored templates, without the decision mean
            self._catch_up()
        return filed

    def discard(self, label: str) -> None:
        """A stranger minted by this run whose only track ended as someone else leaves no empty ID behind."""
        with self._lock:
            if label in self._provisional and self._handed[label] == 1:
                del self._provisional[label]
                self.store.discard_stranger(label)
                self._rebank(label)
                self._catch_up()

    def _catch_up(self) -> None:
        try:
            self.refresh()
        except FacetrackError as exc:  # a shared store away: its reconnection catches up
            log.debug("%s", exc)

    def history(self, label: str) -> dict[str, object]:
        """For alerts: when this person was first seen and how often, counting the sighting now under way."""
        try:
            person = self.store.person(label)
        except FacetrackError:  # a shared store out of reach: counted from nothing
            person = None
        first = person.first_seen if person is not None and person.first_seen is not None else time.time()
        return {"first_seen": datetime.fromtimestamp(first, timezone.utc).isoformat(timespec="seconds"),
                "times_seen": (person.sightings if person is not None else 0) + 1}

    def close(self) -> None:
        self.store.close()


def open_memory(config: FacetrackConfig, embedder: FaceEmbedder, path: Path | None = None) -> IdentityMemory:
    """The identity memory at `path` (default `store.path`) for runs with this recognizer."""
    where = path or config.store.path
    if where is None:
        raise ValueError("no store path: pass one or set store.path")
    store = open_store(where, max_templates=config.store.max_templates, diversity=config.store.template_diversity)
    recognizer = Recognizer(embedder.fingerprint, embedder.name, str(embedder.model_path.resolve()), embedder.dim)
    try:
        return IdentityMemory(store, config.store, config.identity.thresholds_for(embedder.name), recognizer)
    except BaseException:
        store.close()
        raise


@dataclass
class _Span:
    pts_start: float
    pts_end: float
    started: float  # wall clock
    ended: float
    best_quality: float = -1.0
    best_crop: np.ndarray | None = None
    quality_sum: float = 0.0
    looks: int = 0


class SightingLog:
    """The open tracks of one camera: when they were seen, and their best-looking aligned face."""

    def __init__(self, camera: str, crop_quality: int = 85) -> None:
        self.camera = camera
        self.crop_quality = crop_quality
        self._spans: dict[int, _Span] = {}
        self._wall_offset = time.time() - time.monotonic()  # frame arrival (monotonic) → wall clock

    def seen(self, track_ids: list[int], pts: float, arrival: float) -> None:
        wall = arrival + self._wall_offset
        for track_id in track_ids:
            span = self._spans.get(track_id)
            if span is None:
                self._spans[track_id] = _Span(pts, pts, wall, wall)
            else:
                span.pts_end, span.ended = pts, wall

    def looked(self, track_id: int, crop: np.ndarray, quality: float) -> None:
        span = self._spans.get(track_id)
        if span is None:
            return
        span.looks += 1
        span.quality_sum += quality
        if quality > span.best_quality:
            span.best_quality, span.best_crop = quality, crop

    def close(self, track_id: int, identity: str | None, mean: np.ndarray | None, looks: int,
              run_id: str) -> Sighting | None:
        """The sighting of an ended track (None if it never had an identity)."""
        span = self._spans.pop(track_id, None)
        if span is None or identity is None:
            return None
        crop = None
        if span.best_crop is not None:
            ok, data = cv2.imencode(".jpg", span.best_crop, [cv2.IMWRITE_JPEG_QUALITY, self.crop_quality])
            crop = data.tobytes() if ok else None
        return Sighting(identity, self.camera, run_id, track_id, span.started, span.ended, span.pts_start,
                        span.pts_end, looks, mean, crop, quality=span.quality_sum / max(span.looks, 1))
