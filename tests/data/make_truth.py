"""Regenerate short_hamilton_clip.truth.jsonl: detector boxes + a hand-written labelling table.

The boxes come from SCRFD-2.5G (det_thresh 0.3) on every decoded frame; the labels come from LABELS below,
which was written by looking at every detection (crops / contact sheets, compared with the gallery photos).
A detection that matches no rule is not a face (hand, hair, ear, occluded head) and is left out.

    python tests/data/make_truth.py --video .../short_hamilton_clip.mp4 --detector .../scrfd_2.5g_bnkps.onnx
    python tests/data/make_truth.py ... --check      # compare with the committed file instead of writing
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ASSETS = Path(os.environ.get("FACETRACK_TEST_ASSETS", "../shared"))
MEDIA = ASSETS / "media"
MODELS = ASSETS / "models"
OUT = Path(__file__).with_name("short_hamilton_clip.truth.jsonl")
DET_THRESH = 0.3

# Shots (first frame of each): 0 wide stage shot, 20 profile close-up of Alex Lacamoire at the piano with the
# out-of-focus audience behind him, 82 Lin-Manuel close-up, 211 audience shot (Obama + family + guests).
# Rule: (first, last, person, test on box centre cx, cy and size w, h). First matching rule wins.


def centre_in(x0, x1, y0, y1, max_w=1e9):
    return lambda cx, cy, w, h: x0 <= cx <= x1 and y0 <= cy <= y1 and w < max_w


LABELS = [
    # 0-19 wide shot: Alex at the piano (small face, left), Lin-Manuel singing (right). A raised hand
    # (frames 17-19, x~419) is not a face.
    (0, 19, "alex_lacamoire", centre_in(0, 150, 0, 360)),
    (0, 19, "lin_manuel_miranda", centre_in(450, 640, 0, 360)),
    # 20-81 Alex in profile close-up (leaves the frame at 52-66, comes back at 67); behind him the blurred
    # audience. Not faces here: curls of his hair, his hand, a grey blur, dark silhouettes in the back row.
    (20, 81, "alex_lacamoire", lambda cx, cy, w, h: w >= 100 and h >= 180),
    (20, 81, "stranger-1", centre_in(140, 240, 85, 130, max_w=100)),  # hands at chin
    (20, 81, "stranger-2", centre_in(285, 380, 104, 145, max_w=100)),
    (20, 81, "stranger-3", centre_in(290, 360, 175, 230, max_w=100)),  # front row, yellow
    (20, 81, "stranger-4", centre_in(325, 350, 55, 95, max_w=100)),  # back row
    (50, 72, "stranger-5", centre_in(455, 505, 160, 210, max_w=100)),  # woman in red
    (52, 66, "stranger-6", centre_in(20, 80, 145, 170, max_w=100)),  # far left
    (69, 77, "stranger-7", centre_in(150, 185, 55, 75, max_w=100)),  # back row
    # 82-210 Lin-Manuel close-up; the small boxes in this shot are his hands.
    (82, 210, "lin_manuel_miranda", lambda cx, cy, w, h: h >= 100),
    # 211-274 audience shot, left to right. Not faces: the head behind Michelle Obama's hair (only an ear
    # shows, x~530) and a dark patch at the top edge (x~195, frames 243-249).
    (211, 274, "stranger-8", centre_in(35, 65, 40, 70)),  # half-hidden behind stranger-9
    (211, 274, "stranger-9", centre_in(60, 90, 85, 115)),  # laughing woman
    (211, 274, "stranger-10", centre_in(185, 215, 115, 145)),  # Marian Robinson
    (211, 274, "obama", centre_in(340, 365, 75, 100)),
    (211, 274, "stranger-11", centre_in(405, 435, 120, 150)),  # Michelle Obama
    (211, 274, "stranger-12", centre_in(600, 625, 75, 100)),
]


def label(frame: int, box) -> str | None:
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    for first, last, person, test in LABELS:
        if first <= frame <= last and test(cx, cy, w, h):
            return person
    return None


def build(video: Path, detector: Path) -> list[str]:
    import av
    import insightface

    model = insightface.model_zoo.get_model(str(detector), providers=["CPUExecutionProvider"])
    model.prepare(-1, input_size=(640, 640), det_thresh=DET_THRESH)
    lines = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            det, _ = model.detect(frame.to_ndarray(format="bgr24"), input_size=(640, 640))
            faces = []
            for row in det:
                box = [round(float(v), 1) for v in row[:4]]
                person = label(i, box)
                if person is not None:
                    faces.append({"box": box, "person": person})
            faces.sort(key=lambda f: f["box"][0])
            lines.append(json.dumps({"frame": i, "faces": faces}))
    return lines


def write_or_check(lines: list[str], out: Path, check: bool) -> None:
    """Write the truth lines to `out`, or with `check` say whether `out` holds exactly them."""
    if check:
        old = out.read_text().splitlines()
        bad = [i for i, (a, b) in enumerate(zip(old, lines, strict=False)) if a != b]
        if len(old) != len(lines) or bad:
            raise SystemExit(f"differs: {len(old)} vs {len(lines)} lines, frames {bad[:10]}")
        print(f"{out.name}: identical ({len(lines)} frames)")
    else:
        out.write_text("\n".join(lines) + "\n")
        print(f"wrote {out} ({len(lines)} frames)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=MEDIA / "video" / "short_hamilton_clip.mp4")
    ap.add_argument("--detector", type=Path, default=MODELS / "scrfd_2.5g_bnkps.onnx")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = ap.parse_args()
    write_or_check(build(args.video, args.detector), args.out, args.check)


if __name__ == "__main__":
    main()
