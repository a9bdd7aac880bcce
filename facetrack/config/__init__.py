"""One typed configuration tree, loaded from YAML and overridden by CLI flags.

Defaults live here, in the models, not as literals scattered through the stages. `configs/default.yaml`
spells the same defaults out for users to copy and edit. The sections are kept by job: `models.py` (model
files, runtime, decoding), `stages.py` (detection, tracking, embedding, identity), `live.py` (the annotated
video, cameras, live sources, MQTT, webhooks), `store.py` (the identity memory); `load.py` holds the whole tree
and reads it from a file.
"""

from facetrack.config.base import Section
from facetrack.config.live import (
    AnnotationConfig,
    CameraConfig,
    LiveConfig,
    MqttConfig,
    WebhookConfig,
    is_camera_name,
    name_cameras,
)
from facetrack.config.load import FacetrackConfig, load_config
from facetrack.config.models import PROVIDER_SHORT_NAMES, DecodeConfig, ModelsConfig, RuntimeConfig
from facetrack.config.stages import (
    DetectorConfig,
    EmbeddingConfig,
    IdentityConfig,
    RecognizerThresholds,
    TrackerConfig,
)
from facetrack.config.store import StoreConfig

__all__ = [
    "PROVIDER_SHORT_NAMES",
    "AnnotationConfig",
    "CameraConfig",
    "DecodeConfig",
    "DetectorConfig",
    "EmbeddingConfig",
    "FacetrackConfig",
    "IdentityConfig",
    "LiveConfig",
    "ModelsConfig",
    "MqttConfig",
    "RecognizerThresholds",
    "RuntimeConfig",
    "Section",
    "StoreConfig",
    "TrackerConfig",
    "WebhookConfig",
    "is_camera_name",
    "load_config",
    "name_cameras",
]
