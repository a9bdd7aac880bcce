"""Who is in front of the webcam: a live window with boxes, names and an fps / latency / drops overlay.

    python demos/webcam.py                                   # webcam 0, every face gets unknown-N
    python demos/webcam.py --gallery photos/ --camera /dev/video2
    python demos/webcam.py --camera rtsp://192.0.2.10/stream # any source watch takes works

Press q (or Esc) in the window to quit. Identity decisions are printed as they happen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facetrack import FacetrackError, load_config
from facetrack.live import CameraSpec, LiveRunner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", default="0", help="webcam index or device, or any stream URL (default 0)")
    parser.add_argument("--gallery", type=Path, help="photo folder (gallery/<person>/*.jpg) or a .db")
    parser.add_argument("--detector", type=Path, help="SCRFD .onnx (default: the model pack)")
    parser.add_argument("--recognizer", type=Path, help="ArcFace-family .onnx (default: the model pack)")
    parser.add_argument("--config", type=Path, help="YAML config")
    args = parser.parse_args()

    config = load_config(args.config, {
        "models": {"detector": args.detector, "recognizer": args.recognizer},
        "identity": {"gallery": args.gallery, "enabled": True},
    })

    def on_event(camera: str, event: dict) -> None:
        if event["type"] == "identity" and event["identity"]:
            print(f"track {event['track_id']}: {event['identity']}", flush=True)

    try:
        runner = LiveRunner(config, [CameraSpec("webcam", args.camera)], display=True, on_event=on_event)
        summary = runner.run()
    except FacetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{summary.frames} frames in {summary.seconds:.0f} s ({summary.stop_reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
