"""Shared fixtures: the real models and media come from $FACETRACK_TEST_ASSETS (a folder with models/ and media/).

Unset: the tests that need them are skipped, saying why. Set (as the test script does): they must be there,
and a missing one fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ASSETS_ENV = "FACETRACK_TEST_ASSETS"


@pytest.fixture(scope="session", autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """What defaults to $FACETRACK_HOME (watch's identity memory, the gallery cache) goes to a scratch folder of
    the session, never into the user's home, and no run meets the strangers of an earlier one."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACETRACK_HOME", str(tmp_path_factory.mktemp("facetrack_home")))
        yield


@pytest.fixture(scope="session")
def assets() -> Path:
    root = os.environ.get(ASSETS_ENV)
    if not root:
        pytest.skip(f"{ASSETS_ENV} is not set: real models and media are needed (a folder with models/ and media/)")
    path = Path(root).resolve()
    missing = [sub for sub in ("models", "media") if not (path / sub).is_dir()]
    if missing:
        pytest.fail(f"{ASSETS_ENV}={root} lacks {', '.join(missing)}/: the real test assets are required")
    return path


def _asset(assets: Path, relative: str) -> Path:
    path = assets / relative
    if not path.exists():
        pytest.fail(f"test asset missing: {path}")
    return path


@pytest.fixture(scope="session")
def detector_path(assets: Path) -> Path:
    return _asset(assets, "models/scrfd_2.5g_bnkps.onnx")


@pytest.fixture(scope="session")
def fast_detector_path(assets: Path) -> Path:
    return _asset(assets, "models/scrfd_500m_bnkps.onnx")


@pytest.fixture(scope="session")
def recognizer_path(assets: Path) -> Path:
    return _asset(assets, "models/mobilefacenet_128.onnx")


@pytest.fixture(scope="session")
def clip_path(assets: Path) -> Path:
    return _asset(assets, "media/video/short_hamilton_clip.mp4")


@pytest.fixture(scope="session")
def gallery_dir(assets: Path) -> Path:
    return _asset(assets, "media/gallery")


@pytest.fixture(scope="session")
def images_dir(assets: Path) -> Path:
    return _asset(assets, "media/images")


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real `facetrack` command line as a user would."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "facetrack", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def run_cli_here(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The same command line run inside this process (its entry point, output and exit status), for the many
    mistakes that fail in milliseconds where starting a new interpreter would take seconds."""
    import contextlib
    import io
    import logging

    from facetrack.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    argv, folder = sys.argv, Path.cwd()
    code: int | str | None = 0
    try:
        sys.argv = ["facetrack", *map(str, args)]
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = argv
        os.chdir(folder)
        root.handlers[:] = handlers  # the command set up its own logging: give the test runner's back
        root.setLevel(level)
    status = 0 if code is None else code if isinstance(code, int) else 1  # sys.exit("text") is a failure
    return subprocess.CompletedProcess(list(args), status, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="session")
def clip_run(tmp_path_factory: pytest.TempPathFactory, clip_path: Path, gallery_dir: Path, detector_path: Path,
             recognizer_path: Path) -> dict:
    """One full `facetrack annotate` of the test clip with identity on, shared by the tests that read it."""
    import json

    out = tmp_path_factory.mktemp("clip_run")
    video, events_path, timeline = out / "out.mp4", out / "out.jsonl", out / "timeline.png"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FACETRACK_HOME", str(out / "home"))  # the gallery cache goes here, not into the user's home
        result = run_cli("annotate", clip_path, "-o", video, "--events", events_path, "--timeline", timeline,
                         "--gallery", gallery_dir, "--detector", detector_path, "--recognizer", recognizer_path,
                         timeout=900)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    return {"video": video, "events_path": events_path, "events": events, "timeline": timeline, "out": out,
            "frames": [e for e in events if e["type"] == "frame"], "stderr": result.stderr}
