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


class OutputError(FacetrackError):
    """An output that failed while the run was writing it (a full disk, a size limit, a file gone read-only).

    What was written before it stays usable (whole event lines, a video that plays up to the cut); the run
    exits 3, like any run whose outputs are incomplete.
    """

    exit_code = 3


def write_problem(strerror: str | None, errno_: int | None, flag: str) -> str:
    """Why a write failed and what to do, for an OutputError message."""
    import errno

    if errno_ == errno.ENOSPC:
        return f"the disk is full (free space or give {flag} a path on another disk)"
    if errno_ == errno.EFBIG:
        return f"the file reached the size limit for files (raise it with `ulimit -f` or give {flag} another disk)"
    if errno_ in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{(strerror or 'permission denied').lower()} (give {flag} a writable path)"
    return f"{(strerror or 'write error').lower()} (give {flag} another path)"
