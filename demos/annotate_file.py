"""The pipeline frame by frame on a video file: print who appears when, and write an annotated copy.

    python demos/annotate_file.py ../shared/media/video/short_hamilton_clip.mp4 -o annotated.mp4 \
        --gallery ../shared/media/gallery \
        --detector ../shared/models/scrfd_2.5g_bnkps.onnx --recognizer ../shared/models/mobilefacenet_128.onnx

The same as `facetrack annotate`, written out on the Python API: `FileSource` gives frames, `Pipeline.process`
returns each frame's tracked faces (`sv.Detections`) and events, `FrameAnnotator` and `VideoWriter` draw and
encode.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facetrack import FacetrackError, FileSource, Pipeline, load_config
from facetrack.sinks import FrameAnnotator, VideoWriter


def show(events: list[dict]) -> None:
    for event in events:
        if event["type"] == "identity" and event["identity"]:
            print(f"{event['pts']:6.2f} s  track {event['track_id']} is {event['identity']}")
        elif event["type"] in ("track_start", "track_end"):
            print(f"{event['pts']:6.2f} s  track {event['track_id']} {event['type'].split('_')[1]}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("annotated.mp4"))
    parser.add_argument("--gallery", type=Path, help="photo folder (gallery/<person>/*.jpg) or a .db")
    parser.add_argument("--detector", type=Path)
    parser.add_argument("--recognizer", type=Path)
    args = parser.parse_args()

    try:
        config = load_config(overrides={"models": {"detector": args.detector, "recognizer": args.recognizer},
                                        "identity": {"gallery": args.gallery}})
        source = FileSource(args.video)
        pipeline = Pipeline(config, frame_rate=float(source.info.fps))
        annotator = FrameAnnotator(config.annotation)
        writer = VideoWriter(args.output, source.info, audio_from=args.video)
    except FacetrackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = (0, 0.0)
    try:
        for frame in source:
            result = pipeline.process(frame)
            show(result.events)
            writer.write(annotator.annotate(frame.image, result.detections), frame.pts)
            last = (frame.index, frame.pts)
        show(pipeline.finish(*last))  # the tracks still in view when the video ends
    finally:
        writer.close()
        source.close()
    print(f"{pipeline.frames} frames, {len(pipeline.tracks_seen)} tracks → {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
