"""Alerts: the few events worth telling someone about, picked out of the event stream for MQTT and webhooks.

Topics, under `<prefix>/<camera>/`:
  identity  a track was given a gallery name                  (identity events with a known name)
  unknown   an unknown person appeared                         (identity events naming `unknown-N`; without an
                                                                identity stage, every new track)
  left      a person left the view (the track ended)           (track_end, with the track's last identity)
  status    the camera's state and rates, retained             (online / reconnecting / offline)
Frame events are not alerts: they stay in the events file. With an identity memory (`--store`), identity and
unknown alerts also carry `first_seen` (ISO time of the person's first sighting, or now) and `times_seen` (their
sightings so far, this one included): a stranger's `unknown-N` is then the same on every camera and every run.
People ignored in the store (`facetrack people ignore`: their events carry `"ignored": true`) are never alerted:
neither their identity or unknown alert, nor their possible duplicates, nor their track's `left`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Protocol

from facetrack.sinks.events import Event

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """A sink that sends alerts somewhere without ever blocking the caller."""

    name: str

    def publish(self, camera: str, topic: str, payload: dict[str, Any], retain: bool = False) -> None: ...

    def close(self, timeout: float = 2.0) -> None: ...

    def describe(self) -> str: ...


def decision(event: Event) -> str | None:
    """"known" or "unknown" for an identity event that decides; None while undecided or in conflict."""
    state = event.get("state")
    if state is not None:
        return state if state in ("known", "unknown") else None
    name = event.get("identity")
    return None if not name else ("unknown" if str(name).startswith("unknown") else "known")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class AlertRouter:
    """Turns per-camera events into alerts and hands them to every publisher."""

    def __init__(self, publishers: list[Publisher], identity_stage: bool = False,
                 history: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.publishers = publishers
        self.history = history  # identity → {"first_seen", "times_seen"} from the identity memory
        # With an identity stage, "unknown" comes from its decision; without one, every new face is unknown.
        self.identity_stage = identity_stage
        self._names: dict[tuple[str, int], tuple[str | None, bool]] = {}  # (camera, track) → (identity, known)
        self._ignored: set[tuple[str, int]] = set()  # (camera, track) of people ignored in the store
        self.sent: dict[str, int] = {}
        self.skipped = 0  # alerts not sent: about ignored people

    def handle(self, camera: str, event: Event) -> None:
        kind = event.get("type")
        if kind in ("identity", "possible_duplicate"):
            key = (camera, int(event["track_id"]))
            if event.get("ignored"):
                self._ignored.add(key)
            elif kind == "identity" and event.get("identity") is not None:
                self._ignored.discard(key)  # another person now, or no longer ignored
        elif kind == "frame":  # a person ignored while their track goes on: its `left` is not sent either
            for face in event.get("faces", ()):
                if face.get("ignored"):
                    self._ignored.add((camera, int(face["track_id"])))
        if kind == "identity":
            decided = decision(event)
            known = decided == "known"
            self._names[(camera, int(event["track_id"]))] = (event.get("identity"), known)
            if event.get("ignored"):
                self.skipped += decided is not None
            elif decided is not None:  # a track going back to undecided, or torn between two, is no news yet
                extra = self.history(str(event["identity"])) if self.history is not None else {}
                self._send(camera, "identity" if known else "unknown", {**event, **extra})
        elif kind == "possible_duplicate":  # one gallery name on two cameras at once
            if event.get("ignored"):
                self.skipped += 1
            else:
                self._send(camera, "possible_duplicate", event)
        elif kind == "track_start" and not self.identity_stage:
            self._send(camera, "unknown", event)
        elif kind == "track_end":
            key = (camera, int(event["track_id"]))
            name, known = self._names.pop(key, (None, False))
            if key in self._ignored:
                self._ignored.discard(key)
                self.skipped += 1
            else:
                self._send(camera, "left", {**event, "identity": name, "known": known})

    def status(self, camera: str, state: str, details: dict[str, Any] | None = None) -> None:
        """The camera's state (online, reconnecting, offline) and rates; retained, so a new subscriber sees it."""
        payload = {"camera": camera, "state": state, "time": now_iso(), **(details or {})}
        for publisher in self.publishers:
            if publisher.name == "mqtt":  # a webhook call every few seconds would be noise
                publisher.publish(camera, "status", payload, retain=True)

    def _send(self, camera: str, topic: str, event: Event) -> None:
        payload = {"camera": camera, **event, "time": now_iso()}
        self.sent[topic] = self.sent.get(topic, 0) + 1
        for publisher in self.publishers:
            publisher.publish(camera, topic, payload)

    def close(self, timeout: float = 2.0) -> None:
        for publisher in self.publishers:
            try:
                publisher.close(timeout)
            except Exception as exc:  # one failing sink must not keep the others from finishing
                log.warning("%s did not close cleanly: %s", publisher.name, exc)
