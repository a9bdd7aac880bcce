"""facetrack's identities against the naive baseline's (embed and decide every face in every frame), both from
`facetrack bench --events-dir` on the real clip with the same models, thresholds and gallery, both scored by
`facetrack eval` against the hand-labelled truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

TRUTH = Path(__file__).parent / "data" / "short_hamilton_clip.truth.jsonl"


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, clip_path: Path, detector_path: Path, recognizer_path: Path,
            gallery_dir: Path) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("vs-naive")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACETRACK_HOME", str(out / "home"))
        bench = run_cli("bench", clip_path, "--events-dir", out, "--json", "--gallery", gallery_dir,
                        "--detector", detector_path, "--recognizer", recognizer_path, timeout=900)
    assert bench.returncode == 0, bench.stderr
    scored = {}
    for run in ("facetrack", "naive"):
        result = run_cli("eval", out / f"{run}.jsonl", "--truth", TRUTH, "--json")
        assert result.returncode == 0, result.stderr
        scored[run] = json.loads(result.stdout)
    return scored


def _recall(report: dict, person: str) -> float:
    return next(p["recall"] for p in report["people"] if p["person"] == person)


def test_no_more_false_names_or_switches_than_naive(reports: dict[str, dict]) -> None:
    ours, naive = reports["facetrack"], reports["naive"]
    assert ours["false_names"]["total"] <= naive["false_names"]["total"]
    assert ours["identity_switches"] <= naive["identity_switches"]


def test_recall_within_the_decision_delay_of_naive(reports: dict[str, dict]) -> None:
    """facetrack names a person after two agreeing looks 0.1 s apart; per appearance that costs a few frames."""
    for person in ("lin_manuel_miranda", "obama"):
        assert _recall(reports["facetrack"], person) >= _recall(reports["naive"], person) - 0.07


def test_only_facetrack_keeps_who_is_who(reports: dict[str, dict]) -> None:
    ours, naive = reports["facetrack"], reports["naive"]
    assert ours["tracking"]["IDF1"] > 0.75 > 0.1 > naive["tracking"]["IDF1"]
    strangers_with_ids = [s for s in ours["strangers"] if s["anonymous_ids"]]
    assert strangers_with_ids and all(len(s["anonymous_ids"]) == 1 for s in strangers_with_ids)
    assert not any(s["anonymous_ids"] for s in naive["strangers"])
