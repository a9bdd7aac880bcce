"""The throttling scheduler: who is embedded when, within the per-frame budget."""

from __future__ import annotations

from facetrack.config import EmbeddingConfig
from facetrack.embed import FaceQuality
from facetrack.schedule import EmbeddingScheduler

GOOD = FaceQuality(size=60, frontal=0.8)


def embed_all(scheduler: EmbeddingScheduler, ids: list[int], looks: list[FaceQuality], pts: float,
              decided: set[int] | None = None) -> list[int]:
    chosen = scheduler.select(ids, looks, pts, decided or set())[: scheduler.config.max_per_frame]
    for i in chosen:
        scheduler.embedded(ids[i], looks[i], pts)
    return [ids[i] for i in chosen]


def test_new_tracks_first_then_every_interval_while_undecided_and_rarely_once_decided() -> None:
    config = EmbeddingConfig()
    scheduler = EmbeddingScheduler(config)
    embedded = {1: 0, 2: 0}
    fps = 30
    for frame in range(fps * 6):  # six seconds; track 2 is decided from the start
        for track in embed_all(scheduler, [1, 2], [GOOD, GOOD], frame / fps, decided={2}):
            embedded[track] += 1
    # New, then every interval (a frame late at most, as frames fall on a 1/30 s grid).
    frame_late = 1 / fps
    assert 6 / (config.undecided_interval + frame_late) <= embedded[1] <= 1 + 6 / config.undecided_interval
    assert 6 / (config.decided_interval + frame_late) <= embedded[2] <= 1 + 6 / config.decided_interval


def test_a_clearly_better_face_is_embedded_at_once() -> None:
    scheduler = EmbeddingScheduler(EmbeddingConfig())
    small = FaceQuality(size=30, frontal=0.5)
    embed_all(scheduler, [1], [small], 0.0, decided={1})
    assert embed_all(scheduler, [1], [FaceQuality(size=32, frontal=0.5)], 0.2, decided={1}) == []
    assert embed_all(scheduler, [1], [FaceQuality(size=70, frontal=0.9)], 0.2, decided={1}) == [1]


def test_budget_takes_the_most_needed_first() -> None:
    scheduler = EmbeddingScheduler(EmbeddingConfig(max_per_frame=2))
    embed_all(scheduler, [1, 2], [GOOD, GOOD], 0.0, decided={1, 2})
    # Tracks 1 and 2 are decided and not due; 3, 4, 5 are new: the two best-seen new faces go first.
    looks = [GOOD, GOOD, FaceQuality(40, 0.5), FaceQuality(80, 1.0), FaceQuality(60, 0.9)]
    assert embed_all(scheduler, [1, 2, 3, 4, 5], looks, 0.5, decided={1, 2}) == [4, 5]
    assert embed_all(scheduler, [1, 2, 3, 4, 5], looks, 0.54, decided={1, 2}) == [3]


def test_small_profile_and_blurred_faces_are_never_evidence() -> None:
    config = EmbeddingConfig()
    scheduler = EmbeddingScheduler(config)
    tiny = FaceQuality(size=config.min_face_size - 1, frontal=1.0)
    profile = FaceQuality(size=100, frontal=config.min_frontal / 2)
    assert scheduler.select([1, 2], [tiny, profile], 0.0, set()) == []
    blurred = FaceQuality(size=100, frontal=1.0, sharpness=config.min_sharpness / 2)
    assert not scheduler.trusted(blurred)
    scheduler.too_blurred(3, 0.0)  # due, aligned, found blurred: not looked at again on the next frame
    assert scheduler.select([3], [GOOD], 1 / 30, set()) == []
    assert scheduler.select([3], [GOOD], config.undecided_interval, set()) == [0]


def test_forgotten_tracks_start_over() -> None:
    scheduler = EmbeddingScheduler(EmbeddingConfig())
    embed_all(scheduler, [1], [GOOD], 0.0)
    scheduler.forget(1)
    assert scheduler.select([1], [GOOD], 0.01, set()) == [0]


def test_a_decided_face_that_changed_is_looked_at_soon_and_once() -> None:
    config = EmbeddingConfig()
    scheduler = EmbeddingScheduler(config)
    embed_all(scheduler, [1, 2], [GOOD, GOOD], 0.0, decided={1, 2})
    # Both decided, not due for seconds; track 1's face changed at once (a frame before the gap is over).
    assert scheduler.select([1, 2], [GOOD, GOOD], 0.05, {1, 2}, suspect={1}) == []
    # The sign is kept: once the gap is over it is looked at, though no sign comes in that frame.
    assert scheduler.select([1, 2], [GOOD, GOOD], config.change_check_gap, {1, 2}) == [0]
    scheduler.embedded(1, GOOD, config.change_check_gap)
    assert scheduler.select([1, 2], [GOOD, GOOD], 2 * config.change_check_gap + 0.01, {1, 2}) == []
    # An undecided track is embedded on its own interval; a sign of change does not add to it.
    embed_all(scheduler, [3], [GOOD], 0.0)
    assert scheduler.select([3], [GOOD], config.undecided_interval / 2, set(), suspect={3}) == []
