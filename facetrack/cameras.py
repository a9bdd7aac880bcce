"""The cameras of a run: each one's source, reader, pipeline, counters and state, and how they are opened.

A camera is a file, a webcam or a stream (`live.CameraSpec`); the runner keeps one `Camera` per source, with
its own `Pipeline` (tracker and identity state) over the models every camera shares.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from facetrack.config import FacetrackConfig
from facetrack.live import CameraSpec
from facetrack.pipeline import Pipeline
from facetrack.sources import Source, StreamSource, ThreadedReader, is_live, open_source
from facetrack.stats import CameraCounters, CameraReport, latency_summary


def _settled() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class Camera:
    """One camera's source, reader, per-camera pipeline state and counters."""

    name: str
    source: Source
    pipeline: Pipeline
    reader: ThreadedReader | None = None
    counters: CameraCounters = field(default_factory=CameraCounters)
    last: tuple[int, float] = (0, 0.0)  # index and pts of the latest frame processed
    ended: bool = False
    connected: bool = True  # as last seen by the detection thread
    failure: str | None = None  # why this camera stopped on its own (the others go on)
    # Set while no frame of this camera waits for its identities: a file's next frame is tracked only then.
    settled: threading.Event = field(default_factory=_settled)

    @property
    def live(self) -> bool:
        return is_live(self.source)

    @property
    def state(self) -> str:
        if self.failure is not None:
            return "failed"
        if self.ended:
            return "ended"
        connected = self.source.connected
        return "online" if connected else "reconnecting"

    @property
    def dropped(self) -> int:
        """Live frames skipped for a newer one (decoder → detection)."""
        return self.reader.dropped if self.reader is not None else 0

    def report(self, now: float, started: float, since: float) -> CameraReport:
        """This camera's stats now; latency percentiles over the frames since `since` (monotonic time)."""
        counters, source = self.counters, self.source
        return CameraReport(
            name=self.name,
            source=source.spec.label if isinstance(source, StreamSource) else str(source.path),
            live=self.live,
            state=self.state,
            frames=counters.frames,
            fps=counters.fps(now) if not self.ended else counters.frames / max(now - started, 1e-9),
            faces=counters.faces,
            tracks=len(self.pipeline.tracks_seen),
            dropped=self.dropped,
            render_dropped=counters.render_dropped,
            reconnects=source.reconnects,
            last_reconnect_s=source.last_reconnect_seconds,
            latency_ms=latency_summary(counters.latency, since),
        )

    def overlay(self, now: float) -> list[str]:
        """The lines drawn over the camera's window: rate, latency, drops, reconnects, state."""
        counters = self.counters
        latency = counters.latency[-1][1] * 1000 if counters.latency else 0.0
        reconnects = self.source.reconnects
        return [f"{self.name}  {counters.fps(now):.1f} fps  latency {latency:.0f} ms",
                f"dropped {self.dropped + counters.render_dropped}  reconnects {reconnects}"
                + ("" if self.state == "online" else f"  [{self.state}]")]

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        else:
            self.source.close()


def open_sources(cameras: list[CameraSpec], config: FacetrackConfig) -> list[Source]:
    """Every camera's source, opened side by side (a few cameras that each take seconds to probe do not add up);
    if one fails, the others are closed and its error raised."""
    def open_one(spec: CameraSpec) -> Source:
        return open_source(spec.url, spec.name, config.live, config.decode.hwaccel)

    with ThreadPoolExecutor(max_workers=min(8, len(cameras))) as pool:
        futures = [pool.submit(open_one, spec) for spec in cameras]
    opened: list[Source] = []
    failure: BaseException | None = None
    for future in futures:
        try:
            opened.append(future.result())
        except BaseException as exc:
            failure = failure or exc
    if failure is not None:
        for source in opened:
            source.close()
        raise failure
    return opened
