#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine, then the suite itself.
# The real models and media are read from $FACETRACK_TEST_ASSETS (default: ../shared); there they are
# required, so a test that would skip for want of them fails instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export FACETRACK_TEST_ASSETS="${FACETRACK_TEST_ASSETS:-$(cd .. && pwd)/shared}"
python -m pytest -q "$@"
