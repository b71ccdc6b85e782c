"""The ``fervideo`` command line: parse, call the library, turn errors into one line and an exit code.

:mod:`.common` holds the app, the error wrapper and the shared options; :mod:`.video` the commands
that analyse media, :mod:`.train` the model commands. The library does the work; nothing here
decides anything a Python caller could not.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

# isort: off
from fervideo.cli import video  # noqa: F401 - registers the commands, in the order --help lists them
from fervideo.cli import train  # noqa: F401

# isort: on
from fervideo.cli.common import app
from fervideo.errors import EXIT_USAGE

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        from fervideo import __version__

        typer.echo(f"fervideo {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)] = False,
) -> None:
    """Facial-expression recognition for video files: annotated video and a per-frame emotion timeline."""


def main() -> None:  # pragma: no cover - console entry alias
    try:
        app()
    except SystemExit as e:
        sys.exit(e.code if e.code is not None else EXIT_USAGE)
