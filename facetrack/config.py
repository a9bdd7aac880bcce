"""One typed configuration tree, loaded from YAML and overridden by CLI flags.

Defaults live here, in the models, not as literals scattered through the stages. `configs/default.yaml`
spells the same defaults out for users to copy and edit.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from facetrack.errors import FacetrackError


class _Section(BaseModel):
    # A typo in a YAML key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class ModelsConfig(_Section):
    """Which model files to run. Explicit files win over the pack."""

    pack: str = "buffalo_l"
    detector: Path | None = None
    recognizer: Path | None = None
    cache_dir: Path | None = None  # default: $FACETRACK_HOME or ~/.cache/facetrack


PROVIDER_SHORT_NAMES = ("cpu", "cuda", "tensorrt")


class RuntimeConfig(_Section):
    """How onnxruntime runs the models: which execution providers, and their GPU settings."""

    # "auto" picks TensorRT → CUDA → CPU from what onnxruntime offers; or an explicit list such as ["cuda", "cpu"]
    # (short names cpu/cuda/tensorrt or onnxruntime's full names such as CUDAExecutionProvider).
    providers: Literal["auto"] | list[str] = "auto"
    require_gpu: bool = False  # refuse to start when no GPU provider runs, instead of warning and using the CPU
    intra_op_threads: int = 0  # 0: onnxruntime's default (all cores)
    # onnxruntime's worker threads busy-wait after each run by default; on a few cores that steals the CPU
    # from the next stage (measured: a detection right after two embeddings took 55 ms instead of 31 ms).
    allow_spinning: bool = False
    device_id: int = Field(0, ge=0)  # which GPU, for CUDA and TensorRT
    # cuDNN's convolution search: EXHAUSTIVE benchmarks every new input shape (a stall per new batch size),
    # HEURISTIC picks at once, DEFAULT takes the first algorithm.
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "HEURISTIC"
    tensorrt_fp16: bool = True  # half precision in TensorRT engines: faster on tensor-core GPUs
    tensorrt_cache_dir: Path | None = None  # engines and timing cache; default $FACETRACK_HOME/trt-engines

    @field_validator("providers", mode="before")
    @classmethod
    def _provider_list(cls, value: object) -> object:
        # A single name or a comma-separated string is a list of one or more.
        if isinstance(value, str) and value.strip().lower() != "auto":
            value = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, str):
            return "auto"
        if isinstance(value, list):
            for name in value:
                if not isinstance(name, str) or not (
                        name.lower() in PROVIDER_SHORT_NAMES or name.endswith("ExecutionProvider")):
                    raise ValueError(f"unknown provider {name!r}: use auto, cpu, cuda, tensorrt, or an onnxruntime "
                                     "name such as CUDAExecutionProvider")
            if not value:
                raise ValueError("name at least one provider, or auto")
        return value

    @field_validator("cudnn_conv_algo_search", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DecodeConfig(_Section):
    """How video is decoded."""

    # Hardware decoding through FFmpeg: "cuda" (NVDEC) or "auto" (cuda where FFmpeg offers it); falls back to
    # software decoding, saying so. Frames are copied back to memory either way.
    hwaccel: Literal["none", "auto", "cuda"] = "none"


class DetectorConfig(_Section):
    """SCRFD face detection."""

    # Explicit input size, one pass per full detection (never InsightFace's multi-size "auto" mode); a model with a
    # dynamic input gets the frame's aspect at the scale this size gives (keep_aspect).
    input_size: tuple[int, int] = (640, 640)
    score_threshold: float = Field(0.5, ge=0.0, le=1.0)
    nms_threshold: float = Field(0.4, ge=0.0, le=1.0)
    min_face_size: int = Field(0, ge=0)  # drop boxes whose shorter side is below this, in pixels
    keep_aspect: bool = Field(True, description=(
        "Models with a dynamic input get the frame's aspect at the scale input_size would give (640×384 for a "
        "16:9 frame instead of a letterboxed 640×640): the same faces for less work. Fixed-size models ignore it."))
    interval: Literal["auto"] | int = Field("auto", description=(
        "Full-frame detection every N frames; in between each tracked face is followed by the same detector on "
        "a crop around it (all crops in one small mosaic). A cut, a clock break, a lost face, overlapping faces "
        "or motion away from the faces bring the next full detection forward. 1: every frame. auto: 5 for "
        "files; for live sources the smallest N in 3..10 that keeps full detections within live_budget of the "
        "frame time; 1 for detectors with a fixed input size (a crop costs them a full pass)."))
    live_budget: float = Field(0.5, gt=0.0, le=1.0, description=(
        "With interval auto on a live source: the share of the frame time full detections may take on average "
        "(measured as it runs)."))
    motion_threshold: float = Field(0.02, ge=0.0, le=1.0, description=(
        "Share of a grey thumbnail that must change (away from the tracked faces and their bodies) since the "
        "last full detection for someone to count as maybe having entered; 0 turns the motion check off."))

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ValueError("detector interval must be auto or a whole number of frames, 1 or more")
        return value

    @field_validator("input_size")
    @classmethod
    def _multiple_of_32(cls, value: tuple[int, int]) -> tuple[int, int]:
        if any(v <= 0 or v % 32 for v in value):
            raise ValueError("detector input_size must be two positive multiples of 32, e.g. [640, 640]")
        return value


class TrackerConfig(_Section):
    """ByteTrack settings (see `trackers.ByteTrackTracker`)."""

    lost_track_buffer: int = Field(30, ge=0)  # in 30 fps frames; scaled by the real frame rate
    track_activation_threshold: float = Field(0.6, ge=0.0, le=1.0)
    minimum_consecutive_frames: int = Field(2, ge=1)
    minimum_iou_threshold: float = Field(0.1, ge=0.0, le=1.0)
    high_conf_det_threshold: float = Field(0.6, ge=0.0, le=1.0)
    # Colour-histogram correlation between consecutive frames below which a shot cut ends every track; 0: off.
    cut_threshold: float = Field(0.75, ge=0.0, le=1.0)
    # Cuts the histogram misses (same room, another person): each face is compared with its track one frame
    # earlier. Its grey thumbnail correlating below `face_change_correlation`, or its box overlapping its last
    # place below `face_change_iou`, is a change; every face changing at once while the frame's mean grey
    # difference reaches `face_cut_frame_change` (0–255) is a cut. `face_change_correlation` 0: off.
    face_change_correlation: float = Field(0.6, ge=0.0, le=1.0)
    face_change_iou: float = Field(0.5, ge=0.0, le=1.0)
    face_change_score_drop: float = Field(0.25, ge=0.0, le=1.0)  # a score falling this much: look again, no cut
    face_cut_frame_change: float = Field(10.0, ge=0.0, le=255.0)


class EmbeddingConfig(_Section):
    """When faces are embedded: throttled per track, not every face every frame."""

    undecided_interval: float = Field(0.1, gt=0.0)  # seconds between embeddings while a track's identity is open
    decided_interval: float = Field(2.0, gt=0.0)  # seconds between re-checks once decided, to catch a mistake
    improvement: float = Field(1.3, ge=1.0)  # embed at once when face quality grows by this factor
    improvement_gap: float = Field(0.1, ge=0.0)  # …but not more often than this, in seconds
    # a decided track whose face changed at once (or whose last look did not match it) is looked at again after
    # this many seconds: a change of person is caught in a few frames, not at the next re-check
    change_check_gap: float = Field(0.1, ge=0.0)
    max_per_frame: int = Field(4, ge=1)  # budget of embeddings per frame (per camera); the most needed go first
    max_batch: int = Field(32, ge=1)  # largest batch one inference call takes
    min_face_size: int = Field(20, ge=0)  # pixels (shorter box side): smaller faces are never embedded
    min_sharpness: float = Field(8.0, ge=0.0)  # variance of the Laplacian of the aligned crop; below: too blurred
    min_frontal: float = Field(0.25, ge=0.0, le=1.0)  # 1 frontal, 0.5 three-quarter, 0 profile: profiles mislead


class RecognizerThresholds(_Section):
    """Decision thresholds of one recognizer model (cosine similarity of unit embeddings)."""

    threshold: float = Field(ge=-1.0, le=1.0)  # a gallery match needs at least this similarity…
    margin: float = Field(ge=0.0, le=2.0)  # …and this lead over the next person
    relink_threshold: float = Field(ge=-1.0, le=1.0)  # a new track takes an ended track's ID at this similarity
    # Persistent strangers (`--store`): a track decided unknown takes a remembered stranger's ID only when its mean
    # embedding reaches this similarity to that stranger's templates with this lead over the next stranger;
    # stricter than the gallery, since a wrong match joins two people for good. Named people of the store are held
    # to the same bank threshold.
    bank_threshold: float = Field(0.55, ge=-1.0, le=1.0)
    bank_margin: float = Field(0.10, ge=0.0, le=2.0)


def _default_thresholds() -> dict[str, RecognizerThresholds]:
    return {
        # InsightFace buffalo packs (ArcFace on WebFace600K): the field's usual operating point.
        # (Their bank thresholds are not measured here: the field's same-person level on video, stricter than 0.42.)
        "w600k_r50": RecognizerThresholds(threshold=0.42, margin=0.05, relink_threshold=0.45, bank_threshold=0.55,
                                          bank_margin=0.10),
        "w600k_mbf": RecognizerThresholds(threshold=0.40, margin=0.05, relink_threshold=0.45, bank_threshold=0.55,
                                          bank_margin=0.10),
        # Small 128-d MobileFaceNets, measured on the test clip and gallery (see tests/test_identity_video.py). The
        # bank on the ASL clips (benchmarks/stranger_bank.py): a stranger's decision mean scores 0.74–0.95 against
        # the same person's other runs and at most 0.54 against anyone else; 0.65 sits in that gap, nearer the top.
        # Re-linking at 0.55: one look of a person scores at least 0.59 against another clip of them, and at most
        # 0.52 against anyone else (the ASL clips); 0.40 re-linked one person to another after real cuts.
        "mobilefacenet_128": RecognizerThresholds(threshold=0.30, margin=0.08, relink_threshold=0.55,
                                                  bank_threshold=0.65, bank_margin=0.10),
        "mobilefacenet_128_dynbatch": RecognizerThresholds(threshold=0.30, margin=0.08, relink_threshold=0.55,
                                                           bank_threshold=0.65, bank_margin=0.10),
    }


class IdentityConfig(_Section):
    """How a track gets, keeps and changes its identity."""

    enabled: bool = False  # also on whenever a gallery or a recognizer is given
    gallery: Path | None = None  # folder of folders (gallery/<person>/*.jpg) or a .db built from one
    # Per recognizer (file name without .onnx); `default` for any other model.
    models: dict[str, RecognizerThresholds] = Field(default_factory=_default_thresholds)
    default: RecognizerThresholds = RecognizerThresholds(threshold=0.40, margin=0.05, relink_threshold=0.45)
    evidence_decay: float = Field(0.8, gt=0.0, le=1.0)  # weight kept by older embeddings at each new one
    min_evidence: int = Field(2, ge=1)  # agreeing observations before a first decision
    switch_evidence: int = Field(3, ge=1)  # consecutive observations for another identity before a change
    conflict_window: int = Field(6, ge=2)  # recent observations looked at to call a conflict
    relink_memory: float = Field(60.0, ge=0.0)  # seconds an ended track can be re-linked to a new one
    # A decided track is checked against its own mean embedding: this many looks in a row below the model's
    # relink_threshold split it (the old track ends, the face goes on under a new ID, judged afresh) when its
    # face changed at once before them; one more look without such a sign.
    split_evidence: int = Field(2, ge=1)

    def thresholds_for(self, model_name: str) -> RecognizerThresholds:
        return self.models.get(model_name, self.default)


class AnnotationConfig(_Section):
    """What the annotated video shows."""

    draw_landmarks: bool = True
    codec: str = "libx264"  # falls back to mpeg4 where H.264 is not available
    crf: int = Field(23, ge=0, le=51)

    @field_validator("codec")
    @classmethod
    def _video_encoder(cls, value: str) -> str:
        import av

        try:
            kind = av.Codec(value, "w").type
        except ValueError:  # av.codec.codec.UnknownCodecError
            return value  # not in this FFmpeg: the writer says so and uses MPEG-4
        if kind != "video":
            article = "an" if kind[0] in "aeiou" else "a"
            raise ValueError(f"{value} is {article} {kind} codec, not a video encoder: use libx264, mpeg4 or "
                             "another video encoder")
        return value


_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class CameraConfig(_Section):
    """One named camera for `facetrack watch`: its name appears in events, MQTT topics and file names."""

    name: str
    url: str  # rtsp://…, http(s)://…, a webcam (0, /dev/video0) or a video file

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _CAMERA_NAME.match(value):
            raise ValueError("camera names use letters, digits, '_' and '-' only (they become MQTT topics)")
        return value


class LiveConfig(_Section):
    """Live sources (cameras, RTSP, HTTP streams) and the threaded runner behind `facetrack watch`."""

    open_timeout: float = Field(10.0, gt=0)  # seconds to open a camera or stream
    read_timeout: float = Field(5.0, gt=0)  # seconds without data before a stream counts as dropped
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    reconnect_initial: float = Field(0.5, gt=0)  # first delay before reconnecting; doubles after each failure
    reconnect_max: float = Field(30.0, gt=0)  # the longest delay between reconnect attempts
    queue_size: int = Field(8, ge=1)  # items between stages: files wait when full, live sources keep the newest
    stats_interval: float = Field(10.0, ge=0)  # seconds between stats reports; 0: only at exit
    record_segment_minutes: float | None = Field(None, gt=0)  # a new recording file every N minutes of video
    events_max_mb: float | None = Field(None, gt=0)  # past this size EVENTS becomes EVENTS.1 and a new one starts


class MqttConfig(_Section):
    """Alerts published to an MQTT broker under `<topic_prefix>/<camera>/…`."""

    url: str | None = None  # mqtt://[user:pass@]host[:1883]; mqtts:// for TLS
    topic_prefix: str = "facetrack"
    qos: int = Field(1, ge=0, le=2)
    client_id: str | None = None  # default: facetrack-<host>-<pid>
    queue_size: int = Field(1000, ge=1)  # messages held while the broker is away; the oldest go first

    @field_validator("topic_prefix")
    @classmethod
    def _publishable_prefix(cls, value: str) -> str:
        if not value.strip("/"):
            raise ValueError("the topic prefix is empty: name one, e.g. facetrack or home/cameras")
        wild = sorted({c for c in value if c in "#+"})
        if wild:
            raise ValueError(f"the topic prefix {value!r} holds the wildcard {' and '.join(wild)}, which MQTT "
                             "forbids in published topics: use letters, digits, '_', '-' and '/'")
        return value


class WebhookConfig(_Section):
    """Alerts POSTed as JSON to an HTTP endpoint, from their own thread."""

    url: str | None = None
    timeout: float = Field(5.0, gt=0)  # seconds per request
    retries: int = Field(3, ge=0)  # further tries of a failed post before it is dropped
    backoff: float = Field(1.0, gt=0)  # first retry delay; doubles each retry
    queue_size: int = Field(1000, ge=1)  # posts waiting; when full the oldest is dropped (and counted)


class StoreConfig(_Section):
    """The identity memory (`--store`): persistent strangers and sightings in one SQLite file, or in PostgreSQL
    (`postgresql://user@host:5432/db`) for several workers past one machine (docs/scale-out.md)."""

    # `watch` default: $FACETRACK_HOME/store.db; `annotate` records only with --store. The password of a
    # postgresql:// URL comes from PGPASSWORD or ~/.pgpass, and is never printed.
    path: Path | str | None = None
    retention_days: float = Field(30.0, gt=0)  # `facetrack store purge` deletes sightings older than this
    min_looks: int = Field(3, ge=1)  # embeddings a stranger's track needs before its mean is banked as a template
    max_templates: int = Field(5, ge=1)  # templates kept per stranger, the most diverse ones
    template_diversity: float = Field(0.97, ge=-1.0, le=1.0)  # a new template this similar to a kept one adds nothing
    crop_quality: int = Field(85, ge=10, le=100)  # JPEG quality of the best crop kept per sighting
    # A `possible_duplicate` event when a gallery name is decided on one camera while it is on another, or left
    # it less than this many seconds ago (every camera of a shared store counts); 0 turns it off.
    duplicate_window_s: float = Field(10.0, ge=0)

    @field_validator("path", mode="before")
    @classmethod
    def _file_or_url(cls, value: Any) -> Any:
        """A postgresql:// URL stays a string; anything else is a file path."""
        if isinstance(value, str) and not value.startswith(("postgresql://", "postgres://")):
            return Path(value)
        return value


