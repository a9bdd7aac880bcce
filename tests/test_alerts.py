"""Alerts to a real MQTT broker (Mosquitto) and a real webhook receiver on loopback; both down must not matter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import pytest

from facetrack.config import MqttConfig, WebhookConfig
from facetrack.sinks.mqtt import MqttPublisher
from facetrack.sinks.webhook import WebhookSink
from loopback import MqttRecorder, WebhookReceiver, free_port, mosquitto, wait_until
from tests.conftest import run_cli


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def alerted(tmp_path_factory: pytest.TempPathFactory, clip_path: Path, fast_detector_path: Path,
            recognizer_path: Path, gallery_dir: Path) -> dict:
    """The clip watched with identity, alerts going to a broker and a webhook."""
    tmp = tmp_path_factory.mktemp("alerts")
    receiver = WebhookReceiver()
    with mosquitto(tmp) as port:
        recorder = MqttRecorder(port)
        try:
            events = tmp / "events.jsonl"
            result = run_cli("watch", f"stage={clip_path}", "--events", events, "--mqtt", f"mqtt://127.0.0.1:{port}",
                             "--webhook", receiver.url, "--gallery", gallery_dir, "--recognizer", recognizer_path,
                             "--detector", fast_detector_path)
            assert result.returncode == 0, result.stderr
            lines = _events(events)
            lefts = sum(e["type"] == "track_end" for e in lines)
            assert wait_until(lambda: len(recorder.on("facetrack/stage/left")) >= lefts, timeout=10)
            messages = list(recorder.messages)
        finally:
            recorder.close()
            receiver.close()
    return {"events": lines, "mqtt": messages, "posts": receiver.posts, "stderr": result.stderr}


def _topic(alerted: dict, topic: str) -> list[dict]:
    return [payload for t, payload, _ in alerted["mqtt"] if t == f"facetrack/stage/{topic}"]


def test_identified_people_are_published(alerted: dict) -> None:
    known = [e for e in alerted["events"] if e["type"] == "identity" and e["state"] == "known"]
    assert known, "the clip has gallery people: expected identity decisions"
    published = _topic(alerted, "identity")
    assert [(m["track_id"], m["identity"]) for m in published] == [(e["track_id"], e["identity"]) for e in known]
    assert all(m["camera"] == "stage" and m["time"] for m in published)
    assert "lin_manuel_miranda" in {m["identity"] for m in published}


def test_unknown_people_and_departures_are_published(alerted: dict) -> None:
    unknown = [e for e in alerted["events"] if e["type"] == "identity" and e["state"] == "unknown"]
    assert [m["identity"] for m in _topic(alerted, "unknown")] == [e["identity"] for e in unknown]
    ended = [e["track_id"] for e in alerted["events"] if e["type"] == "track_end"]
    left = _topic(alerted, "left")
    assert sorted(m["track_id"] for m in left) == sorted(ended)
    named = {e["track_id"]: e["identity"] for e in alerted["events"] if e["type"] == "identity"}
    assert all(m["identity"] == named.get(m["track_id"]) for m in left)  # a departure says who left


def test_camera_status_is_retained_and_ends_offline(alerted: dict) -> None:
    status = _topic(alerted, "status")
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"
    process = [payload for t, payload, _ in alerted["mqtt"] if t == "facetrack/status"]
    assert process[-1] == {"state": "offline"}


def test_webhook_gets_the_same_alerts_as_json_posts(alerted: dict) -> None:
    posts = alerted["posts"]
    assert {p["content_type"] for p in posts} == {"application/json"}
    by_topic = {topic: [p for p in posts if p["topic"] == topic] for topic in ("identity", "unknown", "left")}
    for topic, mine in by_topic.items():
        assert [(p["track_id"], p["identity"]) for p in mine] == [
            (m["track_id"], m["identity"]) for m in _topic(alerted, topic)]
    assert not [p for p in posts if p["topic"] == "status"]  # status is for MQTT only


def test_sinks_that_are_down_do_not_stop_the_run_or_spoil_other_outputs(tmp_path: Path, clip_path: Path,
                                                                        fast_detector_path: Path) -> None:
    events, record = tmp_path / "events.jsonl", tmp_path / "rec.mp4"
    closed = free_port()
    result = run_cli("watch", clip_path, "--events", events, "--record", record, "--detector", fast_detector_path,
                     "--mqtt", f"mqtt://127.0.0.1:{closed}", "--webhook", f"http://127.0.0.1:{closed}/hook")
    assert result.returncode == 0, result.stderr
    assert [e["frame"] for e in _events(events) if e["type"] == "frame"] == list(range(275))
    with av.open(str(record)) as video:
        assert sum(1 for _ in video.decode(video=0)) == 275
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len([w for w in warnings if "MQTT broker" in w]) == 1, result.stderr  # said once, not per alert
    assert len([w for w in warnings if "webhook" in w]) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_webhook_retries_server_errors_with_backoff() -> None:
    receiver = WebhookReceiver(fail_first=2)
    url = receiver.url.replace("http://", "http://hook:pa%40ss@")  # credentials go in a Basic header
    sink = WebhookSink(url, WebhookConfig(retries=3, backoff=0.05))
    try:
        for i in range(3):
            sink.publish("door", "unknown", {"track_id": i})
        assert wait_until(lambda: sink.sent == 3, timeout=10)
    finally:
        sink.close()
        receiver.close()
    assert [p["track_id"] for p in receiver.posts] == [0, 1, 2]
    assert receiver.attempts == 5 and sink.failed == 0
    assert {p["authorization"] for p in receiver.posts} == {"Basic aG9vazpwYUBzcw=="}  # hook:pa@ss


def test_webhook_down_keeps_the_newest_alerts_and_counts_the_rest() -> None:
    sink = WebhookSink(f"http://127.0.0.1:{free_port()}/hook", WebhookConfig(queue_size=3, backoff=0.05))
    started = time.monotonic()
    for i in range(10):
        sink.publish("door", "left", {"track_id": i})  # never waits on the endpoint
    assert time.monotonic() - started < 1.0
    assert wait_until(lambda: sink.dropped >= 6, timeout=5)
    sink.close(timeout=0.5)
    assert sink.sent == 0 and sink.dropped + sink.failed == 10


def test_mqtt_alerts_wait_for_a_broker_that_comes_up_late(tmp_path: Path) -> None:
    port = free_port()
    publisher = MqttPublisher(f"mqtt://127.0.0.1:{port}", MqttConfig())
    try:
        for i in range(3):
            publisher.publish("door", "unknown", {"track_id": i})
        # paho retries 1 s after the first refusal, then 2 s later: the broker comes up in between, and the
        # subscriber is in before the publisher's next try.
        time.sleep(1.5)
        assert publisher.sent == 0 and publisher.pending() == 3
        with mosquitto(tmp_path, port):
            recorder = MqttRecorder(port)
            try:
                assert wait_until(lambda: len(recorder.on("facetrack/door/unknown")) == 3, timeout=30)
                assert [m["track_id"] for m in recorder.on("facetrack/door/unknown")] == [0, 1, 2]
            finally:
                recorder.close()
    finally:
        publisher.close(timeout=0.5)
