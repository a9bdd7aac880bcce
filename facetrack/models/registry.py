"""Model packs: where the ONNX files come from, where they are cached, and how they are checked.

Explicit files win (config / `--detector` / `--recognizer`, then `FACETRACK_DETECTOR` / `FACETRACK_RECOGNIZER`);
otherwise the pack is looked up in the cache, then in InsightFace's own `~/.insightface/models/<pack>`, and
downloaded from InsightFace's release on first use, its SHA-256 checked before anything is unpacked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from facetrack.config import ModelsConfig
from facetrack.errors import FacetrackError
from facetrack.private import private_dir
from facetrack.urls import origin

log = logging.getLogger(__name__)

Role = Literal["detector", "recognizer"]
RELEASE_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7"
# What an archive may unpack to, by its own declaration (checked before anything is written, and again while
# writing): the largest pack (buffalo_l) unpacks to about 330 MB.
MAX_MODEL_BYTES = 1 << 30
MAX_PACK_BYTES = 2 << 30


@dataclass(frozen=True)
class ModelFile:
    name: str
    role: Role
    sha256: str | None  # None: no published checksum we could record; said aloud on download


@dataclass(frozen=True)
class ModelPack:
    name: str
    archive_sha256: str | None
    detector: ModelFile
    recognizer: ModelFile
    licence: str = "InsightFace pretrained weights: non-commercial research use only"

    @property
    def files(self) -> tuple[ModelFile, ModelFile]:
        return (self.detector, self.recognizer)

    def url(self, base: str | None = None) -> str:
        return f"{(base or RELEASE_URL).rstrip('/')}/{self.name}.zip"


PACKS: dict[str, ModelPack] = {
    "buffalo_l": ModelPack(
        name="buffalo_l",
        archive_sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
        detector=ModelFile(
            "det_10g.onnx", "detector", "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91"
        ),
        recognizer=ModelFile(
            "w600k_r50.onnx", "recognizer", "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"
        ),
    ),
    "buffalo_s": ModelPack(
        name="buffalo_s",
        archive_sha256=None,
        detector=ModelFile("det_500m.onnx", "detector", None),
        recognizer=ModelFile("w600k_mbf.onnx", "recognizer", None),
    ),
    "buffalo_sc": ModelPack(
        name="buffalo_sc",
        archive_sha256=None,
        detector=ModelFile("det_500m.onnx", "detector", None),
        recognizer=ModelFile("w600k_mbf.onnx", "recognizer", None),
    ),
}

ENV_VARS: dict[Role, str] = {"detector": "FACETRACK_DETECTOR", "recognizer": "FACETRACK_RECOGNIZER"}
FLAGS: dict[Role, str] = {"detector": "--detector", "recognizer": "--recognizer"}


def facetrack_home() -> Path:
    """facetrack's own folder for downloads and caches: $FACETRACK_HOME, else ~/.cache/facetrack."""
    home = os.environ.get("FACETRACK_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "facetrack"


def cache_root(config: ModelsConfig | None = None) -> Path:
    """Where packs are cached: config, then $FACETRACK_HOME/models, then ~/.cache/facetrack/models."""
    if config is not None and config.cache_dir is not None:
        return config.cache_dir.expanduser()
    return facetrack_home() / "models"


def get_pack(name: str) -> ModelPack:
    try:
        return PACKS[name]
    except KeyError:
        known = ", ".join(PACKS)
        raise FacetrackError(f"unknown model pack {name!r}: choose one of {known}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pack_dirs(pack: ModelPack, config: ModelsConfig | None) -> list[Path]:
    # Reuse what InsightFace itself already downloaded rather than fetching 280 MB again.
    return [cache_root(config) / pack.name, Path.home() / ".insightface" / "models" / pack.name]


def find_pack_file(pack: ModelPack, model: ModelFile, config: ModelsConfig | None = None) -> Path | None:
    for folder in _pack_dirs(pack, config):
        candidate = folder / model.name
        if candidate.is_file():
            return candidate
    return None


def _explicit_path(role: Role, config: ModelsConfig) -> Path | None:
    configured = config.detector if role == "detector" else config.recognizer
    if configured is not None:
        return configured.expanduser()
    from_env = os.environ.get(ENV_VARS[role])
    return Path(from_env).expanduser() if from_env else None


def resolve_model(role: Role, config: ModelsConfig, download: bool = True) -> Path:
    """Path of the detector or recognizer to run, downloading the pack if needed and allowed."""
    explicit = _explicit_path(role, config)
    if explicit is not None:
        if not explicit.is_file():
            raise FacetrackError(
                f"{role} model file not found: {explicit} (check the path given to {FLAGS[role]} "
                f"or {ENV_VARS[role]})"
            )
        return explicit
    pack = get_pack(config.pack)
    model = pack.detector if role == "detector" else pack.recognizer
    found = find_pack_file(pack, model, config)
    if found is not None:
        return found
    if not download:
        raise FacetrackError(_missing_message(pack, model, config, reason="not downloaded yet"))
    download_pack(pack, config)
    found = find_pack_file(pack, model, config)
    if found is None:
        raise FacetrackError(_missing_message(pack, model, config, reason=f"{pack.name}.zip does not contain it"))
    return found


def _missing_message(pack: ModelPack, model: ModelFile, config: ModelsConfig | None, reason: str) -> str:
    target = cache_root(config) / pack.name / model.name
    return (
        f"{model.role} model {model.name} of pack {pack.name} is missing ({reason}): run "
        f"`facetrack models download {pack.name}` while online, copy the file to {target}, "
        f"or pass {FLAGS[model.role]} PATH / set {ENV_VARS[model.role]}"
    )


def download_pack(pack: ModelPack, config: ModelsConfig | None = None, timeout: float = 30.0) -> Path:
    """Download and unpack `pack` into the cache; the archive's SHA-256 is checked before unpacking."""
    target = cache_root(config) / pack.name
    mirror = os.environ.get("FACETRACK_MODEL_MIRROR")
    url = pack.url(mirror)
    if pack.archive_sha256 is None:  # every time: a pack fetched on first use says it as `models download` does
        log.warning("no published checksum is recorded for %s; the download from %s is not verified",
                    pack.name, origin(url))
    if mirror and urllib.parse.urlsplit(mirror).scheme.lower() == "http":
        log.warning("FACETRACK_MODEL_MIRROR %s is plain http://: the models can be altered on the way "
                    "(use https://)", origin(mirror))
    private_dir(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{pack.name}-") as tmp:
        archive = Path(tmp) / f"{pack.name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, archive.open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FacetrackError(
                f"cannot download model pack {pack.name} from {url} ({reason}): when offline, copy "
                f"{pack.detector.name} and {pack.recognizer.name} into {target}, or pass --detector PATH "
                "and --recognizer PATH"
            ) from None
        if pack.archive_sha256 is not None:
            actual = sha256_of(archive)
            if actual != pack.archive_sha256:
                raise FacetrackError(
                    f"checksum mismatch for {url}: expected {pack.archive_sha256}, got {actual} "
                    "(the download is corrupt or was altered; nothing was installed)"
                )
        unpacked = Path(tmp) / "unpacked"
        _extract_onnx(archive, unpacked)
        for model in pack.files:
            path = unpacked / model.name
            if path.is_file() and model.sha256 is not None and sha256_of(path) != model.sha256:
                raise FacetrackError(f"checksum mismatch for {model.name} in {url}; nothing was installed")
        private_dir(target)
        for path in unpacked.iterdir():
            os.replace(path, target / path.name)  # atomic per file: never a half-written model in the cache
    return target


def _onnx_members(bundle: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, str]]:
    """The .onnx files to unpack, refused as a whole when a name or a declared size is not what a pack holds."""
    members: dict[str, zipfile.ZipInfo] = {}
    for member in bundle.infolist():
        parts = member.filename.replace("\\", "/").split("/")
        if member.filename.startswith("/") or ".." in parts or ":" in parts[0]:
            raise FacetrackError(f"{archive.name} holds a path outside its folder ({member.filename!r}): "
                                 "refused, nothing was installed (the download is not a model pack)")
        name = parts[-1]  # packs nest files one folder deep, or not at all
        if member.is_dir() or not name.endswith(".onnx"):
            continue
        if name in members:
            raise FacetrackError(f"{archive.name} holds {name} twice ({members[name].filename!r} and "
                                 f"{member.filename!r}): refused, nothing was installed")
        if member.file_size > MAX_MODEL_BYTES:
            raise FacetrackError(f"{archive.name}: {member.filename} would unpack to {member.file_size / 2**20:,.0f} "
                                 f"MiB, more than a model is ({MAX_MODEL_BYTES >> 20} MiB at most): refused, nothing "
                                 "was installed")
        members[name] = member
    total = sum(m.file_size for m in members.values())
    if total > MAX_PACK_BYTES:
        raise FacetrackError(f"{archive.name} would unpack to {total / 2**20:,.0f} MiB, more than a pack is "
                             f"({MAX_PACK_BYTES >> 20} MiB at most): refused, nothing was installed")
    return [(member, name) for name, member in members.items()]


def _extract_onnx(archive: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = _onnx_members(bundle, archive)
            total = sum(m.file_size for m, _ in members)
            free = shutil.disk_usage(dest).free
            if total > free:
                raise FacetrackError(f"{archive.name} unpacks to {total / 2**20:,.0f} MiB and {dest.parent} has "
                                     f"{free / 2**20:,.0f} MiB free: free space or set models.cache_dir elsewhere")
            for member, name in members:
                written = 0
                with bundle.open(member) as src, (dest / name).open("wb") as out:
                    for chunk in iter(lambda src=src: src.read(1 << 20), b""):  # type: ignore[misc]
                        written += len(chunk)
                        if written > member.file_size:  # zipfile stops at the declared size; never trust it
                            raise FacetrackError(f"{archive.name}: {member.filename} is larger than it says: "
                                                 "refused, nothing was installed")
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())  # on disk before the rename into the cache
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        raise FacetrackError(f"{archive.name} is not a valid zip archive (corrupt download)") from None


@dataclass(frozen=True)
class VerifyResult:
    model: ModelFile
    path: Path | None
    status: Literal["ok", "missing", "mismatch", "unverified"]


def verify_pack(pack: ModelPack, config: ModelsConfig | None = None) -> list[VerifyResult]:
    results: list[VerifyResult] = []
    for model in pack.files:
        path = find_pack_file(pack, model, config)
        if path is None:
            status: Literal["ok", "missing", "mismatch", "unverified"] = "missing"
        elif model.sha256 is None:
            status = "unverified"
        else:
            status = "ok" if sha256_of(path) == model.sha256 else "mismatch"
        results.append(VerifyResult(model, path, status))
    return results
