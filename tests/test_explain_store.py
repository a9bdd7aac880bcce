"""Explaining a stranger's ID with the identity memory: on the ASL clips (the same people recur across clips,
MANIFEST.md), a stranger's decision names the remembered strangers it was compared with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrack.config import load_config
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def decisions(tmp_path_factory: pytest.TempPathFactory, assets: Path, fast_detector_path: Path,
              recognizer_path: Path) -> dict[str, list[dict]]:
    """The identity events of three clips run one after another into one store: `again` and `brother` show the
    same man (Misfits shirt), `bird` someone else (grey T-shirt)."""
    out = tmp_path_factory.mktemp("explain_store")
    found: dict[str, list[dict]] = {}
    for clip in ("again", "brother", "bird"):
        events = out / f"{clip}.jsonl"
        result = run_cli("annotate", assets / "media" / "real" / "asl" / f"{clip}.mkv", "--events", events,
                         "--store", out / "S.db", "--detector", fast_detector_path, "--recognizer", recognizer_path,
                         timeout=120)
        assert result.returncode == 0, result.stderr
        found[clip] = [e for e in map(json.loads, events.read_text().splitlines()) if e["type"] == "identity"]
    return found


def test_a_strangers_decision_names_the_remembered_strangers_it_was_compared_with(
        decisions: dict[str, list[dict]], recognizer_path: Path) -> None:
    bank = load_config().identity.thresholds_for(recognizer_path.stem).bank_threshold
    first = decisions["again"][0]
    assert first["identity"] == "unknown-1" and first["candidates"] == []  # nobody to compare with yet
    same = decisions["brother"][0]
    assert same["identity"] == "unknown-1"  # the same man, remembered…
    assert same["candidates"][0]["name"] == "unknown-1" and same["candidates"][0]["similarity"] >= bank  # …and why
    other = decisions["bird"][0]
    assert other["identity"] == "unknown-2"  # someone else: a new ID…
    best = other["candidates"][0]
    assert best["name"] == "unknown-1" and best["similarity"] < bank  # …because the closest was not close enough
