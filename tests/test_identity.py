"""The identity stage on real embeddings (shared gallery photos and strangers of the group photo, embedded by
the real test recognizer): decisions with hysteresis, one name per face, stable anonymous IDs, re-linking."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.config import IdentityConfig, load_config
from facetrack.detect import LANDMARKS, FaceDetector
from facetrack.embed import FaceEmbedder
from facetrack.gallery import Enroller, Gallery, GalleryStore, enroll_folder
from facetrack.identity import IdentityManager


class Faces:
    """Real embeddings: `person(name, i)` from the gallery photos, `stranger(i)` from the group photo."""

    def __init__(self, enroller: Enroller, gallery_dir: Path, images_dir: Path) -> None:
        self._people = {name: [t.embedding for t in templates]
                        for name, templates in enroll_folder(gallery_dir, enroller).items()}
        group = cv2.imread(str(images_dir / "t1.jpg"))
        found = enroller.detector.detect(group)
        self._strangers = enroller.embedder.embed(group, found.data[LANDMARKS])
        # The same strangers seen again: a smaller, re-encoded copy of the photo (new pixels, same people).
        small = cv2.imdecode(cv2.imencode(".jpg", cv2.resize(group, None, fx=0.8, fy=0.8),
                                          [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
        self._strangers_again = enroller.embedder.embed(small, enroller.detector.detect(small).data[LANDMARKS])

    def person(self, name: str, i: int = 0) -> np.ndarray:
        return self._people[name][i % len(self._people[name])]

    def stranger(self, i: int, again: bool = False) -> np.ndarray:
        vectors = self._strangers_again if again else self._strangers
        if again:  # the same person: the detection nearest in embedding to the first sighting
            return vectors[int(np.argmax(vectors @ self._strangers[i]))]
        return vectors[i]


@pytest.fixture(scope="module")
def enroller(detector_path: Path, recognizer_path: Path) -> Enroller:
    config = load_config()
    return Enroller(FaceDetector(detector_path, config.detector, config.runtime),
                    FaceEmbedder(recognizer_path, config.runtime))


@pytest.fixture(scope="module")
def faces(enroller: Enroller, gallery_dir: Path, images_dir: Path) -> Faces:
    return Faces(enroller, gallery_dir, images_dir)


@pytest.fixture(scope="module")
def gallery(enroller: Enroller, gallery_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    store = GalleryStore(tmp_path_factory.mktemp("g") / "g.db")
    store.build(enroll_folder(gallery_dir, enroller), enroller.embedder)
    return store.load()


@pytest.fixture
def manager(gallery: Gallery, enroller: Enroller) -> IdentityManager:
    config = IdentityConfig()
    return IdentityManager(config, config.thresholds_for(enroller.embedder.name), gallery)


def feed(manager: IdentityManager, frame: int, observations: dict[int, np.ndarray],
         visible: list[int] | None = None) -> list[dict]:
    manager.begin_frame(frame, frame / 30, visible if visible is not None else list(observations))
    events = []
    for track_id, vector in observations.items():
        events += manager.observe(track_id, vector, quality=0.9)
    return events


def shown(manager: IdentityManager, track_id: int) -> str | None:
    return manager.labels([track_id])[0][0]


def test_name_needs_agreeing_evidence_then_holds(manager: IdentityManager, faces: Faces) -> None:
    assert feed(manager, 0, {1: faces.person("obama", 0)}) == []
    assert shown(manager, 1) is None  # one look is not enough
    events = feed(manager, 9, {1: faces.person("obama", 1)})
    assert [(e["identity"], e["state"], e["previous"]) for e in events] == [("obama", "known", None)]
    assert manager.labels([1])[1] == [True] and 0.3 < manager.labels([1])[2][0] <= 1.0


def test_one_odd_observation_does_not_change_a_decided_name(manager: IdentityManager, faces: Faces) -> None:
    for frame in range(3):
        feed(manager, frame, {1: faces.person("lin_manuel_miranda")})
    assert shown(manager, 1) == "lin_manuel_miranda"
    assert feed(manager, 3, {1: faces.stranger(0)}) == []
    assert shown(manager, 1) == "lin_manuel_miranda"


def test_consistent_evidence_changes_the_name_once(manager: IdentityManager, faces: Faces) -> None:
    for frame in range(3):
        feed(manager, frame, {1: faces.person("biden", frame)})
    changes = []
    for frame in range(3, 15):
        changes += feed(manager, frame, {1: faces.person("obama", frame)})
    assert [(e["previous"], e["identity"]) for e in changes] == [("biden", "obama")]
    switch_frame = changes[0]["frame"]
    assert switch_frame >= 3 + IdentityConfig().switch_evidence - 1  # not on the first contrary look


def test_split_evidence_is_a_conflict_not_a_flicker(manager: IdentityManager, faces: Faces) -> None:
    events = []
    for frame in range(30):
        name = "rose_leslie" if frame % 2 else "kit_harington"
        events += feed(manager, frame, {1: faces.person(name, frame // 2)})
    shown_names = [e["identity"] for e in events if e["state"] in ("known", "unknown")]
    # Never A → B → A: at most one change of shown name, then the split is reported.
    assert all(shown_names[i] != shown_names[i + 2] for i in range(len(shown_names) - 2))
    assert len(shown_names) <= 2
    assert any(e["state"] == "conflict" for e in events) or len(set(shown_names)) == 1


def test_one_name_one_face_the_stronger_evidence_wins(manager: IdentityManager, faces: Faces) -> None:
    # Track 1 sees obama's second photo, track 2 his first; both clear the threshold for obama.
    for frame in range(3):
        feed(manager, frame, {1: faces.person("obama", 1)}, visible=[1])
    assert shown(manager, 1) == "obama"
    for frame in range(3, 6):
        feed(manager, frame, {2: faces.person("obama", 0)}, visible=[1, 2])
        names = [n for n in manager.labels([1, 2])[0] if n == "obama"]
        assert len(names) <= 1  # never shown twice in one frame
    sims = {t: float(manager.gallery.similarities(manager.tracks[t].mean)[0, manager.gallery.names.index("obama")])
            for t in (1, 2)}
    winner = max(sims, key=sims.get)
    assert shown(manager, winner) == "obama"
    assert shown(manager, 3 - winner) is None  # the other one stays undecided


def test_strangers_get_stable_anonymous_ids(manager: IdentityManager, faces: Faces) -> None:
    for frame in range(6):
        feed(manager, frame, {1: faces.stranger(0), 2: faces.stranger(1)})
    first, second = shown(manager, 1), shown(manager, 2)
    assert {first, second} == {"unknown-1", "unknown-2"}
    assert manager.labels([1])[1] == [False]
    for frame in range(6, 12):
        feed(manager, frame, {1: faces.stranger(0), 2: faces.stranger(1)})
    assert (shown(manager, 1), shown(manager, 2)) == (first, second)


def test_returning_stranger_gets_the_old_anonymous_id(manager: IdentityManager, faces: Faces) -> None:
    for frame in range(5):
        feed(manager, frame, {1: faces.stranger(2)})
    old = shown(manager, 1)
    manager.end(1, pts=5 / 30)
    events = feed(manager, 60, {7: faces.stranger(2, again=True)})
    assert shown(manager, 7) == old
    assert events[0]["relinked_from"] == 1


def test_returning_person_is_named_at_once_and_an_id_goes_back_once(manager: IdentityManager,
                                                                      faces: Faces) -> None:
    for frame in range(3):
        feed(manager, frame, {1: faces.person("alex_lacamoire", 1)})
    manager.end(1, pts=0.1)
    feed(manager, 90, {5: faces.person("alex_lacamoire", 1)})
    assert shown(manager, 5) == "alex_lacamoire"  # from the first look: re-linked
    feed(manager, 91, {6: faces.stranger(3)})
    assert shown(manager, 6) is None  # a different face takes nothing from the memory


def test_memory_expires(gallery: Gallery, enroller: Enroller, faces: Faces) -> None:
    config = IdentityConfig(relink_memory=2.0)
    manager = IdentityManager(config, config.thresholds_for(enroller.embedder.name), gallery)
    for frame in range(5):
        feed(manager, frame, {1: faces.stranger(4)})
    old = shown(manager, 1)
    manager.end(1, pts=5 / 30)
    for frame in range(300, 306):  # ten seconds later
        feed(manager, frame, {2: faces.stranger(4, again=True)})
    assert shown(manager, 2) not in (None, old)


def reason(manager: IdentityManager, track_id: int, gate: str | None = None) -> str | None:
    return manager.reasons([track_id], [gate])[0]


def test_a_face_without_a_name_says_why(manager: IdentityManager, faces: Faces) -> None:
    manager.begin_frame(0, 0.0, [1, 2, 3])
    assert reason(manager, 1) == "pending"  # not embedded yet
    assert reason(manager, 1, "turned") == "turned"  # a quality gate keeps it from being embedded
    feed(manager, 1, {1: faces.person("obama", 0), 2: faces.stranger(0)})
    assert reason(manager, 1) == "pending"  # obama once: one look is not enough
    assert reason(manager, 2) == "below_threshold"  # like nobody in the gallery
    assert reason(manager, 2, "small") == "small"  # the gate that stops more looks is said first
    # Halfway between two people: both clear the threshold, neither leads by the margin.
    between = faces.person("rose_leslie") + faces.person("kit_harington")
    feed(manager, 2, {3: between / np.linalg.norm(between)})
    assert reason(manager, 3) == "margin"
    for frame in range(3, 6):
        feed(manager, frame, {1: faces.person("obama", frame), 2: faces.stranger(0)})
    assert shown(manager, 1) == "obama" and reason(manager, 1) is None  # named: no reason
    assert shown(manager, 2) == "unknown-1" and reason(manager, 2) is None  # decided a stranger: no reason
    assert reason(manager, 1, "turned") is None


def test_a_face_that_loses_the_name_to_a_stronger_one_says_conflict(manager: IdentityManager,
                                                                     faces: Faces) -> None:
    for frame in range(3):
        feed(manager, frame, {1: faces.person("obama", 1)}, visible=[1])
    for frame in range(3, 6):
        feed(manager, frame, {2: faces.person("obama", 0)}, visible=[1, 2])
    loser = 1 if shown(manager, 1) is None else 2
    assert shown(manager, 3 - loser) == "obama"
    assert reason(manager, loser) == "conflict"


def test_split_evidence_says_conflict(manager: IdentityManager, faces: Faces) -> None:
    for frame in range(30):
        name = "rose_leslie" if frame % 2 else "kit_harington"
        feed(manager, frame, {1: faces.person(name, frame // 2)})
        if manager.tracks[1].state == "conflict":
            assert shown(manager, 1) is None and reason(manager, 1) == "conflict"
            return
    pytest.skip("the alternating looks never split this track")  # the test above allows one change instead


def test_identity_events_carry_the_two_best_candidates(manager: IdentityManager, faces: Faces) -> None:
    events = []
    for frame in range(3):
        events += feed(manager, frame, {1: faces.person("lin_manuel_miranda"), 2: faces.stranger(1)})
    by_track = {e["track_id"]: e for e in events}
    named, stranger = by_track[1], by_track[2]
    assert named["identity"] == "lin_manuel_miranda" and stranger["identity"] == "unknown-1"
    for event in (named, stranger):
        candidates = event["candidates"]
        assert len(candidates) == 2 and set(candidates[0]) == {"name", "similarity"}
        assert candidates[0]["similarity"] >= candidates[1]["similarity"]
        mean = manager.tracks[event["track_id"]].mean
        expected = manager.gallery.similarities(mean)[0]
        for candidate in candidates:
            value = float(expected[manager.gallery.names.index(candidate["name"])])
            assert candidate["similarity"] == round(value, 3)
        assert candidates[0]["similarity"] == round(float(expected.max()), 3)
    assert named["candidates"][0] == {"name": "lin_manuel_miranda", "similarity": named["similarity"]}
    assert stranger["candidates"][0]["similarity"] < manager.thresholds.threshold  # why it is nobody
