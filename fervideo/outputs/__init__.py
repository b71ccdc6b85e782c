"""Everything users keep, one module each: the timeline (:mod:`.timeline`), annotated frames
(:mod:`.annotate`), plots (:mod:`.plots`) and the batch summary (:mod:`.summary`).

The names most callers need are re-exported here (``fervideo.outputs.read_timeline`` is public API).
Importing this package does not import matplotlib or pandas: they load when a plot or a table is made.
"""

from __future__ import annotations

from fervideo.outputs.annotate import draw_faces
from fervideo.outputs.plots import plot_timeline
from fervideo.outputs.summary import SUMMARY_COLUMNS, summarise, write_summary
from fervideo.outputs.timeline import BASE_COLUMNS, FORMATS, SMOOTH_COLUMNS, TimelineWriter, columns, frame_rows, read_timeline

__all__ = [
    "BASE_COLUMNS",
    "FORMATS",
    "SMOOTH_COLUMNS",
    "SUMMARY_COLUMNS",
    "TimelineWriter",
    "columns",
    "draw_faces",
    "frame_rows",
    "plot_timeline",
    "read_timeline",
    "summarise",
    "write_summary",
]
