"""The section of the identity memory (`--store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from facetrack.config.base import Section


class StoreConfig(Section):
    """The identity memory (`--store`): persistent strangers and sightings in one SQLite file, or in PostgreSQL
    (`postgresql://user@host:5432/db`) for several workers past one machine (docs/scale-out.md)."""

    path: Path | str | None = Field(None, description=(
        "`watch` default: $FACETRACK_HOME/store.db; `annotate` records only with --store. The password of a "
        "postgresql:// URL comes from PGPASSWORD or ~/.pgpass, and is never printed."))
    retention_days: float = Field(30.0, gt=0, description="`facetrack store purge` deletes sightings older than this.")
    min_looks: int = Field(3, ge=1, description=(
        "Embeddings a stranger's track needs before its mean is banked as a template."))
    max_templates: int = Field(5, ge=1, description="Templates kept per stranger, the most diverse ones.")
    template_diversity: float = Field(0.97, ge=-1.0, le=1.0, description=(
        "A new template this similar to a kept one adds nothing."))
    crop_quality: int = Field(85, ge=10, le=100, description="JPEG quality of the best crop kept per sighting.")
    duplicate_window_s: float = Field(10.0, ge=0, description=(
        "A `possible_duplicate` event when a gallery name is decided on one camera while it is on another, or left it "
        "less than this many seconds ago (every camera of a shared store counts); 0 turns it off."))

    @field_validator("path", mode="before")
    @classmethod
    def _file_or_url(cls, value: Any) -> Any:
        """A postgresql:// URL stays a string; anything else is a file path."""
        if isinstance(value, str) and not value.startswith(("postgresql://", "postgres://")):
            return Path(value)
        return value
