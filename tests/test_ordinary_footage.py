"""Ordinary footage never breaks it: every command over real clips and generated edge cases.

Real clips (an office that starts empty, a 1080p crowd, talking heads, webcam-like clips) are cut to their first
frames; edge cases (black stretches, a face that leaves and returns, odd sizes, broken timestamps, a photo named
.mp4, every codec this PyAV encodes) are made on the fly. Each cell runs the real command line in this process
(`facetrack.cli.main`, as the `facetrack` script does) and checks what a user sees: the exit status, no
traceback, one frame event per decoded frame with increasing times, every track ended, outputs that decode.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from tests.conftest import run_cli_here
from tests.footage import count_frames, edge_cases, read_frames, write_video

# Real clips, cut to their first frames (name → path under media/real, frames kept).
REAL = {
    "empty_room": ("empty_room_people_walk_in.mp4", 40),
    "crowd_1080p": ("crowd_1080p.mp4", 12),
    "talking_head_1": ("talking_head_1.mp4", 20),
    "asl_again": ("asl/again.mkv", 30),
    "asl_eat": ("asl/eat.mkv", 30),
}
EDGE = list(edge_cases(Path(), Path(), Path()))
CLIPS = list(REAL) + EDGE
# A file that ends early is processed up to where it breaks and said so with exit status 3 (README).
ENDS_EARLY = {"truncated"}


def run_main(*args: str | Path) -> tuple[int, str, str]:
    """The `facetrack` command line, in this process: exit status, what it printed to stdout and to stderr."""
    result = run_cli_here(*args)
    return result.returncode, result.stdout, result.stderr


class Footage(dict[str, Path]):
    """The clips by name, each made the first time a test asks for it."""

    def __init__(self, folder: Path, media: Path, clip: Path) -> None:
        super().__init__()
        self.folder, self.media = folder, media
        self.makers = edge_cases(clip, media / "real" / "talking_head_1.mp4", media / "images" / "t1.jpg")

    def __missing__(self, name: str) -> Path:
        if name in REAL:
            relative, frames = REAL[name]
            source = self.media / "real" / relative
            with av.open(str(source)) as container:
                fps = round(float(container.streams.video[0].average_rate or 25))
            made = write_video(self.folder / f"{name}.mp4", read_frames(source, frames), fps=fps)
        else:
            made = self.makers[name](self.folder)
        self[name] = made
        return made


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory, assets: Path, clip_path: Path) -> dict[str, Path]:
    return Footage(tmp_path_factory.mktemp("footage"), assets / "media", clip_path)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def _private_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACK_HOME", str(home))  # the gallery cache is built once, in here


def _models(fast_detector_path: Path, recognizer_path: Path) -> list[str | Path]:
    return ["--detector", fast_detector_path, "--recognizer", recognizer_path]


def _read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_events(events: list[dict], frames: int) -> None:
    frame_events = [e for e in events if e["type"] == "frame"]
    assert len(frame_events) == frames, f"{len(frame_events)} frame events for {frames} decoded frames"
    times = [e["pts"] for e in frame_events]
    assert all(b > a for a, b in zip(times, times[1:], strict=False)), f"times do not increase: {times}"
    assert [e["frame"] for e in frame_events] == list(range(frames))
    started = [e["track_id"] for e in events if e["type"] == "track_start"]
    ended = [e["track_id"] for e in events if e["type"] == "track_end"]
    assert sorted(started) == sorted(ended) and len(set(started)) == len(started)
    for event in frame_events:
        named = [f["identity"] for f in event["faces"] if f.get("identity")]
        assert len(named) == len(set(named)), f"one identity on two faces of frame {event['frame']}"


def _check_ran(code: int, stdout: str, stderr: str, expected: int = 0) -> None:
    printed = stdout + stderr
    assert "Traceback" not in printed, printed
    assert code == expected, printed


@pytest.mark.parametrize("name", CLIPS)
def test_annotate_with_gallery(name: str, footage: dict[str, Path], tmp_path: Path, gallery_dir: Path,
                               fast_detector_path: Path, recognizer_path: Path) -> None:
    clip = footage[name]
    video, events = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    code, stdout, stderr = run_main("annotate", clip, "-o", video, "--events", events, "--gallery", gallery_dir,
                             *_models(fast_detector_path, recognizer_path))
    _check_ran(code, stdout, stderr, 3 if name in ENDS_EARLY else 0)
    if name in ENDS_EARLY:
        assert "ends early" in stderr
    frames = count_frames(clip)
    _check_events(_read_events(events), frames)
    assert count_frames(video) == frames


@pytest.mark.parametrize("name", CLIPS)
def test_annotate_events_only(name: str, footage: dict[str, Path], tmp_path: Path, fast_detector_path: Path) -> None:
    clip = footage[name]
    events = tmp_path / "out.jsonl"
    code, stdout, stderr = run_main("annotate", clip, "--events", events, "--detector", fast_detector_path)
    _check_ran(code, stdout, stderr, 3 if name in ENDS_EARLY else 0)
    _check_events(_read_events(events), count_frames(clip))


@pytest.mark.parametrize("name", CLIPS)
def test_watch_file_with_gallery(name: str, footage: dict[str, Path], tmp_path: Path, gallery_dir: Path,
                                 fast_detector_path: Path, recognizer_path: Path) -> None:
    clip = footage[name]
    events = tmp_path / "watch.jsonl"
    code, stdout, stderr = run_main("watch", clip, "--events", events, "--gallery", gallery_dir,
                             *_models(fast_detector_path, recognizer_path))
    _check_ran(code, stdout, stderr, 3 if name in ENDS_EARLY else 0)
    _check_events(_read_events(events), count_frames(clip))


@pytest.mark.parametrize("name", CLIPS)
def test_bench(name: str, footage: dict[str, Path], gallery_dir: Path, fast_detector_path: Path,
               recognizer_path: Path) -> None:
    code, stdout, stderr = run_main("bench", footage[name], "--frames", "8", "--gallery", gallery_dir, "--json",
                             *_models(fast_detector_path, recognizer_path))
    _check_ran(code, stdout, stderr)
    report = json.loads(stdout)
    assert report["fps"] > 0


@pytest.mark.parametrize("name", CLIPS)
def test_identify_frames(name: str, footage: dict[str, Path], tmp_path: Path, gallery_dir: Path,
                         fast_detector_path: Path, recognizer_path: Path) -> None:
    import cv2

    frames = read_frames(footage[name], 1000)
    photos = []
    for index in sorted({0, len(frames) // 2, len(frames) - 1}):
        photo = tmp_path / f"frame{index}.png"
        cv2.imwrite(str(photo), frames[index])
        photos.append(photo)
    code, stdout, stderr = run_main("identify", *photos, "--gallery", gallery_dir, "--json",
                             *_models(fast_detector_path, recognizer_path))
    _check_ran(code, stdout, stderr)
    report = json.loads(stdout)
    assert [Path(entry["image"]).name for entry in report["images"]] == [p.name for p in photos]


@pytest.mark.parametrize("name", ["empty_room", "black_start", "black_middle", "leaves_and_returns"])
def test_watch_rtsp_with_gallery(name: str, footage: dict[str, Path], tmp_path: Path, gallery_dir: Path,
                                 fast_detector_path: Path, recognizer_path: Path) -> None:
    """A live camera where nobody is in view at first: identity on, the run goes on and ends cleanly."""
    from loopback import RtspServer, looped_clip
    from tests.conftest import run_cli

    feed = looped_clip(footage[name], tmp_path / "feed.mp4", repeats=10)
    events = tmp_path / "events.jsonl"
    server = RtspServer(feed).start()
    try:
        result = run_cli("watch", server.url(), "--events", events, "--gallery", gallery_dir, "--max-frames", "40",
                         "--duration", "60", *_models(fast_detector_path, recognizer_path), timeout=120)
    finally:
        server.stop()
    _check_ran(result.returncode, result.stdout, result.stderr)
    lines = _read_events(events)
    frames = [e for e in lines if e["type"] == "frame"]
    assert len(frames) == 40
    times = [e["pts"] for e in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    started = {e["track_id"] for e in lines if e["type"] == "track_start"}
    assert started == {e["track_id"] for e in lines if e["type"] == "track_end"}


@pytest.mark.parametrize("name", ["times_go_back", "times_jump"])
def test_a_broken_clock_ends_tracks_and_faces_stay(name: str, footage: dict[str, Path], tmp_path: Path,
                                                   detector_path: Path) -> None:
    """Times that go back or jump an hour: the tracks end there as at a cut, and the faces after it are still
    tracked (the tracker once skipped every frame older than its last one)."""
    events = tmp_path / "out.jsonl"
    code, stdout, stderr = run_main("annotate", footage[name], "--events", events, "--detector", detector_path)
    _check_ran(code, stdout, stderr)
    lines = _read_events(events)
    frames = [e for e in lines if e["type"] == "frame"]
    half = len(frames) // 2
    assert sum(1 for e in frames[half + 3:] if e["faces"]) >= len(frames[half + 3:]) - 1, "faces vanished"
    ended_at_break = [e for e in lines if e["type"] == "track_end" and e["frame"] == half]
    assert ended_at_break, "no track ended at the break in the clock"
    steps = [b["pts"] - a["pts"] for a, b in zip(frames, frames[1:], strict=False)]
    assert max(steps) < 1.0  # the hour-long jump is not carried into the output's time


def test_a_file_name_with_a_colon_is_a_file(footage: dict[str, Path], tmp_path: Path, detector_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`clip:1.mp4` is a file here, not FFmpeg's `clip:` protocol."""
    import shutil

    shutil.copyfile(footage["black_middle"], tmp_path / "clip:1.mp4")
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_main("annotate", "clip:1.mp4", "-o", "out:1.mp4", "--events", "e.jsonl",
                                    "--detector", detector_path)
    _check_ran(code, stdout, stderr)
    assert count_frames(tmp_path / "out:1.mp4") == count_frames(tmp_path / "clip:1.mp4")


