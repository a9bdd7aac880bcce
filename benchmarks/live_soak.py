"""Soak `facetrack watch` on a real RTSP stream: latency, fps, drops, reconnect time and memory over minutes.

Starts the loopback RTSP server of the tests (GStreamer's gst-rtsp-server, see tests/servers) on the test clip
looped, runs `facetrack watch` on it for `--seconds`, restarts the server once midway (`--outage` seconds
down), and summarises the stats reports the run wrote:

    python benchmarks/live_soak.py --seconds 90 --detector ../shared/models/scrfd_500m_bnkps.onnx \\
        [--gallery ../shared/media/gallery --recognizer ../shared/models/mobilefacenet_128.onnx]

Latency is end to end: from a frame leaving the decoder to its events being written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RtspServer, looped_clip  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the server is down midway (0: never)")
    parser.add_argument("--clip", type=Path, default=ROOT.parent / "shared/media/video/short_hamilton_clip.mp4")
    parser.add_argument("--detector", type=Path, required=True)
    parser.add_argument("--recognizer", type=Path)
    parser.add_argument("--gallery", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        feed = looped_clip(args.clip, tmp / "feed.mp4", repeats=max(2, int(args.seconds / 9) + 2))
        config = tmp / "live.yaml"
        config.write_text("live:\n  stats_interval: 5\n")
        stats, events = tmp / "stats.jsonl", tmp / "events.jsonl"
        command = [sys.executable, "-m", "facetrack", "watch", "", "--events", str(events), "--stats", str(stats),
                   "--duration", str(args.seconds), "-c", str(config), "--detector", str(args.detector)]
        if args.recognizer:
            command += ["--recognizer", str(args.recognizer)]
        if args.gallery:
            command += ["--gallery", str(args.gallery)]
        server = RtspServer(feed).start()
        command[4] = server.url()
        try:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       env={**os.environ, "COLUMNS": "160"})
            if args.outage > 0:
                time.sleep(args.seconds / 2)
                server.stop()
                time.sleep(args.outage)
                server.start()
            _, stderr = process.communicate(timeout=args.seconds + 120)
        finally:
            server.stop()
        if process.returncode != 0:
            print(stderr, file=sys.stderr)
            return process.returncode
        reports = [json.loads(line) for line in stats.read_text().splitlines()]
        frames = sum(1 for line in events.read_text().splitlines() if '"type":"frame"' in line)
    final = reports[-1]
    camera = final["cameras"][0]
    online = [r["cameras"][0]["fps"] for r in reports[1:-1] if r["cameras"][0]["state"] == "online"]
    summary = {
        "command": " ".join(command),
        "seconds": final["elapsed"],
        "frames processed": camera["frames"],
        "frame events": frames,
        "fps while online (median of 5 s reports)": sorted(online)[len(online) // 2] if online else None,
        "dropped (newest-frame policy)": camera["dropped"],
        "latency ms p50 / p95 / max (whole run)": camera["latency_ms"],
        "reconnects": camera["reconnects"],
        "reconnect seconds (outage included)": camera["last_reconnect_s"],
        "rss MiB first report / end": (reports[0]["rss_mb"], final["rss_mb"]),
        "stages": final["stages"],
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
