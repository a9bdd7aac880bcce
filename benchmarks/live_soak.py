"""Soak `facetrack watch` on a real RTSP stream: latency, fps, drops, reconnect time and memory over minutes.

Starts the loopback RTSP server (GStreamer's gst-rtsp-server, see loopback/) on the test clip
looped, runs `facetrack watch` on it for `--seconds`, restarts the server `--restarts` times spread over the run
(`--outage` seconds down each time), and summarises the stats reports the run wrote:

    python benchmarks/live_soak.py --seconds 90 --detector ../shared/models/scrfd_500m_bnkps.onnx \\
        [--gallery ../shared/media/gallery --recognizer ../shared/models/mobilefacenet_128.onnx]

`--soak` is the long run: 30 minutes on a stream of the empty office followed by the test clip (nobody in view,
then faces), the server restarted 10 times; it reports crashes (tracebacks or a failed exit), reconnects, frames,
drops and memory at start and end.

`--size` and `--fps` make the stream of another size and rate from the clips given with `--clip` (one or more,
played one after the other, each scaled to the size), e.g. a 1280×720, 30 fps camera:

    python benchmarks/live_soak.py --seconds 300 --restarts 0 --size 1280x720 --fps 30 \
        --clip ../shared/media/video/short_hamilton_clip.mp4 --clip ../shared/media/real/crowd_1080p.mp4 \
        --detector ../shared/models/scrfd_500m_bnkps.onnx --recognizer twin.onnx --gallery ../shared/media/gallery

Time to name is per track that lasted at least 0.5 s: from its first frame to its first identity (a gallery
name or an `unknown-N`), in stream time.

Latency is end to end: from a frame leaving the decoder to its events being written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loopback import RtspServer, looped_clip  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the server is down at each restart")
    parser.add_argument("--restarts", type=int, default=1, help="server restarts spread over the run")
    parser.add_argument("--soak", action="store_true",
                        help="30 minutes, empty office + test clip, 10 restarts (unless given otherwise)")
    media = Path(os.environ.get("FACETRACK_TEST_ASSETS", ROOT.parent / "shared")) / "media"
    parser.add_argument("--clip", type=Path, action="append",
                        help="footage of the stream (repeatable; default: the test clip)")
    parser.add_argument("--size", help="the stream's size, WxH (default: the clip's own)")
    parser.add_argument("--fps", type=int, help="the stream's frame rate (default: the clip's own)")
    parser.add_argument("--office", type=Path, default=media / "real/empty_room_people_walk_in.mp4",
                        help="the footage played before the clip in --soak mode")
    parser.add_argument("--keep", type=Path, help="copy the run's stats and events into this folder")
    parser.add_argument("--detector", type=Path, required=True)
    parser.add_argument("--recognizer", type=Path)
    parser.add_argument("--gallery", type=Path)
    args = parser.parse_args()
    args.clip = args.clip or [media / "video/short_hamilton_clip.mp4"]
    if args.soak:
        given = set(sys.argv)
        args.seconds = args.seconds if "--seconds" in given else 1800.0
        args.restarts = args.restarts if "--restarts" in given else 10

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        clip = args.clip[0]
        if args.soak:
            clip = office_then_clip(args.office, args.clip[0], tmp / "office_then_clip.mp4")
        elif args.size or args.fps or len(args.clip) > 1:
            width, height = (int(v) for v in (args.size or "1280x720").lower().split("x"))
            clip = encode_feed([(c, 1) for c in args.clip], tmp / "feed_source.mp4", (width, height), args.fps or 30)
        feed = looped_clip(clip, tmp / "feed.mp4", repeats=max(2, int(args.seconds / seconds_of(clip)) + 2))
        config = tmp / "live.yaml"
        # A store of its own: the user's default store may hold another recognizer's embeddings.
        config.write_text(f"live:\n  stats_interval: 5\nstore:\n  path: {tmp / 'store.db'}\n")
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
            # The console goes to a file: a pipe nobody reads while the server restarts fills up after a few
            # minutes of stats tables, and the watch would then wait on its own log.
            console = open(tmp / "console.txt", "w+", encoding="utf-8")  # noqa: SIM115 - closed below
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=console, text=True,
                                       env={**os.environ, "COLUMNS": "160"})
            started = time.monotonic()
            for restart in range(1, args.restarts + 1 if args.outage > 0 else 1):
                time.sleep(max(0.0, started + restart * args.seconds / (args.restarts + 1) - time.monotonic()))
                server.stop()
                time.sleep(args.outage)
                server.start()
            process.wait(timeout=args.seconds + 120)
        finally:
            server.stop()
        console.seek(0)
        stderr = console.read()
        console.close()
        crashes = int(process.returncode != 0) + stderr.count("Traceback")
        if process.returncode != 0:
            print(stderr, file=sys.stderr)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for kept in (stats, events):
                shutil.copyfile(kept, args.keep / kept.name)
            (args.keep / "stderr.txt").write_text(stderr)
        reports = [json.loads(line) for line in stats.read_text().splitlines()]
        frames = sum(1 for line in events.read_text().splitlines() if '"type":"frame"' in line)
        naming = time_to_name(events)
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
        "exit status": process.returncode,
        "crashes (tracebacks or a failed exit)": crashes,
        "reconnects / restarts": f"{camera['reconnects']} / {args.restarts if args.outage > 0 else 0}",
        "reconnect seconds (outage included)": camera["last_reconnect_s"],
        "rss MiB first report / end / growth": (reports[0]["rss_mb"], final["rss_mb"],
                                                round(final["rss_mb"] - reports[0]["rss_mb"], 1)),
        "time to name s p50 / p95 / max (tracks of 0.5 s or more)": naming["seconds"],
        "tracks named / tracks of 0.5 s or more": naming["named"],
        "stages": final["stages"],
    }
    print(json.dumps(summary, indent=2))
    return process.returncode


def seconds_of(video: Path) -> float:
    import av

    with av.open(str(video)) as container:
        return container.duration / 1_000_000 if container.duration else 9.0


def time_to_name(events: Path, least: float = 0.5) -> dict:
    """Per track that lasted `least` seconds or more: stream seconds from its first frame to its first identity."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    named: dict[int, float] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        kind, track = event.get("type"), event.get("track_id")
        if kind == "track_start":
            starts.setdefault(track, event["pts"])
        elif kind == "track_end":
            ends[track] = event["pts"]
        elif kind == "identity" and track not in named and event.get("identity"):
            named[track] = event["pts"]
    lasting = [t for t, start in starts.items() if ends.get(t, float("inf")) - start >= least]
    delays = sorted(named[t] - starts[t] for t in lasting if t in named)

    def at(q: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(q * len(delays)))], 3) if delays else None

    return {"seconds": (at(0.5), at(0.95), round(delays[-1], 3) if delays else None),
            "named": f"{len(delays)} / {len(lasting)}"}


