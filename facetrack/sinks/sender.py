"""One bounded background sender for the network sinks (MQTT, webhook): the pipeline never waits on a network.

Items wait in a bounded queue; when it is full the oldest is dropped and counted, so a sink that is away keeps
the newest alerts. One thread hands them, oldest first, to the sink's `send` while the sink is `ready` (an MQTT
broker that is connected). An exception where none was expected (a bug, a library surprise) is logged once with
its traceback, the sink reads down (`fault`) and the thread goes on with the next item: never a silent dead
thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from facetrack.urls import scrub

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundSender(Generic[T]):
    """A bounded queue emptied by one thread.

    `send(item)` returns False to stop the thread (closing while the endpoint is away: the item was put back);
    `describe(item)` names what failed in a fault ("publishing to facetrack/door/left"); `on_error(item)` counts
    the item lost to an exception; `ready()` holds items back while the sink cannot take them (call `wake()`
    when that changes).
    """

    def __init__(self, what: str, send: Callable[[T], bool], max_items: int, *, thread_name: str,
                 ready: Callable[[], bool] = lambda: True, describe: Callable[[T], str] = lambda item: "sending",
                 on_error: Callable[[T], None] = lambda item: None) -> None:
        self.what = what  # how the sink is named in messages ("MQTT broker host:1883"), never with a secret
        self.max_items = max_items
        self.dropped = 0  # items pushed out of a full queue, or still queued at close
        self.fault: str | None = None  # the latest unexpected error; cleared by the next success
        self._send, self._ready, self._describe, self._on_error = send, ready, describe, on_error
        self._queue: deque[T] = deque()
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self.thread.start()

    def put(self, item: T) -> None:
        """Queue an item, at once (the oldest makes room when the queue is full)."""
        with self._cond:
            if len(self._queue) >= self.max_items:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            self._cond.notify_all()

    def put_back(self, item: T) -> None:
        """Return an item to the head of the queue (a retry cut short by closing)."""
        with self._cond:
            self._queue.appendleft(item)

    def wake(self) -> None:
        """The sink's `ready()` may have changed: look again."""
        with self._cond:
            self._cond.notify_all()

    def pending(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def pause(self, seconds: float) -> bool:
        """Wait between retries; True (at once) when closing."""
        return self._closing.wait(seconds)

    def report_fault(self, where: str, exc: BaseException) -> None:
        """An exception where none was expected: said once (with its traceback) and the sink reads down."""
        first = self.fault is None
        self.fault = scrub(f"{where}: {type(exc).__name__}: {exc}")
        if first:
            log.error("%s: %s failed (%s: %s); the sink reads down", self.what, scrub(where), type(exc).__name__,
                      scrub(str(exc)), exc_info=(type(exc), exc, exc.__traceback__))

    def clear_fault(self) -> None:
        self.fault = None

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._closing.is_set() or (self._queue and self._ready())):
                        self._cond.wait()
                    if not (self._queue and self._ready()):
                        return  # closing, and nothing more can go out
                    item = self._queue.popleft()
                    self._cond.notify_all()
                try:
                    if not self._send(item):
                        return
                except Exception as exc:  # this item is lost; the thread goes on with the next
                    self._on_error(item)
                    self.report_fault(self._describe(item), exc)
        except BaseException as exc:  # the thread itself ends: said, and the sink reads down for good
            self.report_fault("the sender thread", exc)

    def close(self, deadline: float, keep_sending: Callable[[], bool]) -> None:
        """Send what is queued while `keep_sending()` until `deadline` (time.monotonic), then stop the thread;
        what is still queued is dropped and counted."""
        with self._cond:
            while self._queue and keep_sending() and time.monotonic() < deadline:
                self._cond.wait(0.05)
        self._closing.set()
        self.wake()
        self.thread.join(timeout=max(0.1, deadline - time.monotonic()))
        with self._cond:
            self.dropped += len(self._queue)
            self._queue.clear()
