"""`facetrack watch` on files (the threaded runner: every frame, in order) and on every bad source a user can give."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from facetrack.config import load_config
from facetrack.errors import FacetrackError
from facetrack.live import CameraSpec, LiveRunner, name_sources
from facetrack.pipeline import Pipeline
from facetrack.sources import FileSource, parse_source
from facetrack.urls import scrub
from loopback import free_port
from tests.conftest import run_cli


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def two_files(tmp_path_factory: pytest.TempPathFactory, clip_path: Path, fast_detector_path: Path) -> dict:
    """The clip watched as two cameras at once, with events and recordings."""
    out = tmp_path_factory.mktemp("watch")
    events, record = out / "events.jsonl", out / "rec.mp4"
    result = run_cli("watch", f"left={clip_path}", f"right={clip_path}", "--events", events, "--record", record,
                     "--detector", fast_detector_path)
    assert result.returncode == 0, result.stderr
    return {"events": _events(events), "out": out, "stderr": result.stderr}


@pytest.mark.parametrize("camera", ["left", "right"])
def test_files_give_every_frame_in_order_per_camera(two_files: dict, camera: str) -> None:
    mine = [e for e in two_files["events"] if e["camera"] == camera]
    frames = [e for e in mine if e["type"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(275))
    assert sum(len(e["faces"]) for e in frames) > 400
    started = {e["track_id"] for e in mine if e["type"] == "track_start"}
    ended = {e["track_id"] for e in mine if e["type"] == "track_end"}
    assert started and started == ended  # every track closed at the end of the file


def test_both_cameras_get_the_same_faces(two_files: dict) -> None:
    """One shared detector, a tracker per camera: the same input gives the same per-camera results."""
    def boxes(camera: str) -> list[list]:
        return [[f["box"] for f in e["faces"]] for e in two_files["events"]
                if e["camera"] == camera and e["type"] == "frame"]

    assert boxes("left") == boxes("right")


@pytest.mark.parametrize("camera", ["left", "right"])
def test_recordings_per_camera_are_complete(two_files: dict, clip_path: Path, camera: str) -> None:
    with av.open(str(two_files["out"] / f"rec_{camera}.mp4")) as out, av.open(str(clip_path)) as src:
        assert out.streams.audio  # a file source keeps its sound
        pts = [f.pts for f in out.decode(video=0)]
        assert pts == [f.pts for f in src.decode(video=0)]


def test_summary_and_stats_are_printed(two_files: dict) -> None:
    stderr = two_files["stderr"]
    assert "done (end): 550 frames" in stderr
    for word in ("left", "right", "latency", "detect+track", "queues", "memory"):
        assert word in stderr


def test_cameras_share_one_detector(clip_path: Path, fast_detector_path: Path) -> None:
    config = load_config(overrides={"models": {"detector": fast_detector_path}})
    runner = LiveRunner(config, [CameraSpec("a", str(clip_path)), CameraSpec("b", str(clip_path))], max_frames=3)
    assert runner.cameras[0].pipeline.detector is runner.cameras[1].pipeline.detector
    assert runner.cameras[0].pipeline.tracker is not runner.cameras[1].pipeline.tracker
    summary = runner.run()
    assert [c.frames for c in summary.report.cameras] == [3, 3]


def test_python_api_callbacks_see_every_result_and_event(clip_path: Path, fast_detector_path: Path) -> None:
    config = load_config(overrides={"models": {"detector": fast_detector_path}})
    results: list[int] = []
    kinds: set[str] = set()
    runner = LiveRunner(config, [CameraSpec("cam", str(clip_path))], max_frames=40,
                        on_result=lambda cam, result: results.append(result.frame.index),
                        on_event=lambda cam, event: kinds.add(event["type"]))
    runner.run()
    assert results == list(range(40))
    assert {"frame", "track_start", "track_end"} <= kinds


def test_threaded_runner_gives_the_events_of_the_sequential_pipeline(clip_path: Path, fast_detector_path: Path,
                                                                      recognizer_path: Path,
                                                                      gallery_dir: Path) -> None:
    """Stages in their own threads (identity batched across cameras) change nothing for a file."""
    config = load_config(overrides={"models": {"detector": fast_detector_path, "recognizer": recognizer_path},
                                    "identity": {"gallery": gallery_dir}})
    source = FileSource(clip_path)
    pipeline = Pipeline(config, frame_rate=float(source.info.fps))
    expected = []
    for frame in source:
        expected += pipeline.process(frame).events
    expected += pipeline.finish(frame.index, frame.pts)
    source.close()
    threaded: list[dict] = []
    runner = LiveRunner(config, [CameraSpec("cam", str(clip_path))], detector=pipeline.detector,
                        on_event=lambda camera, event: threaded.append({k: v for k, v in event.items()
                                                                        if k != "camera"}))
    runner.run()
    assert any(e["type"] == "identity" for e in expected)
    assert threaded == expected


def test_http_video_is_read_like_a_file(tmp_path: Path, clip_path: Path, fast_detector_path: Path) -> None:
    """An http:// URL of a video with a length: every frame in order, with the stream's own timestamps."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    with av.open(str(clip_path)) as src, av.open(str(tmp_path / "clip.mkv"), "w") as dst:  # readable front to back
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(video=0):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    events = tmp_path / "e.jsonl"
    try:
        result = run_cli("watch", f"http://127.0.0.1:{server.server_address[1]}/clip.mkv", "--events", events,
                         "--detector", fast_detector_path, "--max-frames", "60")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    frames = [e for e in _events(events) if e["type"] == "frame"]
    assert [e["frame"] for e in frames] == list(range(60))
    assert frames[0]["pts"] > 0.8  # the clip's first timestamp, not the arrival time


