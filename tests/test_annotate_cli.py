"""`facetrack annotate` end to end on the real clip, and every bad input a user can give it."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def annotated(clip_run: dict) -> dict:
    return clip_run


def test_output_video_matches_input_frames_size_rate_and_keeps_audio(annotated: dict, clip_path: Path) -> None:
    with av.open(str(annotated["video"])) as out, av.open(str(clip_path)) as src:
        video = out.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 360)
        assert video.codec_context.name == "h264"
        assert video.average_rate == src.streams.video[0].average_rate
        assert out.streams.audio, "the input's audio stream was dropped"
        frames = list(out.decode(video=0))
        src_pts = [f.pts for f in src.decode(video=0)]
    assert len(frames) == 275
    assert [f.pts for f in frames] == src_pts  # timestamps preserved, frame for frame


def test_events_have_one_frame_line_per_frame_with_increasing_pts(annotated: dict) -> None:
    frames = [e for e in annotated["events"] if e["type"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(275))
    pts = [e["pts"] for e in frames]
    assert all(a < b for a, b in zip(pts, pts[1:], strict=False))
    faces = [f for e in frames for f in e["faces"]]
    assert len(faces) > 400
    for face in faces:
        assert set(face) == {"track_id", "identity", "known", "similarity", "score", "box", "reason"}
        assert face["identity"] is None or isinstance(face["identity"], str)
        x1, y1, x2, y2 = face["box"]
        assert x1 < x2 and y1 < y2 and 0 < face["score"] <= 1


def test_every_track_starts_before_it_appears_and_ends_once(annotated: dict) -> None:
    started: dict[int, int] = {}
    ended: dict[int, int] = {}
    for event in annotated["events"]:
        if event["type"] == "track_start":
            assert event["track_id"] not in started
            started[event["track_id"]] = event["frame"]
        elif event["type"] == "track_end":
            assert event["track_id"] not in ended
            ended[event["track_id"]] = event["frame"]
        elif event["type"] == "frame":
            for face in event["faces"]:
                assert started[face["track_id"]] <= event["frame"]
                assert face["track_id"] not in ended
    assert started.keys() == ended.keys() and len(started) >= 4


def test_shot_cuts_end_tracks(annotated: dict) -> None:
    """The clip cuts to the audience at frame 211: no track lives on both sides of that cut."""
    frames = [e for e in annotated["events"] if e["type"] == "frame"]
    before = {f["track_id"] for e in frames[195:211] for f in e["faces"]}
    after = {f["track_id"] for e in frames[212:] for f in e["faces"]}
    assert before and after and not before & after


def test_summary_reports_frames_faces_tracks_and_fps(annotated: dict) -> None:
    assert "275 frames" in annotated["stderr"] and "tracks" in annotated["stderr"] and "fps" in annotated["stderr"]


def _one_line_error(result, message: str, code: int = 2) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) == 1


def test_missing_input(tmp_path: Path) -> None:
    _one_line_error(run_cli("annotate", tmp_path / "nope.mp4", "-o", tmp_path / "o.mp4"), "input file not found")


def test_input_that_is_not_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    _one_line_error(run_cli("annotate", fake, "-o", tmp_path / "o.mp4"), "cannot read")


def test_unwritable_output(tmp_path: Path, clip_path: Path) -> None:
    result = run_cli("annotate", clip_path, "-o", tmp_path / "missing-dir" / "o.mp4")
    _one_line_error(result, "does not exist")


def test_model_that_is_not_a_detector(tmp_path: Path, clip_path: Path, recognizer_path: Path) -> None:
    result = run_cli("annotate", clip_path, "-o", tmp_path / "o.mp4", "--detector", recognizer_path)
    _one_line_error(result, "not an SCRFD face detector")


def test_file_that_is_not_a_model(tmp_path: Path, clip_path: Path) -> None:
    junk = tmp_path / "det.onnx"
    junk.write_bytes(b"\x00" * 100)
    _one_line_error(run_cli("annotate", clip_path, "-o", tmp_path / "o.mp4", "--detector", junk), "not a valid ONNX")


def test_missing_model_offline_names_file_and_fix(tmp_path: Path, clip_path: Path) -> None:
    result = run_cli("annotate", clip_path, "-o", tmp_path / "o.mp4", "--detector", tmp_path / "det_10g.onnx")
    _one_line_error(result, "detector model file not found")


def _remux_mkv(source: Path, target: Path) -> None:
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux():
            if packet.dts is not None and packet.stream.index in streams:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)


def test_truncated_file_keeps_what_decodes_and_says_so(tmp_path: Path, clip_path: Path,
                                                       fast_detector_path: Path) -> None:
    whole = tmp_path / "clip.mkv"
    _remux_mkv(clip_path, whole)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    out, events = tmp_path / "o.mp4", tmp_path / "o.jsonl"
    result = run_cli("annotate", cut, "-o", out, "--events", events, "--detector", fast_detector_path)
    _one_line_error(result, "ends early", code=3)
    frame_lines = [line for line in events.read_text().splitlines() if '"type":"frame"' in line]
    with av.open(str(out)) as written:
        decoded = sum(1 for _ in written.decode(video=0))
    assert 60 < decoded < 275 and decoded == len(frame_lines)


def test_truncated_mp4_without_index_is_refused_clearly(tmp_path: Path, clip_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip_path.read_bytes()[:300_000])  # this file's index sits at its end
    _one_line_error(run_cli("annotate", cut, "-o", tmp_path / "o.mp4"), "truncated or corrupt")


def test_nothing_to_write(clip_path: Path) -> None:
    _one_line_error(run_cli("annotate", clip_path), "nothing to write")
