"""A gallery in memory, matched against embeddings: the best person, the top few, one name per face of a photo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from facetrack.embed import FaceEmbedder
from facetrack.errors import FacetrackError


@dataclass(frozen=True)
class Match:
    """The best gallery person for one embedding."""

    name: str | None  # best person, or None when the gallery is empty
    similarity: float
    runner_up: str | None
    runner_up_similarity: float

    @property
    def margin(self) -> float:
        return self.similarity - self.runner_up_similarity


class Gallery:
    """Enrolled people, held in memory for matching (per person: one row per template).

    `floors` optionally holds, per person, a similarity below which a best match on them counts as no match:
    people named from video (the store's) are held to the stricter bank threshold, photo-enrolled ones are not.
    """

    def __init__(self, names: list[str], person_of_template: np.ndarray, templates: np.ndarray,
                 fingerprint: str, model_name: str, path: Path | None = None,
                 floors: np.ndarray | None = None) -> None:
        self.names = names
        self._owner = person_of_template  # template row → index into names
        self._templates = templates  # T×D unit vectors
        self.fingerprint = fingerprint
        self.model_name = model_name
        self.path = path
        self.floors = floors

    def joined(self, other: Gallery) -> Gallery:
        """Both galleries' people in one (a name in both keeps every template, and the lower floor)."""
        names = sorted(set(self.names) | set(other.names))
        index = {name: i for i, name in enumerate(names)}
        floors = np.full(len(names), -1.0, dtype=np.float32)
        mine = self.floors if self.floors is not None else np.full(len(self.names), -1.0)
        theirs = other.floors if other.floors is not None else np.full(len(other.names), -1.0)
        seen: set[str] = set()
        for gallery, own in ((self, mine), (other, theirs)):
            for name, floor in zip(gallery.names, own, strict=True):
                floors[index[name]] = floor if name not in seen else min(floors[index[name]], floor)
                seen.add(name)
        owners = np.concatenate([[index[self.names[i]] for i in self._owner],
                                 [index[other.names[i]] for i in other._owner]]).astype(int)
        templates = np.concatenate([self._templates, other._templates]).astype(np.float32)
        return Gallery(names, owners, templates, self.fingerprint, self.model_name, self.path,
                       floors if (floors > -1.0).any() else None)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        return int(self._templates.shape[1]) if self._templates.size else 0

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """N×P: per embedding and person, the best similarity over that person's templates."""
        per_template = np.atleast_2d(embeddings) @ self._templates.T
        best = np.full((per_template.shape[0], len(self.names)), -1.0, dtype=np.float32)
        np.maximum.at(best.T, self._owner, per_template.T)  # max over each person's templates, no Python loop
        return best

    def match(self, embedding: np.ndarray) -> Match:
        sims = self.similarities(embedding)[0]
        if len(sims) == 0:
            return Match(None, -1.0, None, -1.0)
        order = np.argsort(-sims)
        first = int(order[0])
        second = int(order[1]) if len(order) > 1 else None
        if self.floors is not None and sims[first] < self.floors[first]:
            return Match(None, float(sims[first]), None, -1.0)  # closest to someone held to a higher bar
        return Match(self.names[first], float(sims[first]),
                     self.names[second] if second is not None else None,
                     float(sims[second]) if second is not None else -1.0)

    def top(self, embedding: np.ndarray, k: int = 2) -> list[tuple[str, float]]:
        """The `k` people most similar to `embedding`, best first, with their similarities (as they are: no
        threshold, no floor): what a decision was made from."""
        sims = self.similarities(embedding)[0]
        return [(self.names[int(i)], float(sims[i])) for i in np.argsort(-sims)[:k]]

    def identify(self, embeddings: np.ndarray, threshold: float, margin: float) -> list[tuple[str | None, float]]:
        """Name (or None) and similarity per embedding of one image; a name goes to one face at most.

        A face is a candidate for its best person when the similarity clears `threshold` by `margin` over the
        next person; when two faces want the same person, the assignment with the most similarity wins.
        """
        sims = self.similarities(embeddings)
        names: list[tuple[str | None, float]] = [(None, float(row.max(initial=-1.0))) for row in sims]
        if len(sims) == 0 or len(self.names) == 0:
            return names
        ordered = np.sort(sims, axis=1)
        second = ordered[:, -2] if sims.shape[1] > 1 else np.full(len(sims), -1.0)
        eligible = (sims >= threshold) & (sims - second[:, None] >= margin)
        faces, people = linear_sum_assignment(np.where(eligible, sims, -10.0), maximize=True)
        for face, person in zip(faces, people, strict=True):
            if eligible[face, person]:
                names[face] = (self.names[person], float(sims[face, person]))
        return names

    def check_model(self, embedder: FaceEmbedder) -> None:
        check_fingerprint(self.fingerprint, self.model_name, embedder, self.path)


def check_fingerprint(fingerprint: str, model_name: str, embedder: FaceEmbedder, where: Path | None) -> None:
    """Embeddings of two models are not comparable: a mismatch is an error, never a silent comparison."""
    if fingerprint != embedder.fingerprint:
        where = where or Path("the gallery")
        raise FacetrackError(
            f"{where} was built with recognizer {model_name} ({fingerprint[:12]}), not with "
            f"{embedder.name} ({embedder.fingerprint[:12]}): rebuild it with "
            f"`facetrack gallery build PHOTOS_DIR -o {where} --recognizer {embedder.model_path}`"
        )
