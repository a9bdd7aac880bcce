"""The long live run, short: `benchmarks/live_soak.py --soak` for two minutes, identity on, three server restarts.

The office that is empty for long stretches, then the test clip, as one looping RTSP stream: no crash, every
restart reconnected, one frame event per processed frame, memory flat.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_two_minute_soak_with_identity(assets: Path, fast_detector_path: Path, recognizer_path: Path,
                                       gallery_dir: Path, tmp_path: Path) -> None:
    from loopback import rtsp_server_available, unavailable

    if not rtsp_server_available():
        unavailable("no RTSP server: gst-rtsp-server is not installed")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/live_soak.py"), "--soak", "--seconds", "120", "--restarts", "3",
         "--clip", str(assets / "media/video/short_hamilton_clip.mp4"),
         "--office", str(assets / "media/real/empty_room_people_walk_in.mp4"),
         "--detector", str(fast_detector_path), "--recognizer", str(recognizer_path), "--gallery", str(gallery_dir)],
        capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["crashes (tracebacks or a failed exit)"] == 0
    assert summary["reconnects / restarts"] == "3 / 3"
    assert summary["frames processed"] == summary["frame events"] > 300
    first, last, growth = summary["rss MiB first report / end / growth"]
    assert growth < 50
