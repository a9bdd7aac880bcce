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
    """Templates in memory, one matrix; per person the best template counts."""

    def __init__(self, threshold: float, margin: float) -> None:
        self.threshold = threshold
        self.margin = margin
        self.labels: list[str] = []
        self._owner = np.empty(0, dtype=int)
        self._templates = np.empty((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, templates: list[tuple[str, np.ndarray]]) -> None:
        self.labels = sorted({label for label, _ in templates}, key=_natural)
        index = {label: i for i, label in enumerate(self.labels)}
        self._owner = np.array([index[label] for label, _ in templates], dtype=int)
        self._templates = (np.stack([v for _, v in templates]).astype(np.float32) if templates
                           else np.empty((0, 0), dtype=np.float32))

    def add(self, label: str, embedding: np.ndarray) -> None:
        """A template known to this run before the store has it (a stranger minted, their track still open)."""
        if label not in self.labels:
            self.labels.append(label)
        owner = self.labels.index(label)
        vector = embedding.astype(np.float32)[None]
        self._templates = vector if self._templates.size == 0 else np.concatenate([self._templates, vector])
        self._owner = np.append(self._owner, owner)

    def similarities(self, embedding: np.ndarray) -> np.ndarray:
        """Per person, the best similarity over their templates."""
        best = np.full(len(self.labels), -1.0, dtype=np.float32)
        if self._templates.size:
            np.maximum.at(best, self._owner, self._templates @ embedding.astype(np.float32))
        return best

    def match(self, embedding: np.ndarray) -> BankMatch:
        sims = self.similarities(embedding)
        if len(sims) == 0:
            return BankMatch(None, -1.0, -1.0)
        order = np.argsort(-sims)
        first = float(sims[order[0]])
        second = float(sims[order[1]]) if len(order) > 1 else -1.0
        ok = first >= self.threshold and first - second >= self.margin
        return BankMatch(self.labels[int(order[0])] if ok else None, first, second)


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
