"""Gallery enrolment from photos uploaded to the review page: the checks an upload needs (size, type, pixels),
then the same `Enroller` and `GalleryStore.add` as `facetrack gallery add` (one clear face per photo; all photos
of a request are added, or none)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrack.config import FacetrackConfig
from facetrack.errors import FacetrackError

MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTOS = 20
MAX_PIXELS = 40_000_000  # a decoded photo, width × height
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


class TooLarge(FacetrackError):
    """An upload past the limits (HTTP 413)."""


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def decode_photo(upload: Upload) -> np.ndarray:
    """The photo as BGR pixels, after its size and type are checked; never written to disk."""
    import cv2

    name = Path(upload.filename or "photo").name
    if len(upload.data) > MAX_PHOTO_BYTES:
        raise TooLarge(f"photo {name}: larger than the {MAX_PHOTO_BYTES // 2**20} MiB a photo may have (send a "
                       "smaller one)")
    if not any(upload.data.startswith(magic) for magic in SIGNATURES):
        raise FacetrackError(f"photo {name}: not a JPEG or PNG file (send a photo in one of those)")
    header = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if header is not None and header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise TooLarge(f"photo {name}: more than {MAX_PIXELS // 1_000_000} megapixels (send a smaller one)")
    image = cv2.imdecode(np.frombuffer(upload.data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FacetrackError(f"photo {name}: not a readable image (corrupt or truncated)")
    return image


class Enrolment:
    """Enrols into the gallery file `gallery`; the models load on the first photo, then stay."""

    def __init__(self, gallery: Path, config: FacetrackConfig) -> None:
        self.gallery = Path(gallery)
        self.config = config
        self._enroller = None
        self._lock = threading.Lock()
        if self.gallery.exists() and not self.gallery.is_file():
            raise FacetrackError(f"--gallery {self.gallery}: enrolment writes a gallery file (.db), not a folder")
        if not self.gallery.parent.is_dir():
            raise FacetrackError(f"--gallery {self.gallery}: folder {self.gallery.parent} does not exist")
        if self.gallery.is_file():
            self.people()  # a file that is not a gallery fails now, not at the first upload

    def people(self) -> dict[str, int]:
        from facetrack.gallery import GalleryStore

        return GalleryStore(self.gallery).people() if self.gallery.is_file() else {}

    def _load(self):  # type: ignore[no-untyped-def]
        from facetrack.models.faces import FaceModels

        if self._enroller is None:  # the models load with the first upload, not with the page
            self._enroller = FaceModels.load(self.config, identity=True, gallery=False).enroller
        return self._enroller

    def add(self, name: str, uploads: list[Upload]) -> tuple[int, int]:
        """Enrol `uploads` as `name`; returns (templates added, templates the person now has)."""
        from facetrack.gallery import GalleryStore
        from facetrack.store.rows import check_name

        check_name(name)
        if not uploads:
            raise FacetrackError("no photo sent: choose one or more photos of the person, one face each")
        if len(uploads) > MAX_PHOTOS:
            raise TooLarge(f"{len(uploads)} photos: send at most {MAX_PHOTOS} at once")
        images = [(Path(u.filename or "photo").name, decode_photo(u)) for u in uploads]
        with self._lock:  # one enrolment at a time: the models are shared, the file written in one transaction
            enroller = self._load()
            templates = [enroller.template_of(image, photo) for photo, image in images]  # a refusal writes nothing
            store = GalleryStore(self.gallery)
            store.add(name, templates, enroller.embedder)
            return len(templates), store.people()[name]