class FacetrackConfig(_Section):
    """The whole configuration tree."""

    models: ModelsConfig = ModelsConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    decode: DecodeConfig = DecodeConfig()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    identity: IdentityConfig = IdentityConfig()
    annotation: AnnotationConfig = AnnotationConfig()
    cameras: list[CameraConfig] = []
    live: LiveConfig = LiveConfig()
    mqtt: MqttConfig = MqttConfig()
    webhook: WebhookConfig = WebhookConfig()
    store: StoreConfig = StoreConfig()

    @model_validator(mode="after")
    def _unique_camera_names(self) -> FacetrackConfig:
        names = [camera.name for camera in self.cameras]
        if len(names) != len(set(names)):
            raise ValueError(f"camera names must be unique: {', '.join(names)}")
        return self


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FacetrackError(f"config file not found: {path} (pass an existing YAML file to --config)") from None
    except OSError as exc:
        raise FacetrackError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is fine
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise FacetrackError(f"config file {path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, "
                             f"column {column} (save the file as UTF-8)") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise FacetrackError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FacetrackError(f"config file {path} must hold a mapping of sections (models:, detector:, …)")
    return data


def load_config(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> FacetrackConfig:
    """Load the YAML file at `path` (or the defaults), then apply `overrides` (nested dicts, None values skipped)."""
    data = _read_yaml(Path(path)) if path is not None else {}
    if overrides:
        data = _merge(data, _drop_none(overrides))
    try:
        return FacetrackConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = f" in {path}" if path is not None else ""
        raise FacetrackError(f"invalid setting {where}{source}: {first['msg']}") from None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if value:
                cleaned[key] = value
        elif value is not None:
            cleaned[key] = value
    return cleaned
