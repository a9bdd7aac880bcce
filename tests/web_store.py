"""A real identity store for the review page's tests: `facetrack annotate --store` over ASL clips of two people,
made once per test session and copied for each test module (they name and forget people in their copy)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CLIPS = ("eat", "hungry")  # two people (black patterned sweater, plaid shirt), the shortest clips
_made: dict[str, Path] = {}


def filled_store(tmp_path_factory: pytest.TempPathFactory, assets: Path, detector: Path, recognizer: Path) -> Path:
    if "store" not in _made:
        folder = tmp_path_factory.mktemp("web_store")
        store = folder / "store.db"
        env = {**os.environ, "COLUMNS": "200"}
        runs = [subprocess.Popen([sys.executable, "-m", "facetrack", "annotate",
                                  str(assets / "media" / "real" / "asl" / f"{clip}.mkv"), "--store", str(store),
                                  "--detector", str(detector), "--recognizer", str(recognizer)],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                for clip in CLIPS]  # side by side, as two cameras would write one store
        try:
            outputs = [run.communicate(timeout=240)[0] for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait(timeout=10)
        for run, output in zip(runs, outputs, strict=True):
            assert run.returncode == 0, output
        _made["store"] = store
    return _made["store"]


def copy_store(source: Path, target: Path) -> Path:
    """A consistent copy of a store file (its write-ahead log included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    os.chmod(target, 0o600)
    return target
