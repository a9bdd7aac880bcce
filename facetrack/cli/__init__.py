"""The `facetrack` command line (typer). Each command is a thin layer over the Python API; one module per group."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from facetrack.cli.common import app, build_config, console
from facetrack.errors import FacetrackError

# Importing a command module registers its commands, in the order of `facetrack --help`.
# isort: off
from facetrack.cli import annotate, watch, memory, tools, gallery  # noqa: F401, E402
# isort: on

__all__ = ["app", "build_config", "main"]


def main() -> None:
    """Entry point: user mistakes print one line and exit non-zero; bugs keep their traceback."""
    try:
        app(standalone_mode=False)
    except FacetrackError as exc:
        from facetrack.urls import hide_secrets

        console.print(f"[bold red]error[/]: {escape(hide_secrets(str(exc)))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        # Usage errors (missing argument, unknown option) know how to print themselves. They are recognised by
        # that ability rather than by class: older typer raises click's classes, newer typer its own.
        # They print as one line, like every other mistake, with the help that lists what the command takes.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            message = (exc.format_message() if hasattr(exc, "format_message") else str(exc)).rstrip(".")
            if not message:  # `facetrack` alone: its help, as asked
                show()
                sys.exit(exc.exit_code)
            names, ctx = [], getattr(exc, "ctx", None)
            while ctx is not None and ctx.parent is not None:  # the top one is however Python was started
                names.insert(0, ctx.info_name)
                ctx = ctx.parent
            command = " ".join(["facetrack", *names])
            console.print(f"[bold red]error[/]: {escape(message)} (see `{escape(command)} --help`)",
                          highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        raise