def test_photos_of_extreme_shapes_and_sizes(tmp_path: Path, images_dir: Path, gallery_dir: Path,
                                            fast_detector_path: Path, recognizer_path: Path) -> None:
    """3000×1 and 1×3000 photos are read without an OpenCV error; a 9000-pixel photo is read reduced, and its
    faces are reported in the photo's own pixels."""
    import cv2

    group = cv2.imread(str(images_dir / "t1.jpg"))
    cv2.imwrite(str(tmp_path / "row.png"), cv2.resize(group, (3000, 1)))
    cv2.imwrite(str(tmp_path / "column.png"), cv2.resize(group, (1, 3000)))
    scale = 7
    cv2.imwrite(str(tmp_path / "huge.jpg"), cv2.resize(group, None, fx=scale, fy=scale))
    code, stdout, stderr = run_main("identify", tmp_path / "row.png", tmp_path / "column.png", images_dir / "t1.jpg",
                                    tmp_path / "huge.jpg", "--gallery", gallery_dir, "--json",
                                    *_models(fast_detector_path, recognizer_path))
    _check_ran(code, stdout, stderr)
    row, column, small, huge = json.loads(stdout)["images"]
    assert row["faces"] == [] and column["faces"] == []
    assert len(huge["faces"]) == len(small["faces"]) == 6
    small_centres = sorted((b[0] + b[2]) / 2 for b in (f["box"] for f in small["faces"]))
    huge_centres = sorted((b[0] + b[2]) / 2 / scale for b in (f["box"] for f in huge["faces"]))
    assert max(abs(a - b) for a, b in zip(small_centres, huge_centres, strict=True)) < 10


def test_a_phone_video_is_turned_upright(footage: dict[str, Path], tmp_path: Path, detector_path: Path) -> None:
    """Pictures stored on their side with a display matrix (as phones write them) are processed and written as
    players show them: upright, and the faces are found in the upright picture."""
    video, events = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    code, stdout, stderr = run_main("annotate", footage["rotated"], "-o", video, "--events", events,
                                    "--detector", detector_path)
    _check_ran(code, stdout, stderr)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 180)
    frames = [e for e in _read_events(events) if e["type"] == "frame"]
    assert sum(1 for e in frames if e["faces"]) >= len(frames) - 2, "faces missed: the picture is not upright"
