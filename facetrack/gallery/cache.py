"""The gallery a command asks for (`--gallery`): a .db file, or a photo folder built once and cached; and the
cache's secure clearing."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from facetrack.errors import FacetrackError
from facetrack.gallery.enrol import Enroller, enroll_folder, photos_by_person
from facetrack.gallery.file import GalleryStore
from facetrack.gallery.match import Gallery
from facetrack.private import private_dir

log = logging.getLogger(__name__)


def _folder_digest(folder: Path) -> str:
    """Changes whenever a photo is added, removed or replaced: the cached build is then redone."""
    digest = hashlib.sha256()
    for name, photos in photos_by_person(folder).items():
        for photo in photos:
            stat = photo.stat()
            digest.update(f"{name}/{photo.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def open_gallery(spec: Path, enroller: Enroller, cache_dir: Path) -> Gallery:
    """`--gallery`: a .db file, or a photo folder built once per (folder contents, model) and cached."""
    if spec.is_file():
        gallery = GalleryStore(spec).load()
        gallery.check_model(enroller.embedder)
        return gallery
    if not spec.exists():
        raise FacetrackError(f"gallery not found: {spec} (pass a photo folder or a .db built by `facetrack "
                             "gallery build`)")
    contents = _folder_digest(spec)
    # The detector is part of the key: its landmarks align the photos, so another detector gives other templates.
    detector = Path(enroller.detector.model_path).resolve()
    model = f"{enroller.embedder.fingerprint}|{detector}|{detector.stat().st_size}"
    key = hashlib.sha256(f"{spec.resolve()}|{model}".encode()).hexdigest()[:16]
    cached = GalleryStore(cache_dir / f"{spec.name}-{key}.db")
    if cached.path.is_file() and _cache_meta(cached).get("folder_digest") == contents:
        return cached.load()
    log.info("building the gallery from %s (cached in %s)", spec, cached.path)
    private_dir(cache_dir)  # the cache holds face embeddings: its owner only
    templates = enroll_folder(spec, enroller)
    # The folder changed: every older cache of it (this model's, another model's) may hold someone removed
    # from it since. They are overwritten and deleted; the one in use is rebuilt now, the others when needed.
    for stale in cache_dir.glob(f"{spec.name}-*.db"):
        if _cache_meta(GalleryStore(stale)).get("folder", str(spec.resolve())) == str(spec.resolve()):
            shred(stale)
    cached.build(templates, enroller.embedder, {"folder_digest": contents, "folder": str(spec.resolve())})
    return cached.load()


def _cache_meta(store: GalleryStore) -> dict[str, str]:
    try:
        return store.meta()
    except FacetrackError:
        return {}  # a damaged cache is rebuilt


def shred(path: Path) -> None:
    """Overwrite a file with zeros, flush it to disk and delete it (on a journalling or copy-on-write file
    system, or an SSD, old blocks may survive elsewhere: full-disk encryption covers that)."""
    try:
        size = path.stat().st_size
        with path.open("r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        log.warning("could not overwrite %s before deleting it: %s", path, exc.strerror)
    path.unlink(missing_ok=True)


def clear_cache(cache_dir: Path) -> list[Path]:
    """Overwrite and delete every cached folder gallery (they are rebuilt from their folders when next used)."""
    if not cache_dir.is_dir():
        return []
    removed = sorted(p for p in cache_dir.iterdir() if p.is_file() and (p.suffix == ".db" or p.name.endswith(".tmp")))
    for path in removed:
        shred(path)
    return removed
