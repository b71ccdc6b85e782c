"""The Python entry point for notebooks and scripts: a video in, the timeline as a DataFrame out.

Researchers mostly want the timeline in pandas, not a file. This runs the same pipeline as
``fervideo timeline`` and returns exactly what that command writes (same columns, rows and
rounding, read back with :func:`fervideo.outputs.read_timeline`), so a result computed in a
notebook and one computed by a batch job agree. The CSV goes through a temporary folder that is
removed afterwards; memory stays flat in the video's length apart from the rows themselves
(~150 bytes per face and frame: an hour at 30 fps with one face is ~16 MB).

To analyse many videos, build one :class:`~fervideo.pipeline.Analyser` and pass it to every call,
so the models are loaded once.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from fervideo.errors import UsageError
from fervideo.outputs import read_timeline
from fervideo.pipeline import Analyser, Options, process_video

OPTION_NAMES = tuple(f.name for f in dataclasses.fields(Options))


def analyse_video(video: str | Path, analyser: Analyser | None = None, **options: Any) -> Any:
    """Analyse ``video`` and return its timeline as a pandas DataFrame (see the README's contract).

    ``options`` are :class:`~fervideo.pipeline.Options` fields, named like the CLI flags
    (``stride=5``, ``smooth=0.5``, ``tta="flip"``, ``detector="yunet"``...). Pass either an
    ``analyser`` (reused across calls, options fixed when it was built) or options, not both.
    Bad input raises the same named exceptions the CLI reports (:mod:`fervideo.errors`).
    """
    if analyser is not None and options:
        raise UsageError(None, "pass options when building the Analyser, or here without one, not both")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise UsageError(None, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_NAMES)}")
    own = analyser is None
    active = Analyser(Options(**options)) if analyser is None else analyser
    try:
        with tempfile.TemporaryDirectory(prefix="fervideo-") as tmp:
            out = Path(tmp) / "timeline.csv"
            process_video(video, active, timeline=out)
            return read_timeline(out)
    finally:
        if own:
            active.close()
