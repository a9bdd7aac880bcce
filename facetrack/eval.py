"""Evaluation: how well an events file names and tracks the faces of a hand-labelled video.

Predicted boxes (from `facetrack annotate --events`) are matched to true boxes frame by frame (Hungarian on
IoU). Then, from the user's side of the screen: how often each gallery person was named right and how soon,
how many faces got a name that is not theirs (the number that matters for monitoring), how often the shown
identity changed within one appearance, how many anonymous IDs each stranger got, how often one track carried
its shown identity on to another person (a cut or a swap the tracker did not see); and, through `trackers.eval`,
the standard tracking scores (IDF1, HOTA, ID switches) with the person labels as true IDs.

Truth format (one line per frame): {"frame": i, "faces": [{"box": [x1, y1, x2, y2], "person": "obama"}]};
a person whose label starts with `stranger` is not in the gallery, any other label is a gallery name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from trackers.eval import box_iou, compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

from facetrack.errors import FacetrackError
from facetrack.timeline import Lane, Row, natural_key

if TYPE_CHECKING:
    from rich.table import Table

STRANGER_PREFIX = "stranger"
DEFAULT_IOU = 0.5
DEFAULT_GAP = 10  # frames: a person unseen for longer than this starts a new appearance


def is_stranger(person: str) -> bool:
    return person.startswith(STRANGER_PREFIX)


@dataclass(frozen=True)
class TruthFace:
    box: tuple[float, float, float, float]
    person: str


@dataclass(frozen=True)
class PredictedFace:
    box: tuple[float, float, float, float]
    track_id: int
    identity: str | None  # gallery name, unknown-N, or None before the identity stage decides
    known: bool  # True only for gallery names

    @property
    def named(self) -> bool:
        """Shows a gallery name."""
        return self.known and self.identity is not None


@dataclass
class Events:
    """The frame events of one run: faces and presentation time per frame index."""

    faces: dict[int, list[PredictedFace]]
    pts: dict[int, float]

    @property
    def fps(self) -> float:
        """Frame rate from the timestamps (median step), for time-to-identify in seconds."""
        frames = sorted(self.pts)
        steps = np.diff([self.pts[f] for f in frames]) / np.maximum(np.diff(frames), 1)
        return float(1.0 / np.median(steps)) if len(steps) and np.median(steps) > 0 else 30.0


# --- reading ---------------------------------------------------------------------------------------------------

def _json_lines(path: Path, what: str, flag: str) -> Iterator[tuple[int, Any]]:
    if not path.exists():
        raise FacetrackError(f"{what} file not found: {path} (pass an existing .jsonl file{flag})")
    if path.is_dir():
        raise FacetrackError(f"{what} path is a folder, not a .jsonl file: {path}")
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise FacetrackError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise FacetrackError(f"{path} is not a text file: pass a JSON Lines {what} file{flag}") from None


def _box(value: Any) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError("box must be [x1, y1, x2, y2]")
    x1, y1, x2, y2 = (float(v) for v in value)
    return (x1, y1, x2, y2)


def load_truth(path: Path | str) -> dict[int, list[TruthFace]]:
    """Frame index → labelled faces."""
    path = Path(path)
    truth: dict[int, list[TruthFace]] = {}
    for number, record in _json_lines(path, "truth", " to --truth"):
        try:
            if "type" in record:
                raise ValueError('this looks like an events file (it has "type"): pass the truth file to --truth')
            truth[int(record["frame"])] = [TruthFace(_box(f["box"]), str(f["person"])) for f in record["faces"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise FacetrackError(
                f"{path}:{number}: not a truth line ({_why(exc)}); expected "
                '{"frame": i, "faces": [{"box": [x1, y1, x2, y2], "person": name}]}') from None
    if not truth:
        raise FacetrackError(f"truth file {path} holds no frames")
    return truth


def load_events(path: Path | str) -> Events:
    """The frame events of a `facetrack annotate --events` file (other event types are not needed here)."""
    path = Path(path)
    faces: dict[int, list[PredictedFace]] = {}
    pts: dict[int, float] = {}
    for number, record in _json_lines(path, "events", ""):
        if not isinstance(record, dict) or record.get("type") != "frame":
            continue
        try:
            index = int(record["frame"])
            faces[index] = [PredictedFace(_box(f["box"]), int(f["track_id"]), f.get("identity"),
                                          bool(f.get("known", False))) for f in record["faces"]]
            pts[index] = float(record["pts"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FacetrackError(f"{path}:{number}: not a facetrack frame event ({_why(exc)})") from None
    if not faces:
        raise FacetrackError(f'{path} holds no frame events ("type": "frame"): pass the file written by '
                             "`facetrack annotate --events`")
    return Events(faces, pts)


def _why(exc: BaseException) -> str:
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


# --- matching --------------------------------------------------------------------------------------------------

def _boxes(items: list[TruthFace] | list[PredictedFace]) -> np.ndarray:
    return np.array([item.box for item in items], dtype=np.float64).reshape(-1, 4)


def match_frame(truth: list[TruthFace], predicted: list[PredictedFace],
                iou_threshold: float = DEFAULT_IOU) -> tuple[dict[int, int], np.ndarray]:
    """One-to-one matches (truth index → predicted index) maximising total IoU, each at least `iou_threshold`;
    and the IoU matrix (truth × predicted)."""
    iou = box_iou(_boxes(truth), _boxes(predicted)) if truth and predicted else np.zeros((len(truth),
                                                                                            len(predicted)))
    if not truth or not predicted:
        return {}, iou
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= iou_threshold}, iou


@dataclass(frozen=True)
class FaceFrame:
    """One true face in one frame, and what facetrack showed on it (None: not detected)."""

    frame: int
    person: str
    shown: PredictedFace | None


@dataclass
class Matched:
    face_frames: list[FaceFrame]  # every true face of the evaluated frames, in frame order
    unmatched: list[tuple[int, PredictedFace]]  # predicted boxes on no listed face
    gt_ids: list[np.ndarray]  # per frame, for trackers.eval
    tracker_ids: list[np.ndarray]
    ious: list[np.ndarray]


def match(truth: dict[int, list[TruthFace]], events: Events, frames: list[int],
          iou_threshold: float = DEFAULT_IOU) -> Matched:
    person_ids: dict[str, int] = {}
    result = Matched([], [], [], [], [])
    for index in frames:
        true_faces, predicted = truth.get(index, []), events.faces.get(index, [])
        pairs, iou = match_frame(true_faces, predicted, iou_threshold)
        for t, face in enumerate(true_faces):
            result.face_frames.append(FaceFrame(index, face.person, predicted[pairs[t]] if t in pairs else None))
        taken = set(pairs.values())
        result.unmatched += [(index, p) for i, p in enumerate(predicted) if i not in taken]
        result.gt_ids.append(np.array([person_ids.setdefault(f.person, len(person_ids)) for f in true_faces],
                                      dtype=int))
        result.tracker_ids.append(np.array([p.track_id for p in predicted], dtype=int))
        result.ious.append(iou)
    return result


# --- metrics ---------------------------------------------------------------------------------------------------

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


def tracking_metrics(matched: Matched, iou_threshold: float = DEFAULT_IOU) -> dict[str, float | int]:
    """IDF1, HOTA and CLEAR (MOTA, ID switches) from `trackers.eval`; true IDs are the person labels."""
    identity = compute_identity_metrics(matched.gt_ids, matched.tracker_ids, matched.ious, threshold=iou_threshold)
    hota = compute_hota_metrics(matched.gt_ids, matched.tracker_ids, matched.ious)
    clear = compute_clear_metrics(matched.gt_ids, matched.tracker_ids, matched.ious, threshold=iou_threshold)
    return {
        "IDF1": round(float(identity["IDF1"]), 4), "IDP": round(float(identity["IDP"]), 4),
        "IDR": round(float(identity["IDR"]), 4), "HOTA": round(float(hota["HOTA"]), 4),
        "DetA": round(float(hota["DetA"]), 4), "AssA": round(float(hota["AssA"]), 4),
        "MOTA": round(float(clear["MOTA"]), 4), "IDSW": int(clear["IDSW"]), "Frag": int(clear["Frag"]),
    }


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

def _category(person: str | None, shown: PredictedFace) -> str:
    if shown.identity is None:
        return "unidentified"
    if not shown.named:
        return "anonymous"
    return "named" if shown.identity == person else "wrong"


def timeline_rows(report: EvalReport, matched: Matched) -> list[Row]:
    """Per true person: a truth lane and a facetrack lane; then the boxes on no listed face, if any."""
    lanes: dict[str, tuple[Lane, Lane]] = {}
    for ff in matched.face_frames:
        truth_lane, shown_lane = lanes.setdefault(ff.person, (Lane("truth"), Lane("facetrack")))
        truth_lane.cells[ff.frame] = "truth"
        if ff.shown is not None:
            shown_lane.cells[ff.frame] = _category(ff.person, ff.shown)
    order = [p.person for p in report.people] + [s.person for s in report.strangers]
    rows = [Row(person, list(lanes[person])) for person in order]
    if matched.unmatched:
        cells: dict[int, str] = {}
        for frame, shown in matched.unmatched:  # several boxes in one frame: the worst one shows
            category = _category(None, shown)
            if _RANK[category] > _RANK[cells.get(frame, "unidentified")]:
                cells[frame] = category
            cells.setdefault(frame, category)
        rows.append(Row("(no listed face)", [Lane("facetrack", cells)]))
    return rows


_RANK = {"unidentified": 0, "anonymous": 1, "named": 2, "wrong": 3}


# --- tables for people -----------------------------------------------------------------------------------------

def _opt(value: float | int | None, fmt: str = "{}") -> str:
    return "–" if value is None else fmt.format(value)


def report_tables(report: EvalReport) -> list[Table]:
    """The report as Rich tables: gallery people, false names, strangers, tracking."""
    from rich.table import Table

    tables = []
    people = Table(title="gallery people: named right, and how soon", title_justify="left")
    for column in ("person", "face-frames", "detected", "named right", "recall", "first seen", "first named",
                   "time to identify", "wrong name", "switches"):
        people.add_column(column, justify="left" if column == "person" else "right")
    for p in report.people:
        people.add_row(p.person, str(p.visible), str(p.detected), str(p.named), f"{p.recall:.2f}", str(p.first_seen),
                       _opt(p.first_named), "never" if p.delay_frames is None else
                       f"{p.delay_frames} fr / {p.delay_seconds:.2f} s",
                       _red_if(p.wrong_name_frames), str(p.switches))
    tables.append(people)

    runs = Table(title=f"appearances (a gap of more than {report.gap} frames starts a new one)",
                 title_justify="left")
    for column in ("person", "frames", "face-frames", "recall", "first named", "time to identify", "switches"):
        runs.add_column(column, justify="left" if column == "person" else "right")
    for p in report.people:
        for a in p.appearances:
            runs.add_row(p.person, f"{a['first']}–{a['last']}", str(a["visible"]), f"{a['recall']:.2f}",
                         _opt(a["first_named"]), "never" if a["delay_frames"] is None else
                         f"{a['delay_frames']} fr / {a['delay_seconds']:.2f} s", str(a["switches"]))
    tables.append(runs)

    false = Table(title="false names (a gallery name on a face that is not that person)", title_justify="left")
    false.add_column("kind")
    false.add_column("face-frames", justify="right")
    for kind, text in (("stranger_named", "stranger given a gallery name"),
                       ("wrong_person_named", "gallery person given another's name"),
                       ("non_face_named", "box on no listed face given a name")):
        false.add_row(text, _red_if(report.false_names[kind]))
    false.add_row("[bold]total[/]", _red_if(sum(report.false_names.values())))
    tables.append(false)

    carried = Table(title=f"identity carried to another person: {len(report.carried)} (one track showed one "
                    "identity on two people)", title_justify="left")
    for column in ("track", "identity", "people", "from frame", "face-frames on others"):
        carried.add_column(column, justify="right" if column in ("track", "from frame", "face-frames on others")
                           else "left")
    for c in report.carried:
        carried.add_row(str(c.track_id), c.identity, " → ".join(c.people), str(c.frame), _red_if(c.frames))
    tables.append(carried)

    strangers = Table(title="strangers: anonymous IDs each got (1 is best)", title_justify="left")
    for column in ("stranger", "face-frames", "detected", "anonymous IDs", "tracks", "named (false)"):
        strangers.add_column(column, justify="left" if column in ("stranger", "anonymous IDs") else "right")
    for s in report.strangers:
        strangers.add_row(s.person, str(s.visible), str(s.detected),
                          f"{len(s.anonymous_ids)}: {', '.join(s.anonymous_ids)}" if s.anonymous_ids else "0",
                          str(s.tracks), _red_if(s.named_frames))
    tables.append(strangers)

    tracking = Table(title="tracking (trackers.eval; true IDs = person labels)", title_justify="left")
    for key in report.tracking:
        tracking.add_column(key, justify="right")
    tracking.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in report.tracking.values()))
    tables.append(tracking)
    return tables


def _red_if(count: int) -> str:
    return f"[bold red]{count}[/]" if count else "0"


def summary_line(report: EvalReport) -> str:
    d, f = report.detection, report.frames
    return (f"{f['evaluated']} frames ({f['first']}–{f['last']}), {d['truth_faces']} true faces, "
            f"{d['matched']} matched at IoU ≥ {report.iou_threshold}, {d['missed']} missed, "
            f"{d['unmatched_predictions']} boxes on no listed face; {len(report.switches)} identity switches, "
            f"{len(report.carried)} identities carried to another person")
