"""fervideo: facial-expression recognition for video files.

Pipeline, one module per stage: :mod:`fervideo.video` -> :mod:`fervideo.faces` (run by :mod:`fervideo.detect_stage`) ->
:mod:`fervideo.emotions` -> :mod:`fervideo.tracking` -> :mod:`fervideo.outputs`, driven by
:mod:`fervideo.pipeline`; :mod:`fervideo.cli` only parses and calls.

From Python: ``fervideo.analyse_video("clip.mp4")`` returns the timeline as a pandas DataFrame
(:mod:`fervideo.api`). The names below are imported on first use, so ``import fervideo`` stays
cheap for the CLI.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "analyse_video": "fervideo.api",
    "Analyser": "fervideo.pipeline",
    "Options": "fervideo.options",
    "process_video": "fervideo.pipeline",
    "read_timeline": "fervideo.outputs",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fervideo' has no attribute {name!r}")
