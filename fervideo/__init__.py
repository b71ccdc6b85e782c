"""fervideo: facial-expression recognition for video files.

Pipeline, one module per stage: :mod:`fervideo.video` -> :mod:`fervideo.faces` ->
:mod:`fervideo.emotions` -> :mod:`fervideo.tracking` -> :mod:`fervideo.outputs`, driven by
:mod:`fervideo.pipeline`; :mod:`fervideo.cli` only parses and calls.
"""

__version__ = "0.1.0"
