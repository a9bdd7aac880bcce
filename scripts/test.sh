#!/usr/bin/env bash
# Everything the test suite needs on a fresh machine, then the suite itself.
# The real models and media are read from $FACETRACK_TEST_ASSETS (default: ../shared); there they are
# required, so a test that would skip for want of them fails instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

# Real servers for the live tests, from Debian's packages: an RTSP server (GStreamer's gst-rtsp-server, driven
# by the system Python through PyGObject), an MQTT broker (Mosquitto) and PostgreSQL 15 (the shared identity
# store). The tests start and stop them.
need=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  need+=(mosquitto)
fi
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  need+=(postgresql)
fi
if ! /usr/bin/python3 -c "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer; Gst.init(None)
assert all(Gst.ElementFactory.find(e) for e in ('qtdemux', 'h264parse', 'rtph264pay'))" >/dev/null 2>&1; then
  need+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
fi
# strace: the durable-writes test watches the command line's fsyncs and renames from outside.
if ! command -v strace >/dev/null 2>&1; then
  need+=(strace)
fi
# A real browser for the review page's test: Debian's Chromium, driven by Playwright (which downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the test servers: ${need[*]}"
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } \
      || echo "warning: could not install ${need[*]}; the live tests that need them will fail" >&2
  else
    echo "warning: ${need[*]} missing (install with apt-get as root); the live tests that need them will fail" >&2
  fi
fi

export FACETRACK_TEST_ASSETS="${FACETRACK_TEST_ASSETS:-$(cd .. && pwd)/shared}"
python -m pytest -q "$@"
