"""The stranger bank: a few diverse templates per remembered person, and the strict match that decides whether a
new stranger is one of them.

A wrong match joins two people for good (their sightings, their name later), a missed one only leaves a person
under two IDs until `facetrack unknowns merge`: so the bank asks more than the gallery does — a similarity of at
least `bank_threshold` to the best person's closest template and a lead of `bank_margin` over the next person
(both per recognizer, in `identity.models`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BankMatch:
    label: str | None  # the remembered person, or None: a new stranger
    similarity: float
    runner_up: float


class StrangerBank:
    """Templates in memory, one matrix; per person the best template counts.

    A change to one person (`set`) touches only their rows: the old ones are marked dead, the new ones go into
    spare capacity at the end (the matrix doubles when full), and the dead are compacted away once they are half
    of it. A worker's reload after a change costs what changed, not the whole bank.
    """

    def __init__(self, threshold: float, margin: float) -> None:
        self.threshold = threshold
        self.margin = margin
        self._slot: dict[str, int] = {}  # label → slot
        self._names: list[str] = []  # slot → label
        self._rows: dict[int, list[int]] = {}  # slot → its rows in the matrix
        self._matrix = np.empty((0, 0), dtype=np.float32)  # capacity × D; rows [0, used) hold templates
        self._owner = np.empty(0, dtype=np.int64)  # row → slot; dead rows point past the last slot
        self._used = 0
        self._dead = 0

    def __len__(self) -> int:
        return len(self._slot)

    @property
    def labels(self) -> list[str]:
        return sorted(self._slot, key=_natural)

    def load(self, templates: list[tuple[str, np.ndarray]]) -> None:
        """Everything anew."""
        self.__init__(self.threshold, self.margin)  # type: ignore[misc]
        grouped: dict[str, list[np.ndarray]] = {}
        for label, v in templates:
            grouped.setdefault(label, []).append(v)
        self._append([(label, np.stack(vs)) for label, vs in grouped.items()])

    def set(self, label: str, templates: np.ndarray | None) -> None:
        """A person's templates now (K×D); None or none at all: they leave the bank."""
        self.update({label: templates})

    def update(self, people: dict[str, np.ndarray | None]) -> None:
        """`set` for several people at once."""
        for label in people:
            slot = self._slot.pop(label, None)
            if slot is not None:
                rows = self._rows.pop(slot)
                self._owner[rows] = -1
                self._dead += len(rows)
        self._append([(label, v) for label, v in people.items() if v is not None and len(v)])
        if self._dead > max(1024, self._used // 2):
            self._compact()

    def add(self, label: str, embedding: np.ndarray) -> None:
        """One more template of a person (a stranger minted, their track still open)."""
        slot = self._slot.get(label)
        rows = self._rows.get(slot, []) if slot is not None else []
        old = self._matrix[rows] if rows else np.empty((0, embedding.shape[0]), np.float32)
        self.set(label, np.concatenate([old, embedding.astype(np.float32)[None]]))

    def _append(self, people: list[tuple[str, np.ndarray]]) -> None:
        count = sum(len(v) for _, v in people)
        if not count:
            return
        dim = people[0][1].shape[1]
        if self._matrix.shape[1] != dim and self._used - self._dead == 0:
            self._matrix, self._owner, self._used, self._dead = (
                np.empty((0, dim), np.float32), np.empty(0, np.int64), 0, 0)
        if self._used + count > len(self._matrix):  # grow: double, or what is needed
            capacity = max(2 * len(self._matrix), self._used + count, 64)
            matrix = np.empty((capacity, dim), np.float32)
            matrix[:self._used] = self._matrix[:self._used]
            owner = np.full(capacity, -1, np.int64)
            owner[:self._used] = self._owner[:self._used]
            self._matrix, self._owner = matrix, owner
        for label, vectors in people:
            slot = len(self._names)
            self._names.append(label)
            self._slot[label] = slot
            rows = list(range(self._used, self._used + len(vectors)))
            self._matrix[self._used:self._used + len(vectors)] = vectors
            self._owner[rows] = slot
            self._rows[slot] = rows
            self._used += len(vectors)

    def _compact(self) -> None:
        alive = [(label, self._matrix[self._rows[slot]]) for label, slot in self._slot.items()]
        dim = self._matrix.shape[1]
        self.__init__(self.threshold, self.margin)  # type: ignore[misc]
        self._matrix = np.empty((0, dim), np.float32)
        self._append(alive)

    def similarities(self, embedding: np.ndarray) -> dict[str, float]:
        """Per person, the best similarity over their templates."""
        if not self._slot:
            return {}
        best = np.full(len(self._names) + 1, -1.0, dtype=np.float32)
        owner = self._owner[:self._used].copy()
        owner[owner < 0] = len(self._names)  # the dead go to a slot nobody reads
        np.maximum.at(best, owner, self._matrix[:self._used] @ embedding.astype(np.float32))
        return {label: float(best[slot]) for label, slot in self._slot.items()}

    def match(self, embedding: np.ndarray) -> BankMatch:
        if not self._slot:
            return BankMatch(None, -1.0, -1.0)
        best = np.full(len(self._names) + 1, -1.0, dtype=np.float32)
        owner = self._owner[:self._used]
        if self._dead:
            owner = np.where(owner < 0, len(self._names), owner)
        np.maximum.at(best, owner, self._matrix[:self._used] @ embedding.astype(np.float32))
        best[-1] = -2.0
        order = np.argsort(-best)
        first = float(best[order[0]])
        second = float(best[order[1]]) if len(self._slot) > 1 else -1.0
        ok = first >= self.threshold and first - second >= self.margin
        return BankMatch(self._names[int(order[0])] if ok else None, first, second)


def template_slot(kept: np.ndarray, new: np.ndarray, cap: int, diversity: float) -> int | None:
    """Where a new template goes among a person's `kept` ones (K×D): `len(kept)` to add it, an index to replace
    that template, None when it adds nothing (as close as `diversity` to one kept, or less diverse than them all).

    At the cap the most redundant kept template (the one closest to another) makes room, if the new one is less
    redundant than it: the templates spread over the looks a person has shown (light, pose, glasses).
    """
    if len(kept) == 0:
        return 0
    to_new = kept @ new.astype(np.float32)
    if float(to_new.max()) >= diversity:
        return None
    if len(kept) < cap:
        return len(kept)
    sims = kept @ kept.T
    np.fill_diagonal(sims, -2.0)
    redundancy = sims.max(axis=1)
    worst = int(np.argmax(redundancy))
    # Without the worst one, how close would the new template be to the rest?
    others = np.delete(to_new, worst)
    new_redundancy = float(others.max()) if len(others) else -1.0
    return worst if new_redundancy < float(redundancy[worst]) else None


def _natural(label: str) -> tuple[int, str]:
    tail = label.rsplit("-", 1)[-1]
    return (int(tail), label) if tail.isdigit() else (-1, label)
