"""Process a folder of videos: never die on one file, resume where an interrupted run stopped.

One module per concern: :mod:`.discovery` (which files, where outputs go), :mod:`.resume` (what is
up to date), :mod:`.worker` (one file inside a worker process), :mod:`.supervisor` (worker
processes, crashes, time limits, interrupts) and :mod:`.run` (the whole run and its summary).
"""

from __future__ import annotations

from fervideo.batch.discovery import find_videos, looks_like_video, outputs_for
from fervideo.batch.options import BatchOptions
from fervideo.batch.run import BatchResult, run_batch

__all__ = ["BatchOptions", "BatchResult", "find_videos", "looks_like_video", "outputs_for", "run_batch"]
