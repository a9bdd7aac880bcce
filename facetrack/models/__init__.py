"""Model files (registry: packs, download, checksums) and onnxruntime sessions (runtime)."""

from facetrack.models.registry import PACKS, ModelPack, download_pack, resolve_model, verify_pack
from facetrack.models.runtime import create_session, resolve_providers

__all__ = ["PACKS", "ModelPack", "create_session", "download_pack", "resolve_model", "resolve_providers", "verify_pack"]
