"""Live statistics: per-stage time, queue depths, drops, reconnects, end-to-end latency, memory.

Each counter is written by one thread (the stage that owns it) and read by the reporter, so no lock is taken on
the hot path. Windows are bounded: a run of days keeps the same memory as a run of minutes.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table


class StageTimer:
    """Calls and seconds of one stage, plus a window of recent durations."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.recent: deque[float] = deque(maxlen=300)

    def add(self, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds
        self.recent.append(seconds)


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


def stage_summary(timer: StageTimer) -> tuple[int, float, float]:
    values = np.array(list(timer.recent))
    if not len(values):
        return timer.calls, 0.0, 0.0
    return timer.calls, float(values.mean()) * 1000, float(np.percentile(values, 95)) * 1000


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
