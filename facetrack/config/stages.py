"""Sections of the stages a face goes through: detection, tracking, embedding and identity."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from facetrack.config.base import Section


class DetectorConfig(Section):
    """SCRFD face detection."""

    input_size: tuple[int, int] = Field((640, 640), description=(
        "Explicit input size, one pass per full detection (never InsightFace's multi-size \"auto\" mode); a model with "
        "a dynamic input gets the frame's aspect at the scale this size gives (keep_aspect)."))
    score_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Detections scoring below this are dropped.")
    nms_threshold: float = Field(0.4, ge=0.0, le=1.0, description=(
        "Overlap (IoU) above which the weaker of two boxes is suppressed as the same face."))
    min_face_size: int = Field(0, ge=0, description="Drop boxes whose shorter side is below this, in pixels.")
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


class TrackerConfig(Section):
    """ByteTrack settings (see `trackers.ByteTrackTracker`)."""

    lost_track_buffer: int = Field(30, ge=0, description="In 30 fps frames; scaled by the real frame rate.")
    track_activation_threshold: float = Field(0.6, ge=0.0, le=1.0, description=(
        "A detection needs this score to start a new track."))
    minimum_consecutive_frames: int = Field(2, ge=1, description=(
        "Frames in a row a new track must be seen before it counts (and gets events)."))
    minimum_iou_threshold: float = Field(0.1, ge=0.0, le=1.0, description=(
        "The least overlap between a track's predicted box and a detection for them to be matched."))
    high_conf_det_threshold: float = Field(0.6, ge=0.0, le=1.0, description=(
        "Detections above this score are matched first; weaker ones only continue tracks (ByteTrack's two "
        "passes)."))
    cut_threshold: float = Field(0.75, ge=0.0, le=1.0, description=(
        "Colour-histogram correlation between consecutive frames below which a shot cut ends every track; 0: off."))
    face_change_correlation: float = Field(0.6, ge=0.0, le=1.0, description=(
        "Cuts the histogram misses (same room, another person): each face is compared with its track one frame earlier."
        " Its grey thumbnail correlating below `face_change_correlation`, or its box overlapping its last place below "
        "`face_change_iou`, is a change; every face changing at once while the frame's mean grey difference reaches "
        "`face_cut_frame_change` (0–255) is a cut. `face_change_correlation` 0: off."))
    face_change_iou: float = Field(0.5, ge=0.0, le=1.0, description=(
        "A face's box overlapping its place one frame earlier below this has jumped: a change (see "
        "face_change_correlation)."))
    face_change_score_drop: float = Field(0.25, ge=0.0, le=1.0, description=(
        "A score falling this much: look again, no cut."))
    face_cut_frame_change: float = Field(10.0, ge=0.0, le=255.0, description=(
        "Every face changed and the frame's mean grey difference (0–255) at least this large: a cut."))


class EmbeddingConfig(Section):
    """When faces are embedded: throttled per track, not every face every frame."""

    undecided_interval: float = Field(0.1, gt=0.0, description=(
        "Seconds between embeddings while a track's identity is open."))
    decided_interval: float = Field(2.0, gt=0.0, description=(
        "Seconds between re-checks once decided, to catch a mistake."))
    improvement: float = Field(1.3, ge=1.0, description="Embed at once when face quality grows by this factor.")
    improvement_gap: float = Field(0.1, ge=0.0, description="…but not more often than this, in seconds.")
    change_check_gap: float = Field(0.1, ge=0.0, description=(
        "A decided track whose face changed at once (or whose last look did not match it) is looked at again after this"
        " many seconds: a change of person is caught in a few frames, not at the next re-check."))
    max_per_frame: int = Field(4, ge=1, description=(
        "Budget of embeddings per frame (per camera); the most needed go first."))
    max_batch: int = Field(32, ge=1, description="Largest batch one inference call takes.")
    min_face_size: int = Field(20, ge=0, description="Pixels (shorter box side): smaller faces are never embedded.")
    min_sharpness: float = Field(8.0, ge=0.0, description=(
        "Variance of the Laplacian of the aligned crop; below: too blurred."))
    min_frontal: float = Field(0.25, ge=0.0, le=1.0, description=(
        "1 frontal, 0.5 three-quarter, 0 profile: profiles mislead."))


class RecognizerThresholds(Section):
    """Decision thresholds of one recognizer model (cosine similarity of unit embeddings)."""

    threshold: float = Field(ge=-1.0, le=1.0, description="A gallery match needs at least this similarity…")
    margin: float = Field(ge=0.0, le=2.0, description="…and this lead over the next person.")
    relink_threshold: float = Field(ge=-1.0, le=1.0, description=(
        "A new track takes an ended track's ID at this similarity."))
    bank_threshold: float = Field(0.55, ge=-1.0, le=1.0, description=(
        "Persistent strangers (`--store`): a track decided unknown takes a remembered stranger's ID only when its mean "
        "embedding reaches this similarity to that stranger's templates with this lead over the next stranger; stricter"
        " than the gallery, since a wrong match joins two people for good. Named people of the store are held to the "
        "same bank threshold."))
    bank_margin: float = Field(0.10, ge=0.0, le=2.0, description=(
        "The lead over the next remembered stranger a match with the bank needs (see bank_threshold)."))


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


class IdentityConfig(Section):
    """How a track gets, keeps and changes its identity."""

    enabled: bool = Field(False, description="Also on whenever a gallery or a recognizer is given.")
    gallery: Path | None = Field(None, description=(
        "Folder of folders (gallery/<person>/*.jpg) or a .db built from one."))
    models: dict[str, RecognizerThresholds] = Field(default_factory=_default_thresholds, description=(
        "Per recognizer (file name without .onnx); `default` for any other model."))
    default: RecognizerThresholds = Field(
        RecognizerThresholds(threshold=0.40, margin=0.05, relink_threshold=0.45),
        description="Thresholds of a recognizer that `models` does not list.")
    evidence_decay: float = Field(0.8, gt=0.0, le=1.0, description="Weight kept by older embeddings at each new one.")
    min_evidence: int = Field(2, ge=1, description="Agreeing observations before a first decision.")
    switch_evidence: int = Field(3, ge=1, description="Consecutive observations for another identity before a change.")
    conflict_window: int = Field(6, ge=2, description="Recent observations looked at to call a conflict.")
    relink_memory: float = Field(60.0, ge=0.0, description="Seconds an ended track can be re-linked to a new one.")
    split_evidence: int = Field(2, ge=1, description=(
        "A decided track is checked against its own mean embedding: this many looks in a row below the model's "
        "relink_threshold split it (the old track ends, the face goes on under a new ID, judged afresh) when its face "
        "changed at once before them; one more look without such a sign."))

    def thresholds_for(self, model_name: str) -> RecognizerThresholds:
        return self.models.get(model_name, self.default)
