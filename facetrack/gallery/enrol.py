"""Enrolment: photos → templates, refusing a photo whose subject is not clear; a photo folder → its people."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrack.detect import FaceDetector, read_photo
from facetrack.embed import FaceEmbedder, face_quality
from facetrack.errors import FacetrackError
from facetrack.types import LANDMARKS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# The subject must be clearly the largest face: at least this many times the area of the next one.
SUBJECT_DOMINANCE = 2.0


@dataclass(frozen=True)
class Template:
    embedding: np.ndarray
    source: str
    quality: float


class Enroller:
    """Turns enrolment photos into templates, refusing photos whose subject is not clear."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder) -> None:
        self.detector = detector
        self.embedder = embedder

    def template(self, photo: Path) -> Template:
        read = read_photo(photo) if photo.is_file() else None
        if read is None:
            reason = "not found" if not photo.exists() else "not a readable image (corrupt or unsupported format)"
            raise FacetrackError(f"photo {photo}: {reason}")
        return self.template_of(read[0], str(photo))

    def template_of(self, image: np.ndarray, photo: str) -> Template:
        """The template of a decoded photo (BGR) named `photo` in messages."""
        faces = self.detector.detect_still(image)
        if len(faces) == 0:
            raise FacetrackError(f"photo {photo}: no face found (use a photo where the face is clearly visible)")
        areas = faces.area
        order = np.argsort(-areas)
        if len(faces) > 1 and areas[order[0]] < SUBJECT_DOMINANCE * areas[order[1]]:
            raise FacetrackError(
                f"photo {photo}: {len(faces)} faces and none is clearly the subject (crop it to one person)"
            )
        subject = faces[int(order[0]):int(order[0]) + 1]
        crops = self.embedder.align(image, subject.data[LANDMARKS])
        quality = face_quality(subject.xyxy, subject.data[LANDMARKS], crops)[0].score
        return Template(self.embedder.embed_crops(crops)[0], photo, quality)


def check_person_name(name: str) -> str:
    """A person's name is shown, stored and used as a folder name: not empty, no path in it."""
    if not name.strip():
        raise FacetrackError("the person's name is empty: give a name, e.g. `facetrack gallery add people.db "
                             "ada photo.jpg`")
    if "/" in name or "\\" in name or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise FacetrackError(f"the person's name {name!r} holds a path separator or a control character: give a "
                             "plain name such as ada_lovelace")
    return name


def photos_by_person(folder: Path) -> dict[str, list[Path]]:
    """`folder/<person>/*.jpg` → {person: photos}; the person's name is the folder name."""
    if not folder.is_dir():
        raise FacetrackError(f"gallery folder not found: {folder} (expected one sub-folder of photos per person)")
    people = {
        sub.name: sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
    }
    for photos in people.values():
        for photo in photos:
            if not photo.exists():  # a symlink to nothing
                raise FacetrackError(f"photo {photo} is a broken link (to {os.readlink(photo)}): restore the "
                                     "photo or delete the link")
    people = {name: photos for name, photos in people.items() if photos}
    if not people:
        raise FacetrackError(f"gallery folder {folder} has no photos: expected {folder}/<person>/<photo>.jpg")
    return people


def enroll_folder(folder: Path, enroller: Enroller) -> dict[str, list[Template]]:
    """Templates for every usable photo; a refused photo is reported and skipped."""
    templates: dict[str, list[Template]] = {}
    for name, photos in photos_by_person(folder).items():
        templates[name] = []
        for photo in photos:
            try:
                templates[name].append(enroller.template(photo))
            except FacetrackError as exc:
                log.warning("skipped %s", exc)
        if not templates[name]:
            log.warning("%s has no usable photo and is left out of the gallery", name)
    return templates
