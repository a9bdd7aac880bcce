"""Files and folders that say who was where, and when, are created readable by their owner only.

Events, recordings and stats files tell who was seen on which camera at what time; the model and gallery caches
hold face embeddings (biometric data) and the models that read them. facetrack creates such files 0600 and such
folders 0700, whatever more the umask would allow. A file or folder that already exists keeps the mode its owner
gave it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def create_private_file(path: Path | str) -> None:
    """Create `path` empty and 0600 if it does not exist (an existing file is left as it is, not truncated)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))


def open_private(path: Path | str, mode: str = "w") -> TextIO:
    """Open a text file for writing (`w`) or appending (`a`), creating it 0600."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), mode, encoding="utf-8")


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents 0700 (existing ones are left as they are); returns `path`."""
    missing = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            pass  # made meanwhile by another process
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)  # raises the right error: a file is in the way
    return path
