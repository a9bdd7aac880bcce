"""The standard tracking scores (IDF1, HOTA, ID switches) through `trackers.eval`, the person labels as true IDs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackers.eval import compute_clear_metrics, compute_hota_metrics, compute_identity_metrics

from facetrack.eval.files import DEFAULT_IOU
from facetrack.eval.matching import Matched

if TYPE_CHECKING:
    pass


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


