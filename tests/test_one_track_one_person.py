"""One track, one person: short clips of different people filmed in the same office, played back to back.

The background never changes, so the whole-frame cut detector sees nothing, and ByteTrack would carry one
track (and the identity it decided) from each person on to the next. The real clips are cut to their first
frames and joined into one video; `facetrack annotate` (real detector and recognizer) must end the tracks at
every join, give each person their own anonymous ID (the same one when they come back), never show one ID on
two people, and never show an enrolled person's name on anyone else. And two people side by side who swap places
between two frames keep their own IDs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import run_cli

FRAMES_PER_CLIP = 30
# Clip → who is in it (by their clothes, see the media manifest); "again" and "brother" are the same person.
CLIPS = [("again", "misfits_shirt"), ("book", "yellow_hoodie"), ("bird", "grey_tshirt"), ("eat", "sweater"),
         ("hungry", "plaid_shirt"), ("brother", "misfits_shirt")]
ENROLLED = ("yellow_hoodie", "learn")  # enrolled from a frame of another clip of the same person
SWAP = (("book", "yellow_hoodie"), ("bird", "grey_tshirt"))  # left and right, then right and left


@pytest.fixture(scope="module")
def asl_dir(assets: Path) -> Path:
    folder = assets / "media" / "real" / "asl"
    if not all((folder / f"{clip}.mkv").exists() for clip, _ in CLIPS):
        pytest.fail(f"test asset missing: the ASL clips in {folder}")
    return folder


def _frames(path: Path, count: int) -> list:
    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == count:
                break
        return frames


@pytest.fixture(scope="module")
def back_to_back(tmp_path_factory: pytest.TempPathFactory, asl_dir: Path) -> dict:
    """The joined video (30 fps, one clip after the other) and who is on screen in each frame."""
    out = tmp_path_factory.mktemp("one_track")
    video = out / "back_to_back.mp4"
    person_at: list[str] = []
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for clip, person in CLIPS:
            for image in _frames(asl_dir / f"{clip}.mkv", FRAMES_PER_CLIP):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
                person_at.append(person)
        container.mux(stream.encode())
    swap = out / "swap.mp4"
    (left, left_person), (right, right_person) = SWAP
    a, b = _frames(asl_dir / f"{left}.mkv", FRAMES_PER_CLIP), _frames(asl_dir / f"{right}.mkv", FRAMES_PER_CLIP)
    with av.open(str(swap), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(FRAMES_PER_CLIP):  # the middle half of each clip, side by side; swapped half-way
            halves = (a[i], b[i]) if i < FRAMES_PER_CLIP // 2 else (b[i], a[i])
            image = np.ascontiguousarray(np.hstack([half[:, 160:480] for half in halves]))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    gallery = out / "gallery" / ENROLLED[0]
    gallery.mkdir(parents=True)
    cv2.imwrite(str(gallery / f"{ENROLLED[1]}.jpg"), _frames(asl_dir / f"{ENROLLED[1]}.mkv", 20)[-1])
    return {"video": video, "person_at": person_at, "gallery": gallery.parent, "out": out, "swap": swap}


def _annotate(back_to_back: dict, name: str, detector: Path, recognizer: Path, *extra: str | Path) -> dict:
    events_path = back_to_back["out"] / f"{name}.jsonl"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACETRACK_HOME", str(back_to_back["out"] / "home"))  # the gallery cache, not the user's
        result = run_cli("annotate", back_to_back["video"], "--events", events_path, "--detector", detector,
                         "--recognizer", recognizer, *extra, timeout=300)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    person_at = back_to_back["person_at"]
    people_of_track: dict[int, set[str]] = defaultdict(set)
    people_of_identity: dict[str, set[str]] = defaultdict(set)
    identities_of_person: dict[str, set[str]] = defaultdict(set)
    faces_of_person: dict[str, int] = defaultdict(int)
    for event in events:
        if event["type"] != "frame":
            continue
        person = person_at[event["frame"]]
        for face in event["faces"]:
            people_of_track[face["track_id"]].add(person)
            faces_of_person[person] += 1
            if face["identity"] is not None:
                people_of_identity[face["identity"]].add(person)
                identities_of_person[person].add(face["identity"])
    return {"events": events, "people_of_track": people_of_track, "people_of_identity": people_of_identity,
            "identities_of_person": identities_of_person, "faces_of_person": faces_of_person}


@pytest.fixture(scope="module")
def strangers_run(back_to_back: dict, fast_detector_path: Path, recognizer_path: Path) -> dict:
    return _annotate(back_to_back, "strangers", fast_detector_path, recognizer_path)


@pytest.fixture(scope="module")
def gallery_run(back_to_back: dict, fast_detector_path: Path, recognizer_path: Path) -> dict:
    return _annotate(back_to_back, "gallery", fast_detector_path, recognizer_path, "--gallery",
                     back_to_back["gallery"])


@pytest.fixture(scope="module")
def swap_run(back_to_back: dict, fast_detector_path: Path, recognizer_path: Path) -> list[dict]:
    events_path = back_to_back["out"] / "swap.jsonl"
    result = run_cli("annotate", back_to_back["swap"], "--events", events_path, "--detector", fast_detector_path,
                     "--recognizer", recognizer_path, timeout=300)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in events_path.read_text().splitlines()]


def test_every_track_stays_on_one_person(strangers_run: dict) -> None:
    assert len(strangers_run["people_of_track"]) >= len(CLIPS)  # a track per clip at least
    carried = {track: sorted(people) for track, people in strangers_run["people_of_track"].items()
               if len(people) > 1}
    assert carried == {}


def test_each_person_gets_one_anonymous_id_of_their_own(strangers_run: dict) -> None:
    people = {person for _, person in CLIPS}
    shared = {identity: sorted(p) for identity, p in strangers_run["people_of_identity"].items() if len(p) > 1}
    assert shared == {}  # no unknown-N on two people
    ids = strangers_run["identities_of_person"]
    assert set(ids) == people  # everyone was given an ID
    assert all(len(ids[person]) == 1 for person in people), dict(ids)  # the returning person got theirs back
    assert all(identity.startswith("unknown-") for person in people for identity in ids[person])


def test_tracks_end_where_the_clips_join(strangers_run: dict) -> None:
    """No track seen before a join is seen after it, and the tracks end at the join itself (a cut), except where
    the detector loses the face there and the track simply runs out later."""
    shown: dict[int, set[int]] = defaultdict(set)
    ends: dict[int, set[int]] = defaultdict(set)
    for event in strangers_run["events"]:
        if event["type"] == "frame":
            shown[event["frame"]] = {f["track_id"] for f in event["faces"]}
        elif event["type"] == "track_end":
            ends[event["frame"]].add(event["track_id"])
    joins = [FRAMES_PER_CLIP * i for i in range(1, len(CLIPS))]
    cut_at_join = 0
    for join in joins:
        before = set().union(*(shown[f] for f in range(join - 3, join)))
        after = set().union(*(shown[f] for f in range(join, join + FRAMES_PER_CLIP)))
        assert before and not before & after, (join, before, after)
        cut_at_join += before <= ends[join] | ends[join + 1]
    assert cut_at_join >= len(joins) - 1, dict(ends)


def test_an_enrolled_name_stays_on_its_person(gallery_run: dict) -> None:
    name, _ = ENROLLED
    assert gallery_run["people_of_identity"][name] == {name}  # named, and never on another person's clip
    assert all(name not in ids for person, ids in gallery_run["identities_of_person"].items() if person != name)
    shared = {identity: sorted(p) for identity, p in gallery_run["people_of_identity"].items() if len(p) > 1}
    assert shared == {}


def test_two_people_who_swap_places_keep_their_own_ids(swap_run: list[dict]) -> None:
    half = FRAMES_PER_CLIP // 2
    ids: dict[str, set[str]] = defaultdict(set)  # person → the identities shown on them
    for event in swap_run:
        if event["type"] != "frame":
            continue
        for face in event["faces"]:
            on_left = (face["box"][0] + face["box"][2]) / 2 < 320
            person = SWAP[0 if on_left == (event["frame"] < half) else 1][1]
            if face["identity"] is not None:
                ids[person].add(face["identity"])
    assert set(ids) == {person for _, person in SWAP}
    assert all(len(shown) == 1 for shown in ids.values()), dict(ids)  # each keeps one ID through the swap…
    assert ids[SWAP[0][1]] != ids[SWAP[1][1]]  # …their own
