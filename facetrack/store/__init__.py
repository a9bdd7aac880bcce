"""Who was seen when: people, persistent strangers and sightings, kept across runs and cameras.

`Store` is the interface the rest of facetrack uses; `SqliteStore` (one embedded file) and `PostgresStore` (several
machines) implement it, their SQL shared in sql.py. `IdentityMemory` (memory.py) is what a run uses: it
matches strangers against the bank, mints new `unknown-N`, and writes a sighting when a track ends.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from facetrack.store.bank import BankMatch, StrangerBank
    from facetrack.store.sql import Identity, Template

STRANGER_PREFIX = "unknown-"


def is_stranger(label: str) -> bool:
    return label.startswith(STRANGER_PREFIX) and label[len(STRANGER_PREFIX):].isdigit()


@dataclass
class Sighting:
    """One track of one person on one camera."""

    identity: str  # final identity: a name or unknown-N
    camera: str
    run_id: str
    track_id: int
    started: float  # wall clock, Unix seconds
    ended: float
    pts_start: float  # the stream's clock, seconds
    pts_end: float
    looks: int  # embeddings the identity rests on
    embedding: np.ndarray | None = None  # quality-weighted mean, unit length
    crop: bytes | None = None  # the best aligned face, JPEG
    quality: float = 0.0  # mean quality of the looks
    id: int | None = None

    @property
    def seconds(self) -> float:
        return max(0.0, self.pts_end - self.pts_start)


@dataclass(frozen=True)
class PersonSummary:
    label: str
    named: bool
    sightings: int
    templates: int
    first_seen: float | None
    last_seen: float | None
    cameras: list[str]
    ignored: bool = False  # still recognised; events say so, alerts skip them


@dataclass(frozen=True)
class Recognizer:
    """The model a store's embeddings come from: only embeddings of the same model are ever compared."""

    fingerprint: str
    name: str
    path: str
    dim: int


class Store(Protocol):
    """Persistent identities and sightings. Every method is one transaction; any number of processes may share
    a store."""

    location: str

    def bind_recognizer(self, recognizer: Recognizer) -> None:
        """Record the recognizer on first use; refuse (FacetrackError) a store made with another one."""
        ...

    def recognizer(self) -> Recognizer | None: ...

    def changes(self, since: int | None) -> tuple[int, set[int] | None]:
        """(the change journal's newest entry, the ids of the people changed after entry `since`); None instead of
        the ids when everyone must be read again."""
        ...

    def identities(self, ids: Collection[int] | None = None) -> dict[int, Identity | None]:
        """The people `ids` (None: everyone) as they are now, templates included; None for an id gone."""
        ...

    def subscribe(self, callback: Callable[[], None], **options: Any) -> None:
        """Call `callback` from a thread of the store's soon after anyone changed it (PostgreSQL: NOTIFY;
        SQLite: the file's commits, polled once a second)."""
        ...

    def templates(self) -> list[tuple[str, bool, np.ndarray]]:
        """(label, named, embedding) of every template."""
        ...

    def mint_stranger(self) -> str:
        """A new `unknown-N`, from a counter that never gives a number twice."""
        ...

    def match_or_mint(self, mean: np.ndarray, bank: StrangerBank,
                      catch_up: Callable[[], object] = ...) -> tuple[str, BankMatch, bool]:
        """The persistent ID of a track decided unknown, decided under the store's lock: (label, match, minted)."""
        ...

    def discard_stranger(self, label: str) -> None:
        """Delete a stranger who has neither sightings nor templates (an ID minted for a track that then turned
        out to be someone else); the number is not given again."""
        ...

    def record(self, sighting: Sighting, template: bool) -> str | None:
        """Write a sighting; with `template`, its mean may become one of the person's templates. Returns the label
        it was filed under (another one when the stranger was named or merged meanwhile), None when the person was
        forgotten meanwhile (nothing is written)."""
        ...

    def people(self) -> list[PersonSummary]: ...

    def person(self, label: str) -> PersonSummary | None:
        """One person by label or former label (a stranger since named or merged)."""
        ...

    def sightings(self, label: str, since: float | None = None, camera: str | None = None) -> list[Sighting]: ...

    def name(self, stranger: str, name: str) -> str:
        """A stranger becomes a named person (their templates and sightings go with them). Returns the name."""
        ...

    def merge(self, keep: str, other: str) -> int:
        """`other` goes into `keep`; returns the number of sightings moved."""
        ...

    def ignore(self, label: str, ignored: bool = True) -> str:
        """Mark a person ignored (still recognised, never alerted) or no longer; returns their label."""
        ...

    def person_templates(self, label: str) -> list[Template]: ...

    def remove_template(self, label: str, template_id: int) -> int:
        """Delete one template of a person; returns how many they have left."""
        ...

    def forget(self, label: str) -> int:
        """Erase a person and everything of theirs, leaving no bytes of it in the store; returns the sightings
        erased."""
        ...

    def purge(self, older_than: float) -> tuple[int, int]:
        """Delete sightings that ended before `older_than` (Unix seconds) and strangers left with none; returns
        (sightings, strangers) deleted."""
        ...

    def close(self) -> None: ...


def open_store(location: str | Path, create: bool = True, **options: float) -> Store:
    """The store at `location`: a `postgresql://user@host:port/db` URL (several machines share it), else an
    SQLite file (created private when missing and `create`). `options`: max_templates, diversity."""
    from facetrack.store.postgres import PostgresStore, is_postgres_url

    if is_postgres_url(location):
        return PostgresStore(str(location), create=create, **options)  # type: ignore[arg-type]
    from facetrack.store.sqlite import SqliteStore

    return SqliteStore(Path(location).expanduser(), create=create, **options)  # type: ignore[arg-type]
