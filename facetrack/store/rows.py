"""Rows as the SQL stores read them, and the checks both backends apply to what they write."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.store import is_stranger

_NAME = re.compile(r"^[\w][\w .'-]{0,63}$")
JOURNAL_DAYS = 1.0  # `purge` drops journal rows older than this; a worker further behind reloads everything
CHUNK = 500  # ids per `IN (...)` list


def check_name(name: str) -> str:
    if is_stranger(name) or not _NAME.match(name) or name != name.strip():
        raise FacetrackError(f"{name!r} cannot be a person's name: use letters, digits, spaces, '.', \"'\", '_' or "
                             "'-' (up to 64), and not the unknown-N form strangers have")
    return name


def vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype=np.float32)


@dataclass(frozen=True)
class Identity:
    """One person as a running worker keeps them in memory."""

    id: int
    label: str
    named: bool
    ignored: bool
    templates: np.ndarray  # K×D, K may be 0
    aliases: tuple[str, ...]  # former labels (strangers named or merged into them)


@dataclass(frozen=True)
class Template:
    """One of a person's templates as the review page lists it."""

    id: int
    quality: float
    created: float
    sighting_id: int | None  # the sighting it came from (its crop shows it), None once that one is purged
