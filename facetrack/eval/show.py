"""An evaluation report as tables, a summary line and timeline rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facetrack.eval.files import PredictedFace
from facetrack.eval.identity import EvalReport
from facetrack.eval.matching import Matched
from facetrack.timeline import Lane, Row

if TYPE_CHECKING:
    from rich.table import Table


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
