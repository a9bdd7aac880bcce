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

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


class IdentityMemory:
    """The store as one run sees it; safe to call from several threads."""

    def __init__(self, store: Store, config: StoreConfig, thresholds: RecognizerThresholds, recognizer: Recognizer,
                 run_id: str | None = None) -> None:
        store.bind_recognizer(recognizer)  # another model's store is refused before anything is written
        self.store = store
        self.config = config
        self.recognizer = recognizer
        self.thresholds = thresholds
        self.run_id = run_id or new_run_id()
        self.bank = StrangerBank(thresholds.bank_threshold, thresholds.bank_margin)
        self._provisional: dict[str, np.ndarray] = {}  # minted here, track still open: not yet in the store
        self._handed: Counter[str] = Counter()  # how many tracks of this run were given each ID
        self._lock = threading.Lock()
        self.minted = 0
        self.matched = 0
        self.written = 0
        # A shared store (PostgreSQL) announces changes: the bank and the store's named people are reloaded
        # from a listener thread, and `version` tells the pipelines to take the new gallery.
        self.version = 0
        self.base_gallery: Gallery | None = None
        self._named: list[tuple[str, np.ndarray]] | None = None
        self.renamed: dict[str, str] = {}  # former stranger labels → the label they answer to now
        self._unfiled: set[str] = set()  # strangers shown while a shared store was away, never written
        # Where each gallery name is: camera → None while on screen there, else the wall time it left.
        self._present: dict[str, dict[str, float | None]] = {}
        self._present_lock = threading.Lock()
        self._refresh()
        subscribe = getattr(store, "subscribe", None)
        self._shared = subscribe is not None  # its listener reloads after every change, ours included
        if subscribe is not None:
            subscribe(self.reload, on_presence=self._heard)

    def reload(self) -> None:
        """Everything from the store again: the bank and the named people (another worker or a command changed
        them)."""
        with self._lock:
            templates = self._reload()
            self._named = [(label, v) for label, named, v in templates if named]
            aliases = getattr(self.store, "aliases", None)
            self.renamed = aliases() if aliases is not None else {}
            self.version += 1
        log.info("store changed: %d templates reloaded", len(templates))

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

    def _refresh(self) -> None:
        """Reload the bank when the store changed (another process minted or banked meanwhile)."""
        if self.store.changed():
            self._reload()

    def _reload(self) -> list[tuple[str, bool, np.ndarray]]:
        """The bank: the store's strangers' templates, and the decision means of strangers minted here whose
        tracks are still open. Returns every template read."""
        templates = self.store.templates()
        self.bank.load([(label, v) for label, named, v in templates if not named])
        for label, mean in self._provisional.items():
            self.bank.add(label, mean)
        return templates

    def people(self) -> Gallery | None:
        """The store's named people as a gallery, each held to the bank threshold (their templates are video)."""
        named = self._named if self._named is not None else [
            (label, v) for label, is_named, v in self.store.templates() if is_named]
        if not named:
            return None
        names = sorted({label for label, _ in named})
        index = {name: i for i, name in enumerate(names)}
        return Gallery(names, np.array([index[label] for label, _ in named]), np.stack([v for _, v in named]),
                       self.recognizer.fingerprint, self.recognizer.name, Path(self.store.location),
                       floors=np.full(len(names), self.thresholds.bank_threshold, dtype=np.float32))

    def resembles(self, mean: np.ndarray, k: int = 2) -> list[tuple[str, float]]:
        """The `k` remembered strangers most like `mean`, best first, with their similarities (what a stranger's
        decision is explained by)."""
        with self._lock:
            sims = self.bank.similarities(mean)
            return [(self.bank.labels[int(i)], float(sims[i])) for i in np.argsort(-sims)[:k]]

    def stranger_label(self, mean: np.ndarray, looks: int) -> str:
        """The persistent ID of a track just decided unknown: a remembered stranger it matches, or a new one."""
        with self._lock:
            decide = getattr(self.store, "match_or_mint", None)
            if decide is not None:  # a shared store decides under its lock, against every worker's strangers
                try:
                    label, match, minted = decide(mean, self.bank)
                except FacetrackError as exc:  # the database away and no number left in hand: run-local
                    label = f"unknown-offline-{len(self._unfiled) + 1}"
                    self._unfiled.add(label)
                    log.warning("%s: %s is shown but not remembered", exc, label)
                    return label
                self._handed[label] += 1
                if minted:
                    self.minted += 1
                    self._provisional[label] = mean.copy()
                    log.info("new stranger %s (closest remembered: %.2f, %d looks)", label, match.similarity, looks)
                else:
                    self.matched += 1
                    log.info("stranger matches %s (similarity %.2f, next %.2f, %d looks)", label, match.similarity,
                             match.runner_up, looks)
                return label
            self._refresh()
            match = self.bank.match(mean)
            if match.label is not None:
                self.matched += 1
                self._handed[match.label] += 1
                log.info("stranger matches %s (similarity %.2f, next %.2f, %d looks)", match.label, match.similarity,
                         match.runner_up, looks)
                return match.label
            label = self.store.mint_stranger()
            self.minted += 1
            self._provisional[label] = mean.copy()
            self._handed[label] += 1
            self.bank.add(label, mean)
            log.info("new stranger %s (closest remembered: %.2f, %d looks)", label, match.similarity, looks)
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
            if (self._provisional.pop(sighting.identity, None) is not None or bank) and not self._shared:
                self._reload()  # the stranger's final template replaces the decision mean
        return filed

    def discard(self, label: str) -> None:
        """A stranger minted by this run whose only track ended as someone else leaves no empty ID behind."""
        with self._lock:
            if label in self._provisional and self._handed[label] == 1:
                del self._provisional[label]
                self.store.discard_stranger(label)
                if not self._shared:
                    self._reload()

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
