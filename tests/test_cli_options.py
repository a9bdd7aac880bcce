"""The model options, one bundle: every command that runs the models takes the same six flags, and they reach
its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli_here

FLAGS = ("--config", "--detector", "--recognizer", "--pack", "--providers", "--require-gpu")
COMMANDS = {  # each with arguments that get it as far as building its configuration
    "annotate": ["{video}", "--events", "{tmp}/e.jsonl"],
    "watch": ["{video}"],
    "bench": ["{video}"],
    "identify": ["{image}", "--gallery", "{tmp}"],
    "gallery build": ["{tmp}", "-o", "{tmp}/g.db"],
    "gallery add": ["{tmp}/g.db", "someone", "{image}"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_model_command_takes_the_six_flags(command: str) -> None:
    result = run_cli_here(*command.split(), "--help")
    assert result.returncode == 0, result.stderr
    assert all(flag in result.stdout for flag in FLAGS), result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_the_flags_reach_the_configuration(command: str, tmp_path: Path) -> None:
    (tmp_path / "someone").mkdir()
    (tmp_path / "image.jpg").write_bytes(b"")
    (tmp_path / "someone" / "photo.jpg").write_bytes(b"")
    (tmp_path / "video.mp4").write_bytes(b"")
    args = [a.format(tmp=tmp_path, video=tmp_path / "video.mp4", image=tmp_path / "image.jpg")
            for a in COMMANDS[command]]
    result = run_cli_here(*command.split(), *args, "--providers", "gpu-please")
    assert result.returncode == 2, result.stderr
    assert "unknown provider 'gpu-please'" in result.stderr, result.stderr
