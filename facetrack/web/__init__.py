"""The local review page, `facetrack serve`: who was here, and the strangers to name, merge or forget.

`app.create_app` builds the ASGI app (FastAPI, Jinja2 templates, a little plain JavaScript) on an identity store;
`server.serve` runs it with uvicorn. Both need the `web` extra; this module alone imports nothing of it.
"""

from __future__ import annotations

import importlib.util

from facetrack.errors import FacetrackError

EXTRA_MODULES = ("fastapi", "uvicorn", "jinja2", "multipart")


def require_extra() -> None:
    """Refuse, in one line, when the `web` extra is not installed."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise FacetrackError(f"`facetrack serve` needs {', '.join(missing)}: pip install 'facetrack[web]'")
