"""MQTT alerts with paho-mqtt: `<prefix>/<camera>/<topic>` JSON messages, never blocking the pipeline.

Messages wait in the bounded queue of a `BackgroundSender` (the oldest go first when it is full, and are counted)
and are handed to paho by its thread only while the broker is connected; paho's network thread reconnects by
itself. A broker that is down is said once, when it goes, and once when it is back. The broker holds a retained
`<prefix>/status` that reads "offline" when this process goes away without saying goodbye (MQTT's last will).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

import paho.mqtt.client as mqtt

from facetrack.config import MqttConfig
from facetrack.sinks.sender import BackgroundSender
from facetrack.urls import check_url

log = logging.getLogger(__name__)

_PORTS: dict[str, int | None] = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}
_TLS = ("mqtts", "ssl")


def parse_mqtt_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """(host, port, tls, username, password) of `mqtt://[user:pass@]host[:port]`."""
    checked = check_url(url if "://" in url else f"mqtt://{url}", _PORTS, "mqtt(s)://[user:pass@]host[:port]",
                        what="MQTT")
    return checked.host, checked.port or 1883, checked.scheme in _TLS, checked.username, checked.password


_clear_text_said: set[str] = set()


def _warn_clear_text(broker: str) -> None:
    if broker not in _clear_text_said:  # once per broker and process
        _clear_text_said.add(broker)
        log.warning("MQTT broker %s: the password travels in clear text over mqtt:// (use mqtts:// to encrypt it)",
                    broker)


class MqttPublisher:
    name = "mqtt"

    def __init__(self, url: str, config: MqttConfig) -> None:
        self.host, self.port, tls, username, password = parse_mqtt_url(url)
        self.label = f"{self.host}:{self.port}"  # no user, no password
        self.prefix = config.topic_prefix.rstrip("/")
        self.qos = config.qos
        self.sent = 0
        self._unsent = 0  # messages paho could not take
        self._max = config.queue_size
        self._connected = False
        self._closing = False
        self._down_said = False
        client_id = config.client_id or f"facetrack-{socket.gethostname()}-{os.getpid()}"
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self._client.username_pw_set(username, password)
        if password and not tls:
            _warn_clear_text(self.label)
        if tls:
            self._client.tls_set()
        self._status_topic = f"{self.prefix}/status"
        self._client.will_set(self._status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._guarded(self._on_connect)
        self._client.on_disconnect = self._guarded(self._on_disconnect)
        self._client.on_connect_fail = self._guarded(self._on_connect_fail)
        # Messages wait here while the broker is away, and go to paho only while it is connected.
        self._sender: BackgroundSender[tuple[str, bytes, bool]] = BackgroundSender(
            f"MQTT broker {self.label}", self._send, self._max, thread_name="mqtt-publish",
            ready=lambda: self._connected, describe=lambda message: f"publishing to {message[0]}",
            on_error=self._lost)
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()

    @property
    def dropped(self) -> int:
        """Alerts pushed out of a full queue while the broker was away, refused, or still queued at exit."""
        return self._sender.dropped + self._unsent

    @property
    def fault(self) -> str | None:
        """An unexpected error in a callback or the sender thread (the sink reads down until a message goes)."""
        return self._sender.fault

    def _lost(self, message: tuple[str, bytes, bool]) -> None:
        self._unsent += 1

    def _guarded(self, callback: Any) -> Any:
        """paho's network thread dies on an exception in a callback, silently: never let one out."""
        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception as exc:
                self._sender.report_fault(f"the {callback.__name__.lstrip('_')} callback", exc)
        return guarded

    # paho's network thread calls these.
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._say_down(f"the broker refused the connection ({reason})")
            return
        client.publish(self._status_topic, json.dumps({"state": "online"}), qos=1, retain=True)
        self._connected = True
        self._sender.wake()
        if self._down_said:
            log.warning("MQTT broker %s is reachable again: sending the alerts kept meanwhile", self.label)
            self._down_said = False
        else:
            log.info("MQTT: connected to %s", self.label)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected = False
        self._sender.wake()
        if not self._closing:
            self._say_down(f"the connection was lost ({reason})")

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._say_down("it cannot be reached")

    def _say_down(self, why: str) -> None:
        if not self._down_said and not self._closing:
            self._down_said = True
            log.warning("MQTT broker %s: %s; alerts are kept (at most %d) and sent when it is back",
                        self.label, why, self._max)

    def publish(self, camera: str, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        self._sender.put((f"{self.prefix}/{camera}/{topic}",
                          json.dumps(payload, separators=(",", ":")).encode(), retain))

    def _send(self, message: tuple[str, bytes, bool]) -> bool:
        """Hand one message to paho (the sender's thread; an exception is its fault, and this message lost)."""
        topic, payload, retain = message
        info = self._client.publish(topic, payload, qos=self.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.sent += 1
            self._sender.clear_fault()
        else:  # paho keeps qos>0 messages it could not send and resends them on reconnect
            kept = self.qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN
            self.sent += int(kept)
            self._unsent += int(not kept)
        return True

    def pending(self) -> int:
        return self._sender.pending()

    def describe(self) -> str:
        state = f"down ({self.fault})" if self.fault else "connected" if self._connected else "down"
        return f"{state}, {self.sent} sent, {self.pending()} queued, {self.dropped} dropped"

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (for up to `timeout` s while connected), say goodbye and disconnect."""
        deadline = time.monotonic() + timeout
        self._sender.close(deadline, keep_sending=lambda: self._connected)
        self._closing = True
        if self._connected:
            info = self._client.publish(self._status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass  # the connection went meanwhile: the last will says offline instead
        self._client.disconnect()
        self._client.loop_stop()
