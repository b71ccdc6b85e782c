"""Named exceptions that tell the user what went wrong and what to do.

The CLI turns every :class:`FervideoError` into one line on stderr and the exit code on the class,
so user mistakes never show a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import threading
from pathlib import Path

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_OUTPUT = 5
EXIT_BUSY = 6
EXIT_INTERRUPTED = 130

# Set by the CLI's SIGINT/SIGTERM handler, which also raises KeyboardInterrupt. The flag is for the
# case where the raise is lost: a KeyboardInterrupt raised while the main thread runs a finaliser
# (``__del__``, a C extension's dealloc) is printed as "Exception ignored" and dropped, and the run
# would go on to write its outputs. The frame loops call check_interrupted() so it cannot be lost.
INTERRUPTED = threading.Event()


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C/SIGTERM arrived, even if its first raise was swallowed."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


class FervideoError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = EXIT_INPUT

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class InputError(FervideoError):
    """The input file is missing, unreadable or not what the command expects."""

    exit_code = EXIT_INPUT


class VideoOpenError(InputError):
    """No frame could be decoded from the file (not a video, empty, or an unsupported codec)."""


class DataFormatError(InputError):
    """Training/evaluation data is in none of the supported layouts."""


class ModelError(FervideoError):
    """The emotion model or detector model cannot be loaded or has the wrong shape."""

    exit_code = EXIT_MODEL


class OutputError(FervideoError):
    """The output cannot be written where asked (unwritable folder, output equal to input)."""

    exit_code = EXIT_OUTPUT


class BusyError(OutputError):
    """Another ``fervideo batch`` run is writing into the same output folder (a user who started
    the command twice): the second stops at once and changes nothing."""

    exit_code = EXIT_BUSY


class UsageError(FervideoError):
    """Options that contradict each other or are out of range."""

    exit_code = EXIT_USAGE


class MissingExtraError(UsageError):
    """A command needs an optional extra that is not installed (e.g. TensorFlow for training)."""
