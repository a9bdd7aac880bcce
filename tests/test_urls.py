"""One URL check for cameras, MQTT brokers and webhooks, and one camera type with one name rule."""

from __future__ import annotations

import pytest

from facetrack.config import CameraConfig, load_config, name_cameras
from facetrack.errors import FacetrackError
from facetrack.sinks.mqtt import parse_mqtt_url
from facetrack.sinks.webhook import check_webhook_url
from facetrack.sources import parse_source
from tests.conftest import run_cli_here


@pytest.mark.parametrize(("check", "url", "message"), [
    (parse_source, "gopher://cam/x", "URL gopher://cam/x must be rtsp://"),
    (parse_mqtt_url, "ftp://broker", "MQTT URL ftp://broker must be mqtt(s)://"),
    (check_webhook_url, "ftp://hook/T0/hunter2", "webhook URL ftp://hook must be http(s)://"),
    (parse_source, "rtsp://admin:hunter2@:554/x", "it names no host"),
    (parse_mqtt_url, "mqtt://u:hunter2@/", "it names no host"),
    (check_webhook_url, "https://u:hunter2@:443/hook", "it names no host"),
    (parse_source, "rtsp://cam/live\nhunter2", "malformed URL: it holds a control character"),
    (check_webhook_url, "https://hook.example/a b/hunter2", "it holds a space (write it as %20)"),
])
def test_every_url_is_checked_the_same_way_without_quoting_secrets(check, url: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FacetrackError) as caught:
        check(url)
    assert message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_watch_refuses_a_bad_broker_before_opening_anything() -> None:
    result = run_cli_here("watch", "/dev/video99", "--mqtt", "mqtt://alerts:hunter2@/")
    assert result.returncode == 2 and "malformed MQTT URL mqtt://***@/: it names no host" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_a_url_gives_what_a_client_needs() -> None:
    assert parse_mqtt_url("mqtts://alerts:p%40ss@Broker.lan") == ("broker.lan", 8883, True, "alerts", "p@ss")
    assert parse_mqtt_url("broker:1884") == ("broker", 1884, False, None, None)
    checked = check_webhook_url("https://hook:pw@hooks.example/T0")
    assert (checked.host, checked.port, checked.username, checked.password) == ("hooks.example", 443, "hook", "pw")


def test_command_line_and_config_cameras_follow_one_name_rule() -> None:
    cameras = name_cameras(["door=rtsp://cam/1", "a b=clip.mp4", "x+=0", "video=Integrated Camera"])
    assert [c.name for c in cameras] == ["door", "cam1", "cam2", "cam3"]  # not names: the whole text is the source
    assert cameras[1].url == "a b=clip.mp4"
    assert cameras[0] == CameraConfig(name="door", url="rtsp://cam/1")
    assert load_config(overrides={"cameras": [{"name": "door", "url": "rtsp://cam/1"}]}).cameras == cameras[:1]
    for bad in ("a b", "x+", "door/1"):
        with pytest.raises(FacetrackError, match="camera names use letters"):
            load_config(overrides={"cameras": [{"name": bad, "url": "0"}]})
    with pytest.raises(FacetrackError, match="camera names must be unique"):
        name_cameras(["door=0", "door=1"])
