"""Per-track identity: evidence over time, decisions with hysteresis, one name per face, anonymous IDs, re-linking.

Each track keeps a quality-weighted running mean of its embeddings (older evidence decays). At every new
embedding the mean is matched against the gallery; a name is a *candidate* only with similarity ≥ threshold and
a margin over the next person. A track decides after `min_evidence` agreeing observations (strangers need one
more), changes a decided identity only after `switch_evidence` consecutive observations for another, and when
the recent evidence splits between two identities it says so (`conflict`) instead of flickering.

A gallery name is never shown on two faces of the same frame: the track with the stronger evidence keeps it,
the other goes back to undecided. When a track ends, its identity and mean embedding are remembered for
`relink_memory` seconds; a new track that matches one of them takes that identity back (names and `unknown-N`
alike), so a person who leaves and returns, or is lost behind an occlusion or a cut, keeps their ID.

Every decision explains itself: an identity event carries the two gallery people (and, for a stranger with an
identity memory, the remembered strangers) most like the track's evidence, and a face shown without an identity
says why (`reasons`: a quality gate, not enough looks, below the threshold, within the margin, a conflict).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from facetrack.config import IdentityConfig, RecognizerThresholds
from facetrack.gallery import Gallery, Match
from facetrack.types import IdentityEvent, identity_event

State = Literal["pending", "known", "unknown", "conflict"]
Verdict = Literal["same", "doubt", "other"]  # a decided track's new look against its own mean
STRANGER = "<stranger>"  # candidate value: matches no gallery person well enough
# Why a face shows no identity (types.REASON): a quality gate kept it from being embedded (small, blurred, turned),
# not enough looks yet (pending), the best gallery match too weak (below_threshold) or too close to the next
# (margin), or its looks split between two people or its name is on another face with stronger evidence (conflict).
Reason = Literal["small", "blurred", "turned", "pending", "below_threshold", "margin", "conflict"]


@dataclass
class TrackIdentity:
    track_id: int
    state: State = "pending"
    label: str | None = None  # gallery name or unknown-N, once decided
    similarity: float | None = None  # to the named person, for known tracks
    evidence: np.ndarray | None = None  # decayed, quality-weighted sum of embeddings
    observations: int = 0
    candidates: deque[str] = field(default_factory=deque)  # recent candidates, newest last (bounded deque)
    anonymous: str | None = None  # the unknown-N this track was given, kept if it is a stranger again
    relinked_from: int | None = None
    doubts: list[tuple[np.ndarray, float]] = field(default_factory=list)  # recent looks unlike its own mean
    changed: bool = False  # its face changed at once (tracker) since its last look that matched it
    why: Reason | None = None  # why its last look named no one: below_threshold | margin | conflict (None: it did)

    @property
    def mean(self) -> np.ndarray:
        assert self.evidence is not None
        return self.evidence / max(float(np.linalg.norm(self.evidence)), 1e-12)

    @property
    def decided(self) -> bool:
        return self.state in ("known", "unknown")

    def streak(self) -> tuple[str | None, int]:
        """The latest candidate and how many observations in a row agree on it."""
        if not self.candidates:
            return None, 0
        last = self.candidates[-1]
        count = 0
        for candidate in reversed(self.candidates):
            if candidate != last:
                break
            count += 1
        return last, count


@dataclass
class _Ended:
    track_id: int
    state: State
    label: str
    mean: np.ndarray
    pts: float


class IdentityManager:
    """Identities of the tracks of one camera; the gallery may be shared between cameras."""

    def __init__(self, config: IdentityConfig, thresholds: RecognizerThresholds, gallery: Gallery | None,
                 name_stranger: Callable[[TrackIdentity], str] | None = None,
                 strangers: Callable[[np.ndarray], list[tuple[str, float]]] | None = None) -> None:
        self.config = config
        # Who gives a track decided unknown its ID: the identity memory (`--store`: IDs that persist across runs
        # and cameras), else a counter of this camera's run.
        self.name_stranger = name_stranger
        # The identity memory's strangers most like a mean (`IdentityMemory.resembles`): a stranger's decision
        # names them among its candidates.
        self.strangers = strangers
        self.thresholds = thresholds
        self.gallery = gallery
        self.tracks: dict[int, TrackIdentity] = {}
        self._ended: list[_Ended] = []
        self._visible: set[int] = set()
        self._next_anonymous = 1
        self._frame = (0, 0.0)
        self._window = max(config.conflict_window, config.switch_evidence, config.min_evidence + 1)

    def _track(self, track_id: int) -> TrackIdentity:
        if track_id not in self.tracks:
            self.tracks[track_id] = TrackIdentity(track_id, candidates=deque(maxlen=self._window))
        return self.tracks[track_id]

    # --- per frame -------------------------------------------------------------------------------------------

    def begin_frame(self, index: int, pts: float, visible: list[int]) -> None:
        self._frame = (index, pts)
        self._visible = set(visible)
        for track_id in visible:
            self._track(track_id)
        horizon = pts - self.config.relink_memory
        self._ended = [e for e in self._ended if e.pts >= horizon]

    def decided_tracks(self) -> set[int]:
        return {t for t, ident in self.tracks.items() if ident.decided}

    def observe(self, track_id: int, embedding: np.ndarray, quality: float) -> list[IdentityEvent]:
        """Take one new embedding of a track as evidence; returns identity events if its identity changed."""
        track = self._track(track_id)
        decay = self.config.evidence_decay
        weighted = max(quality, 1e-3) * embedding
        track.evidence = weighted if track.evidence is None else decay * track.evidence + weighted
        track.observations += 1
        match = self.gallery.match(track.mean) if self.gallery is not None and len(self.gallery) else None
        candidate = self._candidate(match)
        track.why = self._why(match)
        track.candidates.append(candidate)
        if track.state == "known" and match is not None:
            track.similarity = self._similarity_to(track.mean, track.label)
        if track.state == "pending" and track.observations <= self.config.min_evidence + 1:
            relinked = self._relink(track)
            if relinked is not None:
                return relinked
        return self._decide(track, candidate)

    def check(self, track_id: int, embedding: np.ndarray, quality: float) -> Verdict:
        """Is a decided track still the same face? Its new look against its OWN mean embedding.

        `same` (or an undecided track): the look is evidence as usual (`observe`). `doubt`: below the re-link
        threshold; the look is held back, not mixed into the mean (one bad crop must not split). `other`:
        `split_evidence` looks in a row below it after the face changed at once (`note_changes`), or one more
        without such a sign (a small face drifting in a crowd): another person is under the box, the track must
        split.
        """
        track = self.tracks.get(track_id)
        if track is None or not track.decided or track.evidence is None:
            return "same"
        if float(track.mean @ embedding) >= self.thresholds.relink_threshold or self._still_named(track, embedding):
            track.doubts.clear()
            track.changed = False
            return "same"
        track.doubts.append((embedding, quality))
        needed = self.config.split_evidence + (0 if track.changed else 1)
        return "other" if len(track.doubts) >= needed else "doubt"

    def note_changes(self, track_ids: list[int]) -> None:
        """The tracker saw these tracks' faces change at once (content, place or score): a sign that someone
        else may be under the box, which makes a split need fewer looks."""
        for track_id in track_ids:
            track = self.tracks.get(track_id)
            if track is not None and track.decided:
                track.changed = True

    def _still_named(self, track: TrackIdentity, embedding: np.ndarray) -> bool:
        """A named track's look that the gallery alone gives the same name: the person is still there (a new pose
        can be far from the track's mean and still be plainly them)."""
        if track.state != "known" or self.gallery is None or not len(self.gallery):
            return False
        return self._candidate(self.gallery.match(embedding)) == track.label

    def doubted_tracks(self) -> set[int]:
        """Decided tracks whose last look did not match them: to be looked at again soon."""
        return {t for t, ident in self.tracks.items() if ident.doubts}

    def split(self, track_id: int, new_id: int) -> list[IdentityEvent]:
        """Track `track_id` turned out to be another person, who goes on as `new_id`: judged afresh from the
        looks that did not match (a new unknown-N, a gallery name, or the re-linked ID of whoever it is). The old
        track is still to be ended (`end`), which remembers its identity for re-linking."""
        old = self.tracks.get(track_id)
        looks = old.doubts if old is not None else []
        if old is not None:
            old.doubts = []
        # The looks that agree with the latest one: a look from before the change may be among them.
        looks = [(e, q) for e, q in looks if float(e @ looks[-1][0]) >= self.thresholds.relink_threshold]
        self._visible.discard(track_id)
        self._visible.add(new_id)
        self._track(new_id)
        events: list[IdentityEvent] = []
        for embedding, quality in looks:
            events += self.observe(new_id, embedding, quality)
        return events

    def end(self, track_id: int, pts: float) -> None:
        """A track ended: remember a decided identity so a returning person gets it back."""
        track = self.tracks.pop(track_id, None)
        if track is not None and track.decided and track.evidence is not None and track.label is not None:
            self._ended.append(_Ended(track_id, track.state, track.label, track.mean, pts))

    def renamed(self, labels: dict[str, str]) -> list[IdentityEvent]:
        """Strangers named or merged elsewhere (a shared store): their tracks, live or recently ended, answer to
        the label they have now — a name from the gallery makes the track known at once."""
        events: list[IdentityEvent] = []
        for track in self.tracks.values():
            new = labels.get(track.label or "") if track.state == "unknown" else None
            if new is None:
                continue
            if self.gallery is not None and new in self.gallery.names:
                track.candidates.clear()
                track.candidates.extend([new] * self.config.min_evidence)
                events += self._set(track, "known", new, self._similarity_to(track.mean, new))
            else:
                track.anonymous = new
                events += self._set(track, "unknown", new, None)
        for ended in self._ended:
            if ended.state == "unknown" and ended.label in labels:
                ended.label = labels[ended.label]
                ended.state = "known" if self.gallery is not None and ended.label in self.gallery.names else "unknown"
        return events

    def labels(self, track_ids: list[int]) -> tuple[list[str | None], list[bool], list[float], list[str]]:
        """Per track: shown identity (None while undecided), known?, similarity (NaN if none), state."""
        identities, known, sims, states = [], [], [], []
        for track_id in track_ids:
            track = self.tracks.get(track_id) or TrackIdentity(track_id)
            identities.append(track.label if track.decided else None)
            known.append(track.state == "known")
            sims.append(track.similarity if track.state == "known" and track.similarity is not None else np.nan)
            states.append(track.state)
        return identities, known, sims, states

    def reasons(self, track_ids: list[int], gates: list[str | None]) -> list[Reason | None]:
        """Per track, why it shows no identity (None where it shows one). `gates`: per track, the quality gate its
        face fails this frame (`EmbeddingScheduler.gate`: small, turned, blurred), or None.

        A conflict is said first; then a gate (it keeps the track from gaining evidence now); then why its last
        look named no one (below_threshold, margin, conflict); else `pending`: not enough looks yet.
        """
        reasons: list[Reason | None] = []
        for track_id, gate in zip(track_ids, gates, strict=True):
            track = self.tracks.get(track_id)
            if track is not None and track.decided:
                reasons.append(None)
            elif track is not None and track.state == "conflict":
                reasons.append("conflict")
            elif gate is not None:
                reasons.append(gate)  # type: ignore[arg-type]
            else:
                reasons.append(track.why if track is not None and track.why is not None else "pending")
        return reasons

    # --- decisions -------------------------------------------------------------------------------------------

    def _candidate(self, match: Match | None) -> str:
        if match is None or match.name is None:
            return STRANGER
        t = self.thresholds
        return match.name if match.similarity >= t.threshold and match.margin >= t.margin else STRANGER

    def _why(self, match: Match | None) -> Reason | None:
        """Why a look's gallery match is no candidate (None: it is one, or there is no gallery to match)."""
        if match is None:
            return None
        if match.name is None:  # below the floor of the person it is closest to (a store's named person)
            return "below_threshold"
        if match.similarity < self.thresholds.threshold:
            return "below_threshold"
        return "margin" if match.margin < self.thresholds.margin else None

    def _similarity_to(self, mean: np.ndarray, name: str | None) -> float | None:
        if self.gallery is None or name not in self.gallery.names:
            return None
        return float(self.gallery.similarities(mean)[0, self.gallery.names.index(name)])

    def _decide(self, track: TrackIdentity, candidate: str) -> list[IdentityEvent]:
        latest, run = track.streak()
        if track.state == "pending":
            needed = self.config.min_evidence + (1 if candidate == STRANGER else 0)
            if run >= needed:
                return self._assign(track, candidate)
            return self._set(track, "conflict", None, None) if self._split(track, None) else []
        if track.state == "conflict":
            return self._assign(track, candidate) if run >= self.config.switch_evidence else []
        current = track.label if track.state == "known" else STRANGER
        if self._split(track, current):
            return self._set(track, "conflict", track.label, None)
        if latest != current and run >= self.config.switch_evidence:
            return self._assign(track, candidate)
        return []

    def _split(self, track: TrackIdentity, current: str | None) -> bool:
        """The recent evidence divides between the current identity and another one, neither clearly ahead."""
        window = list(track.candidates)[-self.config.conflict_window:]
        counts = Counter(window)
        if len(window) < self.config.conflict_window or len(counts) < 2:
            return False
        (first, n1), (second, n2) = counts.most_common(2)
        return (current is None or current in (first, second)) and n2 >= 2 and n1 < 2 * len(window) / 3 and (
            window[-1] != window[-2])  # still alternating now

    def _assign(self, track: TrackIdentity, candidate: str) -> list[IdentityEvent]:
        if candidate == STRANGER:
            if track.state == "unknown":
                return []
            # The remembered strangers it was compared with, before a new one may be minted for it.
            remembered = self.strangers(track.mean) if self.strangers is not None and not track.anonymous else []
            track.anonymous = track.anonymous or self._anonymous_label(track)
            return self._set(track, "unknown", track.anonymous, None, remembered)
        holder = self._visible_holder(candidate, exclude=track.track_id)
        similarity = self._similarity_to(track.mean, candidate)
        events: list[IdentityEvent] = []
        if holder is not None:
            # One name, one face: the stronger evidence keeps the name, the other track goes back to undecided.
            if (holder.similarity or -1.0) >= (similarity or -1.0):
                track.why = "conflict"
                return []
            events += self._set(holder, "pending", None, None)
            holder.candidates.clear()
            holder.why = "conflict"
        return events + self._set(track, "known", candidate, similarity)

    def _anonymous_label(self, track: TrackIdentity) -> str:
        if self.name_stranger is not None:
            return self.name_stranger(track)
        label = f"unknown-{self._next_anonymous}"
        self._next_anonymous += 1
        return label

    def _visible_holder(self, name: str, exclude: int) -> TrackIdentity | None:
        for track_id in self._visible:
            other = self.tracks.get(track_id)
            if track_id != exclude and other is not None and other.state == "known" and other.label == name:
                return other
        return None

    def _relink(self, track: TrackIdentity) -> list[IdentityEvent] | None:
        """Give a new track the identity of a recently ended one it matches."""
        if not self._ended:
            return None
        sims = np.array([float(track.mean @ e.mean) for e in self._ended])
        order = np.argsort(-sims)
        best = self._ended[int(order[0])]
        runner_up = sims[order[1]] if len(order) > 1 else -1.0
        if sims[order[0]] < self.thresholds.relink_threshold or sims[order[0]] - runner_up < self.thresholds.margin:
            return None
        if best.state == "known" and self._visible_holder(best.label, exclude=track.track_id) is not None:
            return None
        self._ended.remove(best)  # an ID goes back to one track only
        track.relinked_from = best.track_id
        if best.state == "unknown":
            track.anonymous = best.label
        track.candidates.clear()
        track.candidates.extend([best.label if best.state == "known" else STRANGER] * self.config.min_evidence)
        similarity = self._similarity_to(track.mean, best.label) if best.state == "known" else None
        return self._set(track, best.state, best.label, similarity)

    def _set(self, track: TrackIdentity, state: State, label: str | None, similarity: float | None,
             strangers: list[tuple[str, float]] | None = None) -> list[IdentityEvent]:
        previous = track.label if track.state in ("known", "unknown", "conflict") else None
        track.state, track.similarity = state, similarity
        if state != "conflict":
            track.label = label
        index, pts = self._frame
        return [identity_event(track.track_id, state, label, previous, similarity, track.relinked_from, index, pts,
                               self._candidates(track, strangers or []))]

    def _candidates(self, track: TrackIdentity, strangers: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """The two gallery people (the store's named ones included), or remembered `strangers`, the track's evidence
        is most like, best first."""
        if track.evidence is None:
            return []
        people = self.gallery.top(track.mean, 2) if self.gallery is not None and len(self.gallery) else []
        best = sorted(people + strangers, key=lambda pair: -pair[1])[:2]
        return best
