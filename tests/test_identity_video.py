"""Identity on the real test clip with the shared gallery and models, checked against the committed ground
truth (tests/data/short_hamilton_clip.truth.jsonl, labelled by looking at the frames)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

TRUTH = Path(__file__).parent / "data" / "short_hamilton_clip.truth.jsonl"
GALLERY_NAMES = {"alex_lacamoire", "biden", "kit_harington", "lin_manuel_miranda", "obama", "rose_leslie"}


@pytest.fixture(scope="module")
def run(clip_run: dict) -> dict:
    return clip_run


@pytest.fixture(scope="module")
def truth() -> list[dict]:
    return [json.loads(line) for line in TRUTH.read_text().splitlines()]


def true_person(face: dict, truth_frame: dict) -> str | None:
    """The labelled person whose box overlaps the predicted one (IoU ≥ 0.5), if any."""
    if not truth_frame["faces"]:
        return None
    ious = sv.box_iou_batch(np.array([face["box"]]), np.array([t["box"] for t in truth_frame["faces"]]))[0]
    best = int(np.argmax(ious))
    return truth_frame["faces"][best]["person"] if ious[best] >= 0.5 else None


def test_lin_manuel_named_in_his_close_ups(run: dict) -> None:
    close_ups = [e for e in run["frames"] if 90 <= e["frame"] <= 210]
    named = [e for e in close_ups if any(f["identity"] == "lin_manuel_miranda" and f["known"] for f in e["faces"])]
    assert len(named) >= 0.95 * len(close_ups)


def test_obama_named_in_the_audience_shot(run: dict, truth: list[dict]) -> None:
    audience = [e for e in run["frames"] if e["frame"] >= 211]
    named = [(e, f) for e in audience for f in e["faces"] if f["identity"] == "obama"]
    assert len(named) >= 0.6 * len(audience)
    assert all(true_person(f, truth[e["frame"]]) == "obama" for e, f in named)


def test_no_face_is_given_someone_elses_name(run: dict, truth: list[dict]) -> None:
    """Zero false names: every face shown with a gallery name is that person in the ground truth."""
    wrong = [(e["frame"], f["identity"], true_person(f, truth[e["frame"]]))
             for e in run["frames"] for f in e["faces"]
             if f["known"] and f["identity"] != true_person(f, truth[e["frame"]])]
    assert wrong == []
    for e in run["frames"]:
        for f in e["faces"]:
            assert f["known"] == (f["identity"] in GALLERY_NAMES)


def test_no_identity_flips_back_and_forth(run: dict) -> None:
    per_track: dict[int, list[str | None]] = {}
    for e in run["events"]:
        if e["type"] == "identity":
            per_track.setdefault(e["track_id"], []).append(e["identity"])
    assert per_track, "no identity was ever decided"
    for names in per_track.values():
        assert all(names[i] != names[i + 2] for i in range(len(names) - 2)), names
        assert len(names) <= 2


def test_one_name_per_frame(run: dict) -> None:
    for e in run["frames"]:
        names = [f["identity"] for f in e["faces"] if f["known"]]
        assert len(names) == len(set(names))


def test_strangers_get_anonymous_ids_and_identity_events_are_complete(run: dict) -> None:
    identity_events = [e for e in run["events"] if e["type"] == "identity"]
    for e in identity_events:
        assert {"track_id", "identity", "previous", "similarity", "frame", "pts"} <= set(e)
    assert any(re.fullmatch(r"unknown-\d+", e["identity"] or "") for e in identity_events)


def test_throttling_embeds_a_small_share_of_faces(run: dict) -> None:
    faces = sum(len(e["faces"]) for e in run["frames"])
    embeddings = int(re.search(r"(\d+) embeddings", run["stderr"]).group(1))
    assert 0 < embeddings < faces / 10


REASONS = {"small", "blurred", "turned", "pending", "below_threshold", "margin", "conflict"}


def test_every_face_without_an_identity_says_why(run: dict, truth: list[dict]) -> None:
    reasons: dict[str, list[str]] = {}  # per labelled person, the reasons their unnamed faces gave
    for e in run["frames"]:
        for face in e["faces"]:
            assert (face["reason"] is None) == (face["identity"] is not None), face
            assert face["reason"] is None or face["reason"] in REASONS
            if face["reason"] is not None:
                reasons.setdefault(true_person(face, truth[e["frame"]]) or "?", []).append(face["reason"])
    # Alex (small and soft at the piano, then in profile in a close-up) is never named: the quality gates say so (or,
    # before his face is first looked at, that it is pending), not the threshold.
    alex = reasons["alex_lacamoire"]
    gated = [r for r in alex if r in ("small", "blurred", "turned")]
    assert len(gated) >= 0.75 * len(alex) and set(alex) <= {"small", "blurred", "turned", "pending"}, alex
    assert "turned" in alex and ("blurred" in alex or "small" in alex)
    # The strangers of the audience shot are seen as nobody in the gallery before they get their unknown-N.
    strangers = [r for person, found in reasons.items() if person.startswith("stranger") for r in found]
    assert "below_threshold" in strangers


def test_identity_events_carry_the_two_best_gallery_candidates(run: dict) -> None:
    for e in (e for e in run["events"] if e["type"] == "identity"):
        candidates = e["candidates"]
        assert len(candidates) == 2 and all(c["name"] in GALLERY_NAMES for c in candidates), e
        assert candidates[0]["similarity"] >= candidates[1]["similarity"]
        assert all(c["similarity"] == round(c["similarity"], 3) for c in candidates)
        if e["state"] == "known" and e["relinked_from"] is None:  # named from its looks: its best match
            assert candidates[0] == {"name": e["identity"], "similarity": e["similarity"]}
