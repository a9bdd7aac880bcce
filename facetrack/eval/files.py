"""Reading the two inputs of `facetrack eval`: the hand-labelled truth and an events file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facetrack.errors import FacetrackError

if TYPE_CHECKING:
    pass


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

