"""Who was on screen when: a timeline picture, one row per person (or identity), fed by events.

`facetrack annotate --timeline` draws what facetrack showed (one row per identity shown); `facetrack eval --plot`
draws each true person's row with two lanes, the truth above and facetrack's answer below, wrong names in red.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from facetrack.errors import FacetrackError
from facetrack.private import create_private_file

# What a lane shows in a frame → (colour, legend text). Red is kept for names that are wrong.
CATEGORIES: dict[str, tuple[str, str]] = {
    "truth": ("#8c8c8c", "on screen (truth)"),
    "named": ("#2ca02c", "named (gallery)"),
    "wrong": ("#d62728", "wrong name"),
    "anonymous": ("#1f77b4", "anonymous ID (unknown-N)"),
    "unidentified": ("#c5b0d5", "tracked, not yet identified"),
}
UNIDENTIFIED_ROW = "(not yet identified)"


@dataclass
class Lane:
    name: str  # e.g. "truth", "facetrack"; empty for a row with a single lane
    cells: dict[int, str] = field(default_factory=dict)  # frame index → category


@dataclass
class Row:
    label: str
    lanes: list[Lane]


def runs(cells: dict[int, str]) -> list[tuple[int, int, str]]:
    """(first frame, length, category) for each run of consecutive frames of one category."""
    out: list[tuple[int, int, str]] = []
    for frame in sorted(cells):
        category = cells[frame]
        if out and out[-1][2] == category and out[-1][0] + out[-1][1] == frame:
            first, length, _ = out[-1]
            out[-1] = (first, length + 1, category)
        else:
            out.append((frame, 1, category))
    return out


def rows_from_events(events: Iterable[dict]) -> list[Row]:
    """What facetrack showed: one row per identity (name or unknown-N); faces not identified yet share a row.

    Events without any identity (the identity stage was off) give one row per track instead.
    """
    by_identity: dict[str, dict[int, str]] = defaultdict(dict)
    by_track: dict[int, dict[int, str]] = defaultdict(dict)
    unidentified: dict[int, str] = {}
    any_identity = False
    for event in events:
        if event.get("type") != "frame":
            continue
        frame = int(event["frame"])
        for face in event["faces"]:
            by_track[int(face["track_id"])][frame] = "unidentified"
            name = face.get("identity")
            if name:
                any_identity = True
                by_identity[name][frame] = "named" if face.get("known") else "anonymous"
            else:
                unidentified[frame] = "unidentified"
    if not any_identity:
        return [Row(f"track #{track}", [Lane("", cells)]) for track, cells in sorted(by_track.items())]
    # Gallery names first, then anonymous IDs, each in order of first appearance.
    order = sorted(by_identity, key=lambda name: ("anonymous" in by_identity[name].values(), min(by_identity[name]),
                                                  natural_key(name)))
    rows = [Row(name, [Lane("", by_identity[name])]) for name in order]
    if unidentified:
        rows.append(Row(UNIDENTIFIED_ROW, [Lane("", unidentified)]))
    return rows


def natural_key(label: str) -> tuple[str, int]:
    """unknown-2 before unknown-10."""
    head, _, tail = label.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (label, -1)


def draw_timeline(rows: list[Row], path: Path | str, fps: float | None = None, title: str = "",
                  frame_range: tuple[int, int] | None = None) -> Path:
    """Draw `rows` as horizontal bars over frame indices and save to `path` (.png, .svg, .pdf)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend needed
    from matplotlib.patches import Patch

    from facetrack.sinks.video import check_writable

    path = Path(path)
    check_writable(path, flag="the timeline path")
    fig = Figure(figsize=(12, 1.0 + 0.32 * max(1, sum(len(r.lanes) for r in rows))), layout="constrained")
    if path.suffix.lstrip(".").lower() not in fig.canvas.get_supported_filetypes():
        raise FacetrackError(f"cannot draw a timeline as {path.suffix or 'a file without extension'}: "
                             "use a .png, .svg or .pdf name")
    ax = fig.add_subplot()
    used: set[str] = set()
    ticks, labels = [], []
    y = 0.0
    for row in reversed(rows):  # first row at the top
        lane_height = 0.8 / len(row.lanes)
        for position, lane in enumerate(reversed(row.lanes)):
            bottom = y + 0.1 + position * lane_height
            segments = runs(lane.cells)
            for category in {c for _, _, c in segments}:
                bars = [(first, length) for first, length, c in segments if c == category]
                ax.broken_barh(bars, (bottom, lane_height * 0.9), facecolors=CATEGORIES[category][0])
                used.add(category)
            if lane.name:
                ax.text(1.002, bottom + lane_height * 0.45, lane.name, transform=ax.get_yaxis_transform(),
                        fontsize=7, va="center", color="#555555")
        ticks.append(y + 0.5)
        labels.append(row.label)
        y += 1.0
        ax.axhline(y, color="#e0e0e0", linewidth=0.6)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_ylim(0, max(y, 1.0))
    if frame_range is not None:
        ax.set_xlim(frame_range[0], frame_range[1] + 1)
    ax.set_xlabel("frame")
    ax.grid(axis="x", alpha=0.3)
    if fps:
        seconds = ax.secondary_xaxis("top", functions=(lambda f: f / fps, lambda s: s * fps))
        seconds.set_xlabel("seconds")
    if title:
        ax.set_title(title, fontsize=10)
    legend = [Patch(color=CATEGORIES[c][0], label=CATEGORIES[c][1]) for c in CATEGORIES if c in used]
    if legend:
        fig.legend(handles=legend, loc="outside lower center", ncols=len(legend), fontsize=8, frameon=False)
    create_private_file(path)  # it says who was seen when: its owner only
    fig.savefig(path, dpi=120)
    return path
