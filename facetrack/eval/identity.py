"""Identity scores from the user's side of the screen: names right and how soon, false names, switches within
an appearance, IDs per stranger, identities carried on to another person."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facetrack.errors import FacetrackError
from facetrack.eval.files import DEFAULT_GAP, DEFAULT_IOU, Events, TruthFace, is_stranger, load_events, load_truth
from facetrack.eval.matching import FaceFrame, Matched, match
from facetrack.eval.tracking import tracking_metrics
from facetrack.timeline import natural_key


@dataclass
class Appearance:
    """A maximal run of frames in which one true person is on screen (split at gaps longer than `gap`)."""

    person: str
    first: int
    last: int
    visible: int  # face-frames
    detected: int
    named: int  # face-frames shown with the person's own gallery name
    first_named: int | None
    delay_frames: int | None  # first_named - first
    delay_seconds: float | None
    switches: int  # changes of the shown identity (name or anonymous ID) within the appearance

    @property
    def recall(self) -> float:
        return self.named / self.visible if self.visible else 0.0


@dataclass
class PersonReport:
    person: str
    visible: int
    detected: int
    named: int
    recall: float
    first_seen: int
    first_named: int | None
    delay_frames: int | None
    delay_seconds: float | None
    wrong_name_frames: int  # shown with another gallery name
    switches: int
    appearances: list[dict[str, Any]]


@dataclass
class StrangerReport:
    person: str
    visible: int
    detected: int
    anonymous_ids: list[str]  # distinct unknown-N shown on this stranger
    tracks: int
    named_frames: int  # shown with a gallery name: false names


@dataclass
class Switch:
    person: str
    frame: int
    previous: str
    identity: str


@dataclass
class FalseName:
    kind: str  # stranger_named | wrong_person_named | non_face_named
    frame: int
    person: str | None  # the true person (None: the box is on no listed face)
    identity: str
    track_id: int


@dataclass
class Carried:
    """One predicted track that showed one identity on two (or more) true people: carried to another person."""

    track_id: int
    identity: str
    people: list[str]  # in the order the identity was shown on them
    frame: int  # the first frame it was shown on the second person
    frames: int  # face-frames it was shown on people after the first


@dataclass
class EvalReport:
    frames: dict[str, Any]
    iou_threshold: float
    gap: int
    detection: dict[str, int]
    people: list[PersonReport]
    strangers: list[StrangerReport]
    false_names: dict[str, int]
    false_name_examples: list[FalseName]
    switches: list[Switch]
    anonymous_ids_shared: dict[str, list[str]]  # anonymous ID → the true persons it was shown on, when > 1
    tracking: dict[str, float | int]
    warnings: list[str] = field(default_factory=list)
    carried: list[Carried] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["false_names"] = {**self.false_names, "total": sum(self.false_names.values())}
        data["identity_switches"] = len(self.switches)
        data["identity_carried"] = len(self.carried)
        return data


def appearances(face_frames: list[FaceFrame], gap: int = DEFAULT_GAP) -> dict[str, list[list[FaceFrame]]]:
    """Per true person, their face-frames split into appearances at gaps longer than `gap` frames."""
    runs: dict[str, list[list[FaceFrame]]] = defaultdict(list)
    for ff in face_frames:
        person_runs = runs[ff.person]
        if person_runs and ff.frame - person_runs[-1][-1].frame <= gap + 1:
            person_runs[-1].append(ff)
        else:
            person_runs.append([ff])
    return runs


def identity_switches(run: list[FaceFrame]) -> list[Switch]:
    """Changes between two shown identities (ignoring frames where the face was missed or not yet identified)."""
    switches = []
    previous: str | None = None
    for ff in run:
        current = ff.shown.identity if ff.shown is not None else None
        if current is None:
            continue
        if previous is not None and current != previous:
            switches.append(Switch(ff.person, ff.frame, previous, current))
        previous = current
    return switches


def _appearance(run: list[FaceFrame], pts: dict[int, float], fps: float) -> tuple[Appearance, list[Switch]]:
    person = run[0].person
    named_frames = [ff.frame for ff in run if ff.shown is not None and ff.shown.named
                    and ff.shown.identity == person]
    first, last = run[0].frame, run[-1].frame
    first_named = named_frames[0] if named_frames else None
    switches = identity_switches(run)
    return Appearance(
        person=person, first=first, last=last, visible=len(run),
        detected=sum(ff.shown is not None for ff in run), named=len(named_frames), first_named=first_named,
        delay_frames=None if first_named is None else first_named - first,
        delay_seconds=None if first_named is None else round(_seconds(first, first_named, pts, fps), 3),
        switches=len(switches),
    ), switches


def _seconds(start: int, end: int, pts: dict[int, float], fps: float) -> float:
    if start in pts and end in pts:
        return pts[end] - pts[start]
    return (end - start) / fps




def evaluate(truth: dict[int, list[TruthFace]], events: Events, iou_threshold: float = DEFAULT_IOU,
             gap: int = DEFAULT_GAP, max_examples: int = 20) -> tuple[EvalReport, Matched]:
    """Compare one run's events with the truth over the frames both cover; the matches come back too (for the
    timeline plot)."""
    if not 0.0 < iou_threshold <= 1.0:
        raise FacetrackError(f"--iou must be in (0, 1], got {iou_threshold}")
    if gap < 0:
        raise FacetrackError(f"--gap must be 0 or more frames, got {gap}")
    frames = sorted(set(truth) & set(events.faces))
    if not frames:
        raise FacetrackError(
            f"the events (frames {min(events.faces)}–{max(events.faces)}) and the truth (frames {min(truth)}–"
            f"{max(truth)}) share no frame: is the truth for another video?")
    warnings = []
    if len(frames) < len(truth):
        warnings.append(f"the events cover {len(frames)} of the truth's {len(truth)} frames; only those are "
                        "evaluated")
    if len(frames) < len(events.faces):
        warnings.append(f"{len(events.faces) - len(frames)} frames of the events have no truth line; they are "
                        "not evaluated")
    matched = match(truth, events, frames, iou_threshold)
    fps = events.fps

    people: list[PersonReport] = []
    strangers: list[StrangerReport] = []
    all_switches: list[Switch] = []
    for person, runs in sorted(appearances(matched.face_frames, gap).items(),
                               key=lambda item: (is_stranger(item[0]), natural_key(item[0]))):
        face_frames = [ff for run in runs for ff in run]
        shown = [ff.shown for ff in face_frames if ff.shown is not None]
        reports = [_appearance(run, events.pts, fps) for run in runs]
        switches = [s for _, run_switches in reports for s in run_switches]
        all_switches += switches
        if is_stranger(person):
            strangers.append(StrangerReport(
                person=person, visible=len(face_frames), detected=len(shown),
                anonymous_ids=sorted({p.identity for p in shown if p.identity and not p.known}, key=natural_key),
                tracks=len({p.track_id for p in shown}), named_frames=sum(p.named for p in shown)))
            continue
        named = sum(a.named for a, _ in reports)
        first_named = next((a.first_named for a, _ in reports if a.first_named is not None), None)
        first_seen = face_frames[0].frame
        people.append(PersonReport(
            person=person, visible=len(face_frames), detected=len(shown), named=named,
            recall=round(named / len(face_frames), 4), first_seen=first_seen, first_named=first_named,
            delay_frames=None if first_named is None else first_named - first_seen,
            delay_seconds=None if first_named is None else round(_seconds(first_seen, first_named, events.pts,
                                                                          fps), 3),
            wrong_name_frames=sum(p.named and p.identity != person for p in shown),
            switches=len(switches),
            appearances=[{**asdict(a), "recall": round(a.recall, 4)} for a, _ in reports]))

    false_names = _false_names(matched)
    counts = {kind: sum(f.kind == kind for f in false_names)
              for kind in ("stranger_named", "wrong_person_named", "non_face_named")}
    shared: dict[str, set[str]] = defaultdict(set)
    for ff in matched.face_frames:
        if ff.shown is not None and ff.shown.identity and not ff.shown.known:
            shared[ff.shown.identity].add(ff.person)
    report = EvalReport(
        frames={"evaluated": len(frames), "first": frames[0], "last": frames[-1], "truth": len(truth),
                "events": len(events.faces), "fps": round(fps, 3)},
        iou_threshold=iou_threshold, gap=gap,
        detection={"truth_faces": len(matched.face_frames),
                   "predicted_faces": sum(len(events.faces.get(f, [])) for f in frames),
                   "matched": sum(ff.shown is not None for ff in matched.face_frames),
                   "missed": sum(ff.shown is None for ff in matched.face_frames),
                   "unmatched_predictions": len(matched.unmatched)},
        people=people, strangers=strangers, false_names=counts, false_name_examples=false_names[:max_examples],
        switches=all_switches,
        anonymous_ids_shared={k: sorted(v, key=natural_key) for k, v in sorted(shared.items()) if len(v) > 1},
        tracking=tracking_metrics(matched, iou_threshold), warnings=warnings,
        carried=identity_carried(matched.face_frames))
    return report, matched


def identity_carried(face_frames: list[FaceFrame]) -> list[Carried]:
    """Every (predicted track, shown identity) that was on more than one true person, in frame order of the
    carry: the identity a track kept when the person under its box changed."""
    seen: dict[tuple[int, str], list[FaceFrame]] = defaultdict(list)
    for ff in face_frames:
        if ff.shown is not None and ff.shown.identity is not None:
            seen[(ff.shown.track_id, ff.shown.identity)].append(ff)
    carried = []
    for (track_id, identity), shown in seen.items():
        people = list(dict.fromkeys(ff.person for ff in shown))
        if len(people) > 1:
            later = [ff for ff in shown if ff.person != people[0]]
            carried.append(Carried(track_id, identity, people, later[0].frame, len(later)))
    return sorted(carried, key=lambda c: c.frame)


def _false_names(matched: Matched) -> list[FalseName]:
    """Every face-frame that shows a gallery name that is not the person's own, in frame order."""
    found = []
    for ff in matched.face_frames:
        if ff.shown is None or not ff.shown.named or ff.shown.identity == ff.person:
            continue
        kind = "stranger_named" if is_stranger(ff.person) else "wrong_person_named"
        found.append(FalseName(kind, ff.frame, ff.person, str(ff.shown.identity), ff.shown.track_id))
    found += [FalseName("non_face_named", frame, None, str(p.identity), p.track_id)
              for frame, p in matched.unmatched if p.named]
    return sorted(found, key=lambda f: f.frame)


def evaluate_files(events_path: Path | str, truth_path: Path | str, iou_threshold: float = DEFAULT_IOU,
                   gap: int = DEFAULT_GAP) -> tuple[EvalReport, Matched]:
    """`facetrack eval`: read both files and evaluate."""
    return evaluate(load_truth(truth_path), load_events(events_path), iou_threshold, gap)


# --- timeline --------------------------------------------------------------------------------------------------

