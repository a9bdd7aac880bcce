"""Monitor RTSP cameras unattended: one line per person identified, unknown or leaving, stats every minute,
optional MQTT alerts. Reconnects on its own when a camera drops; Ctrl-C (or SIGTERM) stops cleanly.

    python demos/rtsp_monitor.py door=rtsp://user:pass@192.0.2.10/stream1 yard=rtsp://192.0.2.11/live \
        --gallery photos/ --mqtt mqtt://127.0.0.1:1883 [--duration 3600]

Camera names (NAME=URL) appear in every line and in the MQTT topics (facetrack/<camera>/identity, …/unknown,
…/left, …/status). Passwords in URLs are never printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from facetrack import FacetrackError, load_config
from facetrack.live import LiveRunner, name_sources
from facetrack.sinks.mqtt import MqttPublisher
from facetrack.stats import StatsReport


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cameras", nargs="+", help="NAME=rtsp://… (or just the URL)")
    parser.add_argument("--gallery", type=Path)
    parser.add_argument("--detector", type=Path)
    parser.add_argument("--recognizer", type=Path)
    parser.add_argument("--mqtt", help="mqtt://host:1883")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")  # drops and reconnects

    config = load_config(overrides={
        "models": {"detector": args.detector, "recognizer": args.recognizer},
        "identity": {"gallery": args.gallery, "enabled": True},
        "live": {"stats_interval": 60},
    })

    def on_event(camera: str, event: dict) -> None:
        stamp = time.strftime("%H:%M:%S")
        if event["type"] == "identity" and event["state"] in ("known", "unknown"):
            print(f"{stamp} {camera}: {event['identity']} (track {event['track_id']})", flush=True)
        elif event["type"] == "track_end":
            print(f"{stamp} {camera}: track {event['track_id']} left", flush=True)

    def on_stats(report: StatsReport) -> None:
        for cam in report.cameras:
            latency = f"{cam.latency_ms[0]:.0f} ms" if cam.latency_ms else "–"
            print(f"{time.strftime('%H:%M:%S')} {cam.name}: {cam.state}, {cam.fps:.1f} fps, latency {latency}, "
                  f"{cam.dropped} dropped, {cam.reconnects} reconnects", flush=True)

    try:
        publishers = [MqttPublisher(args.mqtt, config.mqtt)] if args.mqtt else []
        runner = LiveRunner(config, name_sources(args.cameras), publishers=publishers, on_event=on_event)
        summary = runner.run(duration=args.duration, on_stats=on_stats)
    except FacetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    on_stats(summary.report)
    print(f"stopped ({summary.stop_reason}) after {summary.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
