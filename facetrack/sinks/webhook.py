"""HTTP webhook alerts: each alert is POSTed as JSON from the sink's own thread, never blocking the pipeline.

Posts wait in the bounded queue of a `BackgroundSender`; when it is full the oldest is dropped and counted.
While the endpoint cannot be reached at all, the post at the head is retried with exponential back-off (up to
30 s apart) and the queue keeps the newest alerts; a server error (5xx) is retried `retries` times; a refusal
(4xx) is not retried. The endpoint going down is said once, and once when it is back.

Redirects are not followed: a 3xx answer is a failed delivery, so an alert (and the Authorization header made
from the URL's credentials) never goes anywhere but the configured endpoint.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal

from facetrack.config import WebhookConfig
from facetrack.sinks.sender import BackgroundSender
from facetrack.urls import CheckedUrl, check_url, origin, scrub

log = logging.getLogger(__name__)

_MAX_BACKOFF = 30.0
Outcome = Literal["sent", "unreachable", "server-error", "refused"]


def check_webhook_url(url: str) -> CheckedUrl:
    return check_url(url, {"http": 80, "https": 443}, "http(s)://host[:port]/path", what="webhook", shown=origin,
                     spaces=False)


def _split_credentials(checked: CheckedUrl) -> tuple[str, dict[str, str]]:
    """`https://user:pass@host/…` → the URL without them and a Basic Authorization header."""
    if not checked.username:
        return checked.url, {}
    parts = urllib.parse.urlsplit(checked.url)
    netloc = f"[{checked.host}]" if ":" in checked.host else checked.host
    if parts.port:
        netloc += f":{parts.port}"
    token = base64.b64encode(f"{checked.username}:{checked.password or ''}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is not followed: urllib then raises it as an HTTPError, and the post counts as failed."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, config: WebhookConfig) -> None:
        self.url, self._headers = _split_credentials(check_webhook_url(url))
        self.label = origin(url)  # Slack, Discord and others keep their token in the path
        self.config = config
        self.sent = 0
        self.failed = 0  # posts the server refused or kept failing
        self._down = False
        self._refusals_said: set[int] = set()
        self._sender: BackgroundSender[bytes] = BackgroundSender(
            f"webhook {self.label}", self._deliver, config.queue_size, thread_name="webhook",
            describe=lambda body: "sending an alert", on_error=self._lost)
        self._thread = self._sender.thread

    @property
    def dropped(self) -> int:
        """Posts pushed out of a full queue, or still queued at exit."""
        return self._sender.dropped

    @property
    def fault(self) -> str | None:
        """An unexpected error in the sender thread: said, and the sink reads down until a post goes."""
        return self._sender.fault

    def _lost(self, body: bytes) -> None:
        self.failed += 1

    def publish(self, camera: str, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        self._sender.put(json.dumps({"topic": topic, **payload}, separators=(",", ":")).encode())

    def _deliver(self, body: bytes) -> bool:
        """Post one alert, retrying as the outcome allows; False when closing interrupted the retries."""
        delay = self.config.backoff
        server_errors = 0
        while True:
            outcome, detail = self._post(body)
            if outcome == "sent":
                self.sent += 1
                self._sender.clear_fault()
                if self._down:
                    log.warning("webhook %s is reachable again", self.label)
                    self._down = False
                return True
            if outcome == "refused":
                self.failed += 1
                if int(detail.split()[0]) not in self._refusals_said:  # say each kind of refusal once
                    self._refusals_said.add(int(detail.split()[0]))
                    log.warning("webhook %s refused an alert (%s); such alerts are not retried", self.label, detail)
                return True
            if not self._down:
                self._down = True
                log.warning("webhook %s: %s; alerts are kept (at most %d) and retried",
                            self.label, detail, self.config.queue_size)
            if outcome == "server-error":
                server_errors += 1
                if server_errors > self.config.retries:
                    self.failed += 1
                    return True
            if self._sender.closing:
                self._sender.put_back(body)
                return False
            self._sender.pause(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    def _post(self, body: bytes) -> tuple[Outcome, str]:
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "facetrack", **self._headers})
        try:
            with _OPENER.open(request, timeout=self.config.timeout) as response:
                response.read()
            if not 200 <= response.status < 300:  # a 1xx/3xx that reached here was not a delivery
                return "refused", f"{response.status} {response.reason}"
            return "sent", ""
        except urllib.error.HTTPError as exc:
            detail = f"{exc.code} {exc.reason}"
            if 300 <= exc.code < 400:
                target = exc.headers.get("Location") if exc.headers else None
                where = f" to {origin(urllib.parse.urljoin(self.url, target))}" if target else ""
                return "refused", f"{detail}, a redirect{where}; redirects are not followed: configure the final URL"
            retry = exc.code >= 500 or exc.code in (408, 429)
            return ("server-error" if retry else "refused"), detail
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return "unreachable", scrub(f"it cannot be reached ({reason})")
        except http.client.HTTPException as exc:  # an answer that is not HTTP: a wrong port, a broken proxy
            return "server-error", scrub(f"its answer is not HTTP ({type(exc).__name__}: {exc})"[:200])

    def pending(self) -> int:
        return self._sender.pending()

    def describe(self) -> str:
        state = f"down ({self.fault})" if self.fault else "down" if self._down else "up"
        return f"{state}, {self.sent} sent, {self.pending()} queued, {self.failed} failed, {self.dropped} dropped"

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for up to `timeout` s (once each while the endpoint is down), then stop."""
        self._sender.close(time.monotonic() + timeout, keep_sending=lambda: not self._down)
