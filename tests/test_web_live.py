"""`facetrack watch --serve`: while a run goes, the review page serves each camera's newest annotated picture."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")

DEADLINE = 90.0  # s for the whole run on a busy machine


def _get(url: str) -> tuple[int, bytes, Message]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def test_watch_serve_shows_a_live_tile_per_camera(tmp_path: Path, assets: Path, fast_detector_path: Path,
                                                   recognizer_path: Path) -> None:
    clip = assets / "media" / "real" / "asl" / "book.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "facetrack", "watch", f"door={clip}", "--store", str(tmp_path / "store.db"),
         "--detector", str(fast_detector_path), "--recognizer", str(recognizer_path), "--serve",
         "--serve-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + DEADLINE
    output: list[str] = []
    try:
        assert proc.stdout is not None
        url = None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while url is None and time.monotonic() < deadline and proc.poll() is None:
                if sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    line = proc.stdout.readline()
                    output.append(line)
                    found = re.search(r"(http://127\.0\.0\.1:\d+/)live", line)
                    url = found.group(1) if found else None
        assert url is not None, "".join(output)
        tile = None
        while tile is None:  # the first picture comes once the models have loaded and a frame is drawn
            assert time.monotonic() < deadline and proc.poll() is None, "no live tile during the run"
            status, body, _ = _get(url + "api/live")
            if status == 200 and json.loads(body)["cameras"][0]["tile"]:
                tile = json.loads(body)["cameras"][0]
            else:
                time.sleep(0.1)
        assert tile["camera"] == "door" and tile["age_s"] < 5
        status, jpeg, headers = _get(url + tile["tile"].lstrip("/"))
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["Cache-Control"] == "no-store"
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (480, 640, 3)  # the camera's picture, annotated
        status, page, _ = _get(url + "live")
        assert status == 200 and b'data-camera="door"' in page
        assert _get(url + "live/elsewhere.jpg")[0] == 404
        rest = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
        assert proc.returncode == 0, "".join(output) + rest
        with pytest.raises(OSError):  # the page stopped with the run
            urllib.request.urlopen(url + "api/live", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
