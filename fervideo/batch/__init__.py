"""Process a folder of videos: never die on one file, resume where an interrupted run stopped.

One module per concern: :mod:`.options` (what the run was asked, and the records passed around:
``Job`` in, ``FileRow`` out), :mod:`.discovery` (which files, where outputs go), :mod:`.resume`
(what is up to date), :mod:`.worker` (a ``Worker``: one file, chunk or merge, in a worker process
or a Ray actor), :mod:`.supervisor` (worker processes, crashes, time limits, interrupts),
:mod:`.ray_cluster` and :mod:`.ray_run` (the same on a Ray cluster: connecting and the actors; the
run's scheduling), :mod:`.store` (folders or fsspec URLs) and :mod:`.run` (the whole run and its summary).
"""

from __future__ import annotations

from fervideo.batch.discovery import find_videos, looks_like_video, outputs_for
from fervideo.batch.options import BatchOptions
from fervideo.batch.run import BatchResult, run_batch

__all__ = ["BatchOptions", "BatchResult", "find_videos", "looks_like_video", "outputs_for", "run_batch"]
