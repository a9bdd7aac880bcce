"""The whole tree, and how it is loaded: a YAML file (or the defaults), then the command line's overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from facetrack.config.base import Section
from facetrack.config.live import AnnotationConfig, CameraConfig, LiveConfig, MqttConfig, WebhookConfig
from facetrack.config.models import DecodeConfig, ModelsConfig, RuntimeConfig
from facetrack.config.stages import DetectorConfig, EmbeddingConfig, IdentityConfig, TrackerConfig
from facetrack.config.store import StoreConfig
from facetrack.errors import FacetrackError


class FacetrackConfig(Section):
    """The whole configuration tree."""

    models: ModelsConfig = Field(default_factory=ModelsConfig, description=ModelsConfig.__doc__)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description=RuntimeConfig.__doc__)
    decode: DecodeConfig = Field(default_factory=DecodeConfig, description=DecodeConfig.__doc__)
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description=DetectorConfig.__doc__)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description=TrackerConfig.__doc__)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig, description=EmbeddingConfig.__doc__)
    identity: IdentityConfig = Field(default_factory=IdentityConfig, description=IdentityConfig.__doc__)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig, description=AnnotationConfig.__doc__)
    cameras: list[CameraConfig] = Field(default_factory=list, description=(
        "Named cameras for `facetrack watch` when none is given on its command line."))
    live: LiveConfig = Field(default_factory=LiveConfig, description=LiveConfig.__doc__)
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description=MqttConfig.__doc__)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig, description=WebhookConfig.__doc__)
    store: StoreConfig = Field(default_factory=StoreConfig, description=StoreConfig.__doc__)

    @model_validator(mode="after")
    def _unique_camera_names(self) -> FacetrackConfig:
        names = [camera.name for camera in self.cameras]
        if len(names) != len(set(names)):
            raise ValueError(f"camera names must be unique: {', '.join(names)}")
        return self


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FacetrackError(f"config file not found: {path} (pass an existing YAML file to --config)") from None
    except OSError as exc:
        raise FacetrackError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise FacetrackError(f"config file {path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, "
                             f"column {column} (save the file as UTF-8)") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise FacetrackError(f"config file {path} is not valid YAML{where}: {problem or str(exc).splitlines()[0]} "
                             "(fix the syntax there; configs/default.yaml shows every setting)") from None
    if not isinstance(data, dict):
        raise FacetrackError(f"config file {path} must hold a mapping of sections (models:, detector:, …)")
    return data


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> FacetrackConfig:
    """Load the YAML file at `path` (or the defaults), then apply `overrides` (nested dicts, None values skipped)."""
    data = _read_yaml(Path(path)) if path is not None else {}
    if overrides:
        data = _merge(data, _drop_none(overrides))
    try:
        return FacetrackConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = f" in {path}" if path is not None else ""
        if first["type"] == "extra_forbidden":
            raise FacetrackError(f"unknown setting {where}{source}: {_known_settings(first['loc'])}") from None
        raise FacetrackError(f"invalid setting {where}{source}: {first['msg'].removeprefix('Value error, ')}") from None


def _known_settings(loc: tuple[Any, ...]) -> str:
    """What a misspelt key may have meant: the closest names of its section (all of them, if none is close)."""
    import difflib

    section: Any = FacetrackConfig
    for part in loc[:-1]:
        field = section.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # a list index (cameras.0)
        annotation = field.annotation
        section = next((a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type)
                        and issubclass(a, BaseModel)), section)
    names = list(section.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return (f"did you mean {close[0]}?" if close else f"the settings here are {', '.join(names)}") + \
        " (configs/default.yaml lists every setting)"


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                cleaned[key] = value
        elif value is not None:
            cleaned[key] = value
    return cleaned
