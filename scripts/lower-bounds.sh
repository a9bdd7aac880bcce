#!/usr/bin/env bash
# Installs every requirement at the lowest version pyproject.toml allows (uv's lowest-direct resolution) into
# a throw-away venv and runs the fast tests there: the declared lower bounds are true, not hopeful.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
venv="${LOWER_BOUNDS_VENV:-.venv-lowest}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip uv
"$venv/bin/python" -m uv pip install --quiet --python "$venv/bin/python" --resolution lowest-direct -e ".[dev]"
"$venv/bin/python" -m pip list --format=freeze | grep -iE '^(numpy|scipy|opencv-python|onnxruntime|onnx|insightface|supervision|trackers|av|pydantic|pyyaml|typer|rich|paho-mqtt|matplotlib)=='
export FACETRACK_TEST_ASSETS="${FACETRACK_TEST_ASSETS:-$(cd .. && pwd)/shared}"
"$venv/bin/python" -m pytest -q tests/test_properties.py tests/test_config.py tests/test_detect_track.py \
  tests/test_identity.py tests/test_ordinary_footage.py -k "not rtsp and not rotated and not upright" "$@"
# (The rotated clip is made with PyAV's set_display_rotation, newer than the lowest PyAV; reading the rotation,
# which facetrack does, works there.)
