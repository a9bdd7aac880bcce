"""The decoding thread: a source's frames handed to the pipeline through a bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator

from facetrack.sources.base import Frame, Source

log = logging.getLogger(__name__)


_END = object()


class ThreadedReader:
    """Runs a source's decoding in its own thread, handing frames over through a bounded queue.

    Files (and finite streams): the queue blocks when full (back-pressure, no frame dropped); the pipeline
    never waits on the decoder once frames are buffered. Live sources (`latest_only`): the queue holds the
    newest frame only; a frame not taken before the next one arrives is dropped and counted, so the
    pipeline always works on the present and a slow stage never backs the stream up.
    """

    def __init__(self, source: Source, max_queue: int = 8, latest_only: bool = False,
                 on_frame: threading.Event | None = None) -> None:
        self.source = source
        self.latest_only = latest_only
        self.dropped = 0  # live frames replaced by a newer one before the pipeline took them
        self.decoded = 0
        self._ready = on_frame  # set whenever an item is queued: lets one consumer wait on several readers
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1 if latest_only else max_queue)
        self._stop = threading.Event()
        self._closing = threading.Event()  # the consumer has gone: nobody will take the end marker
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"decode-{source.source_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                self.decoded += 1
                if self.latest_only:
                    self._put_latest(frame)
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                if self._ready is not None:
                    self._ready.set()
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer thread, which re-raises it
            self._error = exc
        finally:
            self._put_end()
            if self._ready is not None:
                self._ready.set()

    def _put_latest(self, item: object) -> None:
        # One producer: if the slot is full, the frame in it is stale; swap it for the new one.
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            try:
                self._queue.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._queue.put_nowait(item)

    def _put_end(self) -> None:
        if self.latest_only:  # the end must not be lost: it replaces a pending frame, if any
            self._put_latest(_END)
            return
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._closing.is_set():
                    return

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]

    def poll(self) -> Frame | None | object:
        """The next frame without waiting: a `Frame`, None when none is ready, or `ThreadedReader.END`."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _END and self._error is not None:
            raise self._error
        return item

    END = _END

    def depth(self) -> tuple[int, int]:
        """Frames waiting, and how many the queue holds."""
        return self._queue.qsize(), self._queue.maxsize

    def stop(self) -> None:
        """Stop decoding; the reader then queues its end marker."""
        self._stop.set()
        self.source.stop()

    def close(self) -> None:
        self._closing.set()
        self.stop()
        while True:  # unblock a decoder waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5 + self.source.read_timeout)
        if self._thread.is_alive():
            # Still inside a blocking read: closing the container under it is unsafe; it goes with the process.
            log.warning("%s: the decoder did not stop in time", self.source.source_id)
            return
        self.source.close()
