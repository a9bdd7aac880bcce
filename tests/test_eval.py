"""The evaluation's matcher and metrics on small hand-made events and truth, where every count is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrack.errors import FacetrackError
from facetrack.eval import (
    Events,
    PredictedFace,
    TruthFace,
    evaluate,
    load_events,
    load_truth,
    match_frame,
)
from facetrack.timeline import draw_timeline, rows_from_events, runs
from tests.conftest import run_cli

ALICE_BOX = [0.0, 0.0, 40.0, 40.0]
STRANGER_BOX = [100.0, 0.0, 140.0, 40.0]
BOB_BOX = [200.0, 0.0, 240.0, 40.0]
HAND_BOX = [300.0, 300.0, 330.0, 330.0]


def _face(box: list[float], track: int, identity: str | None = None, known: bool = False) -> dict:
    return {"track_id": track, "identity": identity, "known": known, "similarity": None, "score": 0.9, "box": box}


def _scene() -> tuple[list[dict], list[dict]]:
    """10 frames at 10 fps. alice (gallery) all along; stranger-1 all along; bob (gallery) in 0–2 and 8–9.

    alice: unidentified 0–1, named 2–5, shown as unknown-1 in 6, named again 7–9 → 7 of 10 named, 2 switches.
    stranger-1: unknown-2 in 0–4, named "alice" in 5–6 (2 false names), unknown-3 in 7–9 → 2 anonymous IDs.
    bob: named "alice" in 0–2 (3 false names of another person), missed in 8–9.
    A hand in frame 4 is named "bob": a name on a box that is no face.
    """
    truth, events = [], []
    for i in range(10):
        faces = [{"box": ALICE_BOX, "person": "alice"}, {"box": STRANGER_BOX, "person": "stranger-1"}]
        if i <= 2 or i >= 8:
            faces.append({"box": BOB_BOX, "person": "bob"})
        truth.append({"frame": i, "faces": faces})

        alice = _face(ALICE_BOX, 1) if i <= 1 else (_face(ALICE_BOX, 1, "unknown-1") if i == 6
                                                     else _face(ALICE_BOX, 1, "alice", True))
        stranger = (_face(STRANGER_BOX, 2, "unknown-2") if i <= 4 else
                    _face(STRANGER_BOX, 2, "alice", True) if i <= 6 else _face(STRANGER_BOX, 2, "unknown-3"))
        predicted = [alice, stranger]
        if i <= 2:
            predicted.append(_face(BOB_BOX, 3, "alice", True))
        if i == 4:
            predicted.append(_face(HAND_BOX, 4, "bob", True))
        events.append({"type": "frame", "frame": i, "pts": 5.0 + i / 10, "faces": predicted})
    return truth, events


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture()
def scene_files(tmp_path: Path) -> tuple[Path, Path]:
    truth, events = _scene()
    extra = [{"type": "track_start", "track_id": 1, "frame": 0, "pts": 5.0}]  # other event types are skipped
    return _write(tmp_path / "events.jsonl", extra + events), _write(tmp_path / "truth.jsonl", truth)


def test_hungarian_matching_beats_greedy() -> None:
    # Greedy would pair the best IoU first (T1–P1, 0.82) and leave T2–P2 at 0.33: one match.
    # The optimal assignment pairs T1–P2 and T2–P1 (0.67 each): two matches above 0.5.
    truth = [TruthFace((0, 0, 10, 10), "a"), TruthFace((3, 0, 13, 10), "b")]
    predicted = [PredictedFace((1, 0, 11, 10), 1, None, False), PredictedFace((-2, 0, 8, 10), 2, None, False)]
    pairs, iou = match_frame(truth, predicted, iou_threshold=0.5)
    assert pairs == {0: 1, 1: 0}
    assert iou.shape == (2, 2) and iou[0, 0] == pytest.approx(9 / 11)
    assert match_frame(truth, predicted, iou_threshold=0.7)[0] == {}


def test_matching_respects_the_iou_threshold_and_empty_frames() -> None:
    truth = [TruthFace((0, 0, 10, 10), "a")]
    shifted = [PredictedFace((4, 0, 14, 10), 1, None, False)]  # IoU 6/14 = 0.43
    assert match_frame(truth, shifted, 0.5)[0] == {}
    assert match_frame(truth, shifted, 0.4)[0] == {0: 0}
    assert match_frame([], shifted)[0] == {} and match_frame(truth, [])[0] == {}


def test_recall_time_to_identify_switches_and_false_names(scene_files: tuple[Path, Path]) -> None:
    events, truth = scene_files
    report, _ = evaluate(load_truth(truth), load_events(events), gap=3)
    people = {p.person: p for p in report.people}
    assert list(people) == ["alice", "bob"]  # gallery people; strangers apart
    alice = people["alice"]
    assert (alice.visible, alice.detected, alice.named) == (10, 10, 7)
    assert alice.recall == pytest.approx(0.7)
    assert (alice.first_seen, alice.first_named, alice.delay_frames) == (0, 2, 2)
    assert alice.delay_seconds == pytest.approx(0.2)
    assert alice.switches == 2  # alice → unknown-1 → alice
    bob = people["bob"]
    assert (bob.visible, bob.detected, bob.named, bob.first_named) == (5, 3, 0, None)
    assert bob.wrong_name_frames == 3
    assert [(a["first"], a["last"]) for a in bob.appearances] == [(0, 2), (8, 9)]  # gap of 5 > 3

    assert report.false_names == {"stranger_named": 2, "wrong_person_named": 3, "non_face_named": 1}
    assert report.to_dict()["false_names"]["total"] == 6
    assert {(f.kind, f.frame) for f in report.false_name_examples} >= {("stranger_named", 5), ("non_face_named", 4)}

    (stranger,) = report.strangers
    assert stranger.anonymous_ids == ["unknown-2", "unknown-3"] and stranger.tracks == 1
    assert stranger.named_frames == 2
    assert len(report.switches) == 4  # 2 on alice, 2 on the stranger (unknown-2 → alice → unknown-3)
    assert report.detection == {"truth_faces": 25, "predicted_faces": 24, "matched": 23, "missed": 2,
                                "unmatched_predictions": 1}


def test_a_long_gap_splits_appearances_and_a_short_one_does_not(scene_files: tuple[Path, Path]) -> None:
    events, truth = scene_files
    report, _ = evaluate(load_truth(truth), load_events(events), gap=5)
    bob = next(p for p in report.people if p.person == "bob")
    assert len(bob.appearances) == 1


def test_an_anonymous_id_shown_on_two_people_is_reported() -> None:
    truth = {0: [TruthFace((0, 0, 10, 10), "stranger-1")], 1: [TruthFace((0, 0, 10, 10), "stranger-2")]}
    events = Events({0: [PredictedFace((0, 0, 10, 10), 1, "unknown-1", False)],
                     1: [PredictedFace((0, 0, 10, 10), 1, "unknown-1", False)]}, {0: 0.0, 1: 0.1})
    report, _ = evaluate(truth, events)
    assert report.anonymous_ids_shared == {"unknown-1": ["stranger-1", "stranger-2"]}


def test_an_identity_one_track_carries_on_to_another_person_is_counted() -> None:
    """Track 1 shows unknown-1 on stranger-1 (frames 0–3), then the person under its box changes and the track
    keeps unknown-1 on stranger-2 for two frames (4–5) before the identity stage clears it; track 2 holds obama
    throughout; track 3 shows obama on obama (6–7) after a new track for him: no carry there."""
    box, other = (0.0, 0.0, 10.0, 10.0), (50.0, 0.0, 60.0, 10.0)
    truth, faces = {}, {}
    for i in range(8):
        truth[i] = [TruthFace(box, "stranger-1" if i < 4 else "stranger-2"), TruthFace(other, "obama")]
        under = PredictedFace(box, 1, "unknown-1" if i < 6 else None, False)
        faces[i] = [under, PredictedFace(other, 2 if i < 6 else 3, "obama", True)]
    report, _ = evaluate(truth, Events(faces, {i: i / 30 for i in range(8)}))
    (carried,) = report.carried
    assert (carried.track_id, carried.identity, carried.people) == (1, "unknown-1", ["stranger-1", "stranger-2"])
    assert (carried.frame, carried.frames) == (4, 2)
    assert report.to_dict()["identity_carried"] == 1
    assert report.switches == []  # the shown identity never changed: switches do not see a carry
    # The same faces with the track ended at the change (a fresh track from frame 4): nothing carried.
    for i in range(4, 8):
        faces[i][0] = PredictedFace(box, 4, "unknown-2", False)
    fixed, _ = evaluate(truth, Events(faces, {i: i / 30 for i in range(8)}))
    assert fixed.carried == [] and fixed.to_dict()["identity_carried"] == 0


def test_tracking_scores_come_from_trackers_eval() -> None:
    a, b = (0.0, 0.0, 10.0, 10.0), (50.0, 0.0, 60.0, 10.0)
    truth = {i: [TruthFace(a, "p"), TruthFace(b, "q")] for i in range(6)}
    steady = Events({i: [PredictedFace(a, 1, None, False), PredictedFace(b, 2, None, False)] for i in range(6)},
                    {i: i / 30 for i in range(6)})
    perfect, _ = evaluate(truth, steady)
    assert perfect.tracking["IDF1"] == pytest.approx(1.0) and perfect.tracking["IDSW"] == 0
    assert perfect.tracking["HOTA"] == pytest.approx(1.0)
    # From frame 3 the two track IDs swap people: an ID switch on each, and IDF1 drops to one half.
    swapped = Events({i: [PredictedFace(a, 1 if i < 3 else 2, None, False),
                          PredictedFace(b, 2 if i < 3 else 1, None, False)] for i in range(6)}, steady.pts)
    report, _ = evaluate(truth, swapped)
    assert report.tracking["IDSW"] == 2
    assert report.tracking["IDF1"] == pytest.approx(0.5)


def test_only_frames_in_both_files_are_evaluated_and_that_is_said() -> None:
    truth = {i: [TruthFace((0, 0, 10, 10), "obama")] for i in range(10)}
    events = Events({i: [PredictedFace((0, 0, 10, 10), 1, "obama", True)] for i in range(4)},
                    {i: i / 30 for i in range(4)})
    report, _ = evaluate(truth, events)
    assert report.frames["evaluated"] == 4 and report.people[0].recall == pytest.approx(1.0)
    assert "cover 4 of the truth's 10 frames" in report.warnings[0]
    longer = Events({i: [PredictedFace((0, 0, 10, 10), 1, "obama", True)] for i in range(12)},
                    {i: i / 30 for i in range(12)})
    report, _ = evaluate(truth, longer)
    assert report.frames["evaluated"] == 10 and report.warnings == ["2 frames of the events have no truth line; "
                                                                    "they are not evaluated"]
    with pytest.raises(FacetrackError, match="share no frame"):
        evaluate({20: truth[0]}, events)


def test_bad_files_are_named_with_their_line(tmp_path: Path, scene_files: tuple[Path, Path]) -> None:
    events, truth = scene_files
    with pytest.raises(FacetrackError, match="looks like an events file"):
        load_truth(events)
    with pytest.raises(FacetrackError, match="holds no frame events"):
        load_events(truth)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"frame": 0, "faces": []}\n{"frame": 1, "faces": [{"box": [1, 2, 3]}]}\n')
    with pytest.raises(FacetrackError, match=r"broken.jsonl:2: not a truth line"):
        load_truth(broken)
    with pytest.raises(FacetrackError, match="truth file not found"):
        load_truth(tmp_path / "nope.jsonl")


def test_runs_and_rows_from_events() -> None:
    assert runs({0: "named", 1: "named", 2: "wrong", 4: "wrong"}) == [(0, 2, "named"), (2, 1, "wrong"),
                                                                       (4, 1, "wrong")]
    _, events = _scene()
    rows = rows_from_events(events)
    assert [r.label for r in rows] == ["alice", "bob", "unknown-2", "unknown-1", "unknown-3",  # by first frame
                                       "(not yet identified)"]
    without_identity = [{"type": "frame", "frame": 0, "pts": 0, "faces": [_face(ALICE_BOX, 7)]}]
    assert [r.label for r in rows_from_events(without_identity)] == ["track #7"]


def test_timeline_picture_is_written_and_bad_names_refused(tmp_path: Path) -> None:
    _, events = _scene()
    picture = draw_timeline(rows_from_events(events), tmp_path / "t.png", fps=10)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FacetrackError, match="use a .png"):
        draw_timeline(rows_from_events(events), tmp_path / "t.xyz")


def test_eval_command_json_tables_and_plot(tmp_path: Path, scene_files: tuple[Path, Path]) -> None:
    events, truth = scene_files
    result = run_cli("eval", events, "--truth", truth, "--json", "--gap", "3", "--plot", tmp_path / "p.png")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["false_names"]["total"] == 6 and report["identity_switches"] == 4
    assert report["identity_carried"] == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
    tables = run_cli("eval", events, "--truth", truth)
    assert tables.returncode == 0, tables.stderr
    for text in ("gallery people", "false names", "identity carried to another person: 0", "strangers", "IDF1",
                 "HOTA", "alice"):
        assert text in tables.stdout


def test_eval_command_mistakes_are_one_line(tmp_path: Path, scene_files: tuple[Path, Path]) -> None:
    events, truth = scene_files
    for args, message in (((tmp_path / "none.jsonl", "--truth", truth), "events file not found"),
                          ((events, "--truth", events), "looks like an events file"),
                          ((events, "--truth", truth, "--iou", "0"), "--iou must be in"),
                          ((events, "--truth", truth, "--plot", tmp_path / "no" / "p.png"), "does not exist")):
        result = run_cli("eval", *args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_annotate_draws_a_timeline_without_an_events_file(tmp_path: Path, clip_path: Path,
                                                          fast_detector_path: Path) -> None:
    picture = tmp_path / "who.png"
    result = run_cli("annotate", clip_path, "--timeline", picture, "--detector", fast_detector_path)
    assert result.returncode == 0, result.stderr
    assert picture.read_bytes()[:4] == b"\x89PNG" and list(tmp_path.iterdir()) == [picture]
