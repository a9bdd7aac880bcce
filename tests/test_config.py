"""The config tree: YAML presets load, CLI flags override the file, mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrack.cli import build_config
from facetrack.config import FacetrackConfig, load_config
from facetrack.errors import FacetrackError

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("preset", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_loads(preset: Path) -> None:
    assert isinstance(load_config(preset), FacetrackConfig)


def test_default_yaml_spells_out_the_model_defaults() -> None:
    assert load_config(CONFIGS / "default.yaml") == FacetrackConfig()


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  pack: buffalo_s\n  detector: a.onnx\ndetector:\n  score_threshold: 0.3\n")
    config = build_config(path, detector=Path("b.onnx"), providers="cpu")
    assert config.models.detector == Path("b.onnx")
    assert config.models.pack == "buffalo_s"
    assert config.detector.score_threshold == 0.3
    assert config.runtime.providers == ["cpu"]


@pytest.mark.parametrize(("text", "message"), [
    ("detector:\n  scor_threshold: 0.3\n", "detector.scor_threshold"),
    ("detector:\n  input_size: [600, 600]\n", "multiples of 32"),
    ("- just a list\n", "mapping"),
    ("detector: [unclosed\n", "not valid YAML"),
])
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(FacetrackError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FacetrackError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