def _one_line_error(result, message: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) == 1


@pytest.mark.parametrize(("source", "message"), [
    ("rtsp://viewer:s3cret-pw@127.0.0.1:{closed}/stream", "Connection refused"),
    ("rtsp://viewer:s3cret-pw@:554/stream", "malformed URL"),
    ("rtsp://host:port/stream", "malformed URL"),
    ("gopher://host/stream", "unsupported URL scheme"),
    ("/dev/video99", "camera /dev/video99 not found"),
])
def test_bad_sources_fail_at_once_with_one_line(tmp_path: Path, fast_detector_path: Path, source: str,
                                                message: str) -> None:
    source = source.format(closed=free_port())
    # The timeout is a guard against hanging, not a speed goal.
    result = run_cli("watch", source, "--events", tmp_path / "e.jsonl", "--detector", fast_detector_path, timeout=60)
    _one_line_error(result, message)
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_watch_without_sources_or_cameras_says_what_to_pass(tmp_path: Path) -> None:
    _one_line_error(run_cli("watch", "--events", tmp_path / "e.jsonl"), "nothing to watch")


def test_config_cameras_are_watched(tmp_path: Path, clip_path: Path, fast_detector_path: Path) -> None:
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras:\n  - {{name: stage, url: '{clip_path}'}}\n")
    events = tmp_path / "e.jsonl"
    result = run_cli("watch", "-c", config, "--events", events, "--detector", fast_detector_path,
                     "--max-frames", "10")
    assert result.returncode == 0, result.stderr
    frames = [e for e in _events(events) if e["type"] == "frame"]
    assert [(e["camera"], e["frame"]) for e in frames] == [("stage", i) for i in range(10)]


@pytest.mark.parametrize("text", ["a b", "a/b", "x+"])
def test_camera_names_must_be_topic_safe(tmp_path: Path, text: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"cameras:\n  - {{name: '{text}', url: '0'}}\n")
    with pytest.raises(FacetrackError, match="camera names"):
        load_config(config)


def test_source_names_and_kinds() -> None:
    cameras = name_sources(["door=rtsp://u:p@cam/1", "rtsp://cam/2?channel=1", "clip.mp4"])
    assert [c.name for c in cameras] == ["door", "cam1", "cam2"]
    assert cameras[1].url == "rtsp://cam/2?channel=1"
    assert parse_source("rtsp://u:p@cam/1").kind == "stream"
    assert parse_source("/dev/video2").format == "v4l2"
    assert parse_source("clip.mp4").kind == "file"
    assert scrub("cannot open rtsp://admin:hunter2@10.0.0.1/x and http://a:b@h/") == \
        "cannot open rtsp://***@10.0.0.1/x and http://***@h/"
