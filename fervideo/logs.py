"""The library's messages go through :mod:`logging` (loggers under ``fervideo``); this puts them on
a terminal as ``fervideo: warning: ...`` lines, above any progress bar.

A program that imports fervideo and configures nothing sees warnings through Python's last-resort
handler and no notes; the CLI and the batch workers call :func:`to_terminal`.
"""

from __future__ import annotations

import logging
import sys

LABELS = {logging.DEBUG: "debug", logging.INFO: "note", logging.WARNING: "warning", logging.ERROR: "error", logging.CRITICAL: "error"}


class TerminalHandler(logging.Handler):
    """One line per message on stderr, written through tqdm so progress bars are not torn."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(f"fervideo: {LABELS.get(record.levelno, 'note')}: {record.getMessage()}", file=sys.stderr)
        except (OSError, ValueError):  # a closed stderr must not turn a message into a crash
            self.handleError(record)


def to_terminal(level: int = logging.INFO) -> None:
    """Show fervideo's messages of ``level`` and above on stderr (idempotent)."""
    logger = logging.getLogger("fervideo")
    logger.setLevel(level)
    logger.propagate = False
    if not any(isinstance(h, TerminalHandler) for h in logger.handlers):
        logger.addHandler(TerminalHandler())
