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

from facetrack.eval.files import (
    DEFAULT_GAP,
    DEFAULT_IOU,
    STRANGER_PREFIX,
    Events,
    PredictedFace,
    TruthFace,
    is_stranger,
    load_events,
    load_truth,
)
from facetrack.eval.identity import (
    Appearance,
    Carried,
    EvalReport,
    FalseName,
    PersonReport,
    StrangerReport,
    Switch,
    appearances,
    evaluate,
    evaluate_files,
    identity_carried,
    identity_switches,
)
from facetrack.eval.matching import FaceFrame, Matched, match, match_frame
from facetrack.eval.show import report_tables, summary_line, timeline_rows
from facetrack.eval.tracking import tracking_metrics

__all__ = [
    "Appearance", "Carried", "DEFAULT_GAP", "DEFAULT_IOU", "EvalReport", "Events", "FaceFrame", "FalseName",
    "Matched", "PersonReport", "PredictedFace", "STRANGER_PREFIX", "StrangerReport", "Switch", "TruthFace",
    "appearances", "evaluate", "evaluate_files", "identity_carried", "identity_switches", "is_stranger",
    "load_events", "load_truth", "match", "match_frame", "report_tables", "summary_line", "timeline_rows",
    "tracking_metrics",
]