def office_then_clip(office: Path, clip: Path, target: Path, size: tuple[int, int] = (640, 360),
                     fps: int = 15) -> Path:
    """The empty office (nobody in view for long stretches), then the test clip (faces), as one H.264 stream
    of one size and rate, so the looping server can play them back to back."""
    return encode_feed([(office, 1), (clip, 2)], target, size, fps)  # 10 fps office as is; the 30 fps clip halved


def encode_feed(sources: list[tuple[Path, int]], target: Path, size: tuple[int, int], fps: int) -> Path:
    """The `sources` (path, keep every n-th frame) one after the other, scaled to `size`, as one H.264 stream of
    `fps` frames a second (the frames keep their order, not their timing), so the looping server can play them
    back to back."""
    import av
    import cv2

    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "26"})
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        index = 0
        for source, keep_every in sources:
            with av.open(str(source)) as container:
                for n, frame in enumerate(container.decode(video=0)):
                    if n % keep_every:
                        continue
                    image = cv2.resize(frame.to_ndarray(format="bgr24"), size, interpolation=cv2.INTER_AREA)
                    picture = av.VideoFrame.from_ndarray(image, format="bgr24")
                    picture.pts = index
                    index += 1
                    for packet in stream.encode(picture):
                        out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


if __name__ == "__main__":
    sys.exit(main())
