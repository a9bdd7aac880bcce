"""The network sinks' one background sender: bounded, oldest dropped first, and a fault said and survived."""

from __future__ import annotations

import logging
import threading

import pytest

from facetrack.sinks.sender import BackgroundSender
from loopback import wait_until


def test_an_exception_is_said_once_the_sink_reads_down_and_the_next_item_goes(
        caplog: pytest.LogCaptureFixture) -> None:
    sent: list[str] = []
    lost: list[str] = []

    def send(item: str) -> bool:
        if item.startswith("bad"):
            raise ValueError(f"cannot send {item} to http://user:hunter2@hook.example/x")
        sent.append(item)
        sender.clear_fault()
        return True

    with caplog.at_level(logging.ERROR, logger="facetrack.sinks.sender"):
        sender = BackgroundSender("webhook https://hook.example", send, 10, thread_name="test-sender",
                                  describe=lambda item: f"sending {item}", on_error=lost.append)
        try:
            sender.put("bad-1")
            sender.put("bad-2")
            assert wait_until(lambda: len(lost) == 2, timeout=5)
            assert sender.fault is not None and sender.fault.startswith("sending bad-2: ValueError")
            assert "hunter2" not in sender.fault
            sender.put("good")
            assert wait_until(lambda: sent == ["good"], timeout=5)
            assert sender.fault is None and sender.thread.is_alive()
        finally:
            sender.close(0.0, keep_sending=lambda: False)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "webhook https://hook.example: sending bad-1 failed" in errors[0].getMessage()
    assert errors[0].exc_info is not None  # with its traceback, for the bug report
    assert "hunter2" not in errors[0].getMessage()
    assert not sender.thread.is_alive()


def test_a_full_queue_drops_the_oldest_and_close_counts_what_is_left() -> None:
    gate = threading.Event()
    sent: list[int] = []

    def send(item: int) -> bool:
        gate.wait(5)
        sent.append(item)
        return True

    sender = BackgroundSender("test", send, 3, thread_name="test-sender")
    sender.put(0)  # taken at once by the thread, which then waits on the gate
    assert wait_until(lambda: sender.pending() == 0, timeout=5)
    for i in range(1, 8):
        sender.put(i)
    assert sender.pending() == 3 and sender.dropped == 4  # 1..4 made room for 5, 6, 7
    gate.set()
    assert wait_until(lambda: sent == [0, 5, 6, 7], timeout=5)
    sender.close(0.0, keep_sending=lambda: False)
    assert sender.dropped == 4


def test_items_wait_while_the_sink_is_not_ready() -> None:
    ready = threading.Event()
    sent: list[int] = []
    sender = BackgroundSender("test", lambda item: sent.append(item) is None, 10, thread_name="test-sender",
                              ready=ready.is_set)
    sender.put(1)
    sender.put(2)
    assert not wait_until(lambda: bool(sent), timeout=0.3)
    ready.set()
    sender.wake()
    assert wait_until(lambda: sent == [1, 2], timeout=5)
    ready.clear()
    sender.put(3)
    sender.close(0.0, keep_sending=ready.is_set)  # not ready at close: what waits is dropped, counted
    assert sent == [1, 2] and sender.dropped == 1
