"""configs/default.yaml against the configuration model: every key exists, every value is valid and the default,
every setting of the model is spelled out there, and every one is described in the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from facetrack.config import FacetrackConfig, load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _sections() -> list[tuple[str, type[BaseModel] | None]]:
    sections = []
    for name, field in FacetrackConfig.model_fields.items():
        kind = field.annotation
        sections.append((name, kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None))
    return sections


def test_default_yaml_holds_valid_keys_and_the_defaults() -> None:
    assert load_config(CONFIGS / "default.yaml") == FacetrackConfig()  # an unknown key is an error, too


def test_default_yaml_spells_out_every_setting() -> None:
    written = yaml.safe_load((CONFIGS / "default.yaml").read_text(encoding="utf-8"))
    missing = []
    for section, model in _sections():
        if section not in written:
            missing.append(section)
        elif model is not None:
            missing += [f"{section}.{key}" for key in model.model_fields if key not in (written[section] or {})]
    assert not missing, f"not in configs/default.yaml: {', '.join(missing)}"


def _undescribed(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        if not (field.description or "").strip():
            found.append(prefix + name)
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += _undescribed(kind, f"{prefix}{name}.")
    return found


def test_every_setting_is_described() -> None:
    from facetrack.config import CameraConfig, RecognizerThresholds

    missing = _undescribed(FacetrackConfig) + _undescribed(RecognizerThresholds, "identity.models.*.") + \
        _undescribed(CameraConfig, "cameras[].")
    assert not missing, f"settings without Field(description=…): {', '.join(missing)}"


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_preset_loads(preset: str) -> None:
    load_config(CONFIGS / preset)
