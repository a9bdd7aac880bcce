"""The one exception type for user mistakes (bad input, missing model, unwritable output).

The CLI prints its message on one line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class FacetrackError(Exception):
    """A problem the user can fix; the message names the thing and the fix."""

    exit_code: int = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
