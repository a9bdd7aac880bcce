"""Regenerate crowd_1080p.truth.jsonl: detector boxes, linked into tracks, + a hand-written table of tracks.

The boxes come from SCRFD-2.5G (input 640×640, det_thresh 0.3) on every decoded frame of real/crowd_1080p.mp4;
they are linked from frame to frame by IoU (greedy, ≥ 0.3, across gaps of up to 4 frames), which numbers the
tracks in the order they start. TRACKS below says, for each track that is a face, who it is and over which
frames; it was written by looking at a contact sheet of every track (crops across its life) and at frames with the
track numbers drawn on them. A track not in the table is not a face (the backs and tops of heads, the opera
house's red crest, a hand, a bag), or a box that mixes two people in passing.

    python tests/data/make_crowd_truth.py --video .../crowd_1080p.mp4 --detector .../scrfd_2.5g_bnkps.onnx
    python tests/data/make_crowd_truth.py ... --check      # compare with the committed file instead of writing
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from make_truth import write_or_check  # the script beside this one

ASSETS = Path(os.environ.get("FACETRACK_TEST_ASSETS", "../shared"))
OUT = Path(__file__).with_name("crowd_1080p.truth.jsonl")
DET_THRESH = 0.3
LINK_IOU, LINK_GAP = 0.3, 4

# track → (person, first frame, last frame). One person can be several tracks: the linking breaks where a face
# turns, is hidden or changes size at once (the same person then keeps the same label).
TRACKS: dict[int, list[tuple[str, int, int]]] = {
    0: [("stranger-1", 0, 104)],  # red-haired young man, centre
    1: [("stranger-2", 0, 104)],  # boy in a blue hoodie
    2: [("stranger-3", 0, 104)],  # woman with a pink scarf, right, walking out of view
    21: [("stranger-3", 0, 104)],  # the same, in profile at the right edge
    3: [("stranger-4", 0, 31)],  # curly-haired woman; from 32 she has turned away (the back of her head)
    # The white-haired man; in 27 the box slides onto the man with glasses behind him (a box of both: left
    # out), who keeps the track in profile until 39, then faces the camera as track 23.
    4: [("stranger-5", 0, 26), ("stranger-6", 28, 104)],
    26: [("stranger-5", 0, 104)],  # the white-haired man, found again
    23: [("stranger-6", 0, 104)],
    5: [("stranger-7", 0, 104)],  # man in profile at the right edge, leaving
    7: [("stranger-8", 0, 94)],  # white-haired woman in red and black, left; hidden from 95
    8: [("stranger-9", 0, 104)],  # young woman with a yellow scarf, phone at her face
    43: [("stranger-9", 0, 104)],  # the same, found again
    35: [("stranger-10", 0, 104)],  # bald man in profile, right
    40: [("stranger-11", 0, 104)],  # young woman, entering at the bottom
}


def detect(video: Path, detector: Path) -> list:
    import av
    import insightface

    model = insightface.model_zoo.get_model(str(detector), providers=["CPUExecutionProvider"])
    model.prepare(-1, input_size=(640, 640), det_thresh=DET_THRESH)
    with av.open(str(video)) as container:
        return [model.detect(frame.to_ndarray(format="bgr24"), input_size=(640, 640))[0]
                for frame in container.decode(video=0)]


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def link(detections: list) -> list[list[int]]:
    """For each frame, the track number of each detection."""
    last: list[tuple[int, list[float]]] = []  # per track: last frame, last box
    numbers = []
    for index, rows in enumerate(detections):
        pairs = sorted(((iou(box, row[:4]), t, d) for t, (seen, box) in enumerate(last) if index - seen <= LINK_GAP
                        for d, row in enumerate(rows)), reverse=True)
        taken_t: set[int] = set()
        given: dict[int, int] = {}
        for overlap, t, d in pairs:
            if overlap >= LINK_IOU and t not in taken_t and d not in given:
                taken_t.add(t)
                given[d] = t
        frame = []
        for d, row in enumerate(rows):
            if d not in given:
                last.append((index, list(row[:4])))
                given[d] = len(last) - 1
            last[given[d]] = (index, list(row[:4]))
            frame.append(given[d])
        numbers.append(frame)
    return numbers


def label(track: int, frame: int) -> str | None:
    return next((person for person, first, last in TRACKS.get(track, []) if first <= frame <= last), None)


def build(video: Path, detector: Path) -> list[str]:
    return lines_for(detect(video, detector))


def lines_for(detections: list) -> list[str]:
    lines = []
    for index, (rows, tracks) in enumerate(zip(detections, link(detections), strict=True)):
        faces = []
        for row, track in zip(rows, tracks, strict=True):
            person = label(track, index)
            if person is not None:
                faces.append({"box": [round(float(v), 1) for v in row[:4]], "person": person})
        faces.sort(key=lambda f: f["box"][0])
        lines.append(json.dumps({"frame": index, "faces": faces}))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=ASSETS / "media" / "real" / "crowd_1080p.mp4")
    parser.add_argument("--detector", type=Path, default=ASSETS / "models" / "scrfd_2.5g_bnkps.onnx")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args()
    write_or_check(build(args.video, args.detector), args.out, args.check)


if __name__ == "__main__":
    main()
