"""The gallery of enrolled people, in one SQLite file: people, templates (embedding, source photo, quality) and
the fingerprint of the recognizer that made them.

Embeddings are biometric data: the file is created readable by its owner only, deletions overwrite the freed
pages (`secure_delete`) and `remove` ends with `VACUUM`, so nothing of a removed person stays in the file.
A gallery is only compared with embeddings of the model that built it.

By job: `match.py` (the gallery in memory, matching), `enrol.py` (photos → templates), `file.py` (the .db file),
`cache.py` (what `--gallery` names: a .db file or a photo folder built once and cached).
"""

from facetrack.gallery.cache import clear_cache, open_gallery, shred
from facetrack.gallery.enrol import (
    IMAGE_SUFFIXES,
    SUBJECT_DOMINANCE,
    Enroller,
    Template,
    check_person_name,
    enroll_folder,
    photos_by_person,
)
from facetrack.gallery.file import SCHEMA, GalleryStore, check_gallery_output
from facetrack.gallery.match import Gallery, Match, check_fingerprint

__all__ = [
    "IMAGE_SUFFIXES",
    "SCHEMA",
    "SUBJECT_DOMINANCE",
    "Enroller",
    "Gallery",
    "GalleryStore",
    "Match",
    "Template",
    "check_fingerprint",
    "check_gallery_output",
    "check_person_name",
    "clear_cache",
    "enroll_folder",
    "open_gallery",
    "photos_by_person",
    "shred",
]
