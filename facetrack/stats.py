"""Live statistics: per-stage time, queue depths, drops, reconnects, end-to-end latency, memory.

Each counter is written by one thread (the stage that owns it) and read by the reporter, so no lock is taken on
the hot path. Windows are bounded: a run of days keeps the same memory as a run of minutes.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table


class StageTimes:
    """Per stage: calls, seconds in all, and a window of recent durations (for means and percentiles).

    `stages` fixes the order they are reported in; others join as they are first timed. A stage is timed by one
    thread, so no lock is taken.
    """

    def __init__(self, stages: tuple[str, ...] = ()) -> None:
        self.calls: dict[str, int] = dict.fromkeys(stages, 0)
        self.seconds: dict[str, float] = dict.fromkeys(stages, 0.0)
        self.recent: dict[str, deque[float]] = {name: deque(maxlen=300) for name in stages}

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self.calls:
            self.calls[stage], self.seconds[stage], self.recent[stage] = 0, 0.0, deque(maxlen=300)
        self.calls[stage] += 1
        self.seconds[stage] += seconds
        self.recent[stage].append(seconds)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started)

    def spent(self) -> dict[str, float]:
        """Seconds per stage, of the stages timed at least once."""
        return {name: seconds for name, seconds in self.seconds.items() if self.calls[name]}

    def summary(self) -> dict[str, tuple[int, float, float]]:
        """Stage → (calls, mean ms, p95 ms) over recent calls, of the stages timed at least once."""
        found = {}
        for name, calls in list(self.calls.items()):
            values = np.array(list(self.recent[name]))
            if calls:
                found[name] = (calls, float(values.mean()) * 1000, float(np.percentile(values, 95)) * 1000)
        return found


class CameraCounters:
    """What the runner counts for one camera."""

    def __init__(self) -> None:
        self.frames = 0  # frames through detection and tracking
        self.faces = 0
        self.render_dropped = 0  # annotated frames the recorder/window skipped to keep up
        self.arrivals: deque[float] = deque(maxlen=120)  # when recent frames were processed, for the fps
        self.latency: deque[tuple[float, float]] = deque(maxlen=3000)  # (when, frame arrival → event written)

    def fps(self, now: float) -> float:
        # list() copies in one step under the GIL: another thread appends to these deques meanwhile.
        recent = [t for t in list(self.arrivals) if now - t < 5.0]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])


@dataclass
class CameraReport:
    name: str
    source: str  # facetrack.urls.label: no credentials, no query string
    live: bool
    state: str  # online, reconnecting, ended
    frames: int
    fps: float
    faces: int
    tracks: int
    dropped: int  # live frames skipped for a newer one (decoder → detection)
    render_dropped: int
    reconnects: int
    last_reconnect_s: float | None
    latency_ms: tuple[float, float, float] | None  # p50, p95, max over the last interval


@dataclass
class StatsReport:
    elapsed: float
    cameras: list[CameraReport]
    stages: dict[str, tuple[int, float, float]]  # name → (calls, mean ms, p95 ms) over recent calls
    queues: dict[str, tuple[int, int]]  # name → (depth, capacity)
    sinks: dict[str, str] = field(default_factory=dict)
    rss_mb: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "elapsed": round(self.elapsed, 1),
            "rss_mb": None if self.rss_mb is None else round(self.rss_mb, 1),
            "cameras": [{**vars(c), "fps": round(c.fps, 2)} for c in self.cameras],
            "stages": {k: {"calls": v[0], "mean_ms": round(v[1], 2), "p95_ms": round(v[2], 2)}
                       for k, v in self.stages.items()},
            "queues": {k: {"depth": v[0], "capacity": v[1]} for k, v in self.queues.items()},
            "sinks": self.sinks,
        }


@dataclass
class RunSummary:
    """What one run did: `annotate` and `watch` (the runner) and each run of `bench` report it.

    `frames` went through detection and tracking; `stages` is seconds per stage. A watched run adds why it
    stopped, what failed on the way (cameras, outputs) and its stats report; a file cut short by a decoding
    error says it in `decode_error`.
    """

    frames: int
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    faces: int = 0
    tracks: int = 0
    embeddings: int = 0
    full_detections: int = 0  # full-frame detector passes (the rest of the frames followed faces on crops)
    name: str = ""
    stop_reason: str = "end"  # "end" (every source finished), "duration", "SIGINT", "SIGTERM", "window", "stop", …
    errors: list[str] = field(default_factory=list)  # cameras that failed, outputs that failed
    decode_error: str | None = None
    recordings: list[Path] = field(default_factory=list)
    report: StatsReport | None = None
    peak_rss_mb: float | None = None
    fps_all: list[float] = field(default_factory=list)  # bench: every repeat's fps; this result is the fastest

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def embeddings_per_frame(self) -> float:
        return self.embeddings / self.frames if self.frames else 0.0

    @property
    def full_detections_per_frame(self) -> float:
        return self.full_detections / self.frames if self.frames else 0.0


def rss_mb() -> float | None:
    """This process's resident memory in MiB (current on Linux, peak elsewhere); None where unknown."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    except (ImportError, OSError):
        return None


def latency_summary(samples: deque[tuple[float, float]], since: float) -> tuple[float, float, float] | None:
    values = np.array([v for t, v in list(samples) if t >= since])
    if not len(values):
        return None
    p50, p95 = np.percentile(values, [50, 95])
    return float(p50) * 1000, float(p95) * 1000, float(values.max()) * 1000


def render_report(report: StatsReport, title: str = "facetrack watch") -> Table:
    """A compact rich table: one row per camera, then stages, queues and sinks as caption lines."""
    table = Table(title=f"{title} — {report.elapsed:.0f} s", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("camera", "state", "frames", "fps", "faces", "tracks", "dropped", "reconnects", "latency ms"):
        table.add_column(column, justify="left" if column in ("camera", "state") else "right")
    for cam in report.cameras:
        latency = "–" if cam.latency_ms is None else f"{cam.latency_ms[0]:.0f} / {cam.latency_ms[1]:.0f} p95"
        reconnects = str(cam.reconnects) + (f" (last {cam.last_reconnect_s:.1f} s)" if cam.last_reconnect_s else "")
        dropped = f"{cam.dropped}" + (f" +{cam.render_dropped} drawn" if cam.render_dropped else "")
        table.add_row(cam.name, cam.state, str(cam.frames), f"{cam.fps:.1f}", str(cam.faces), str(cam.tracks),
                      dropped, reconnects, latency)
    stages = ", ".join(f"{name} {mean:.1f} ms (p95 {p95:.1f})" for name, (_, mean, p95) in report.stages.items())
    queues = ", ".join(f"{name} {depth}/{cap}" for name, (depth, cap) in report.queues.items())
    lines = [f"stages: {stages}", f"queues: {queues}"]
    if report.sinks:
        lines.append("sinks: " + "; ".join(f"{name} {text}" for name, text in report.sinks.items()))
    if report.rss_mb is not None:
        lines.append(f"memory: {report.rss_mb:.0f} MiB")
    table.caption = "\n".join(lines)
    table.caption_justify = "left"
    return table
