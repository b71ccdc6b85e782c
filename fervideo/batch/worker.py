"""What runs inside a batch worker (a local process or a Ray actor): load the models once, then
one file, chunk or merge per call.

A :class:`Worker` never raises for a bad input: every file gives a :class:`FileRow` (status ok or
error), every chunk a :class:`Chunk` or a :class:`FailedChunk`. Its frame counts go to the parent's
progress bar through a queue, a few times a second. A process pool needs plain functions for its
initializer and tasks: :func:`init_worker` makes the process's one Worker and the functions below
call it; a Ray actor holds its own.
"""

from __future__ import annotations

import logging
import queue
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fervideo.batch import store
from fervideo.batch.options import BatchOptions, FailedChunk, FileRow, Job
from fervideo.batch.resume import write_sidecar
from fervideo.batch.store import Target
from fervideo.chunks import Chunk, analyse_chunk, replay
from fervideo.errors import INTERRUPTED, FervideoError, OutputError, check_interrupted
from fervideo.logs import to_terminal
from fervideo.outputs import TimelineWriter, plot_timeline, read_timeline, summarise
from fervideo.pipeline import Analyser, Options, process_video
from fervideo.reports import named

UP_TO_DATE = "up to date (skipped; --overwrite to redo)"
# What one input can raise (a bad input, a codec or file-system failure): an error row, never the batch's end.
FILE_ERRORS = (FervideoError, OSError, ValueError, RuntimeError)


def _worker_signal(signum: int, frame: Any) -> None:
    """In a worker, Ctrl-C/SIGTERM only raise the flag that the frame loop checks between frames.

    Raising KeyboardInterrupt from the handler would land at an arbitrary point of the worker's
    main thread: once in ~10 runs it hit a ThreadPoolExecutor between starting a detection thread
    and registering it, and the worker then hung at exit waiting for that thread (and the batch
    with it). The check between frames is a safe point; the temporary outputs are removed there.
    """
    INTERRUPTED.set()


class _FrameTicker:
    """Sends a worker's frame count to the parent's per-file bar, at most ~4 times a second
    (a queue message per frame would cost more than the frame's analysis at 1,000+ fps)."""

    def __init__(self, video: object, queue_: Any) -> None:
        self.video, self.queue, self.pending, self.last = str(video), queue_, 0, time.monotonic()

    def start(self, info: Any) -> None:
        self._put(("start", self.video, info.frame_count_container))

    def __call__(self, n: int) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last >= 0.25:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if self.pending:
            self._put(("frames", self.video, self.pending))
            self.pending = 0

    def _put(self, msg: tuple) -> None:
        if self.queue is not None:
            try:
                self.queue.put_nowait(msg)
            except (OSError, ValueError, queue.Full):  # the parent went away or lags: progress is optional
                pass


def _input_error(e: BaseException) -> str:
    """A file's problem as its summary row says it."""
    if isinstance(e, OutputError) and e.path is not None:
        return str(e)  # the output's own path: the row's input is not what could not be written
    return e.problem if isinstance(e, FervideoError) else f"{type(e).__name__}: {e}"


class Worker:
    """One worker's models (an :class:`Analyser`, loaded once for all its files) and its progress queue."""

    def __init__(self, options: Options, progress: Any = None) -> None:
        to_terminal(logging.WARNING)  # the parent has shown the notes (it loaded the same models first)
        store.sweep_stages()  # what a killed worker on this machine left while uploading to a URL
        self.analyser = Analyser(options)
        self.progress = progress
        if progress is not None:
            progress.cancel_join_thread()  # a worker's exit never waits on progress messages

    def process(self, job: Job, bo: BatchOptions) -> FileRow:
        """One file's outputs and summary row; never raises for input errors."""
        video = job.video
        row = FileRow(str(video))
        try:
            check_interrupted()
            if job.skip:
                with store.fetched(job.outputs["timeline"]) as timeline:
                    row.figures = summarise(read_timeline(timeline))
                row.skipped = True
                return row.note(UP_TO_DATE)
            with store.fetched(video) as local_video:  # an input given by URL is downloaded first

                def analyse(local: dict[str, Path]) -> list[str]:
                    ticker = _FrameTicker(video, self.progress)
                    report = process_video(
                        local_video,
                        self.analyser,
                        timeline=local["timeline"],
                        fmt=bo.fmt,
                        annotated=local.get("annotated"),
                        codec=bo.codec,
                        progress=ticker,
                        on_start=ticker.start,
                    )
                    ticker.flush()
                    return report.warnings(video)

                self._write_outputs(job, bo, row, analyse)
        except FILE_ERRORS as e:
            return FileRow.error(video, _input_error(e))
        return row

    def _write_outputs(self, job: Job, bo: BatchOptions, row: FileRow, produce: Callable[[dict[str, Path]], list[str]]) -> None:
        """One file's outputs: ``produce`` writes the timeline (and annotated video) at the local paths
        it is given (in place for a local --out; in a staging folder for a URL, uploaded when all are
        complete) and returns its warnings; then the summary figures, the plot, and the run record last."""
        with store.staged(job.outputs) as local:
            row.notes += produce(local)
            df = read_timeline(local["timeline"])
            row.figures = summarise(df)
            if "plot" in local:
                plot_timeline(df, local["plot"], title=store.name_of(job.video), smoothed=self.analyser.options.smoothing)
        if bo.settings is not None:
            write_sidecar(job.outputs, bo.settings)

    def chunk(self, video: Target, start: int, stop: int | None) -> Chunk | FailedChunk:
        """Frames ``[start, stop)`` of one file: detections and probabilities (see
        :func:`fervideo.chunks.analyse_chunk`), or why the file cannot be read."""
        try:
            check_interrupted()
            with store.fetched(video) as local_video:
                return analyse_chunk(local_video, self.analyser, start, stop)
        except FILE_ERRORS as e:
            return FailedChunk(_input_error(e))

    def merge(self, job: Job, bo: BatchOptions, *chunks: Chunk | FailedChunk) -> FileRow:
        """The outputs of a file analysed in chunks (in file order): ids and smoothing replayed over
        them in one pass, so the timeline is byte for byte what one worker writes for the whole file."""
        try:
            check_interrupted()
            failed = next((c for c in chunks if isinstance(c, FailedChunk)), None)
            if failed is not None:
                return FileRow.error(job.video, failed.message)
            parts = [c for c in chunks if isinstance(c, Chunk)]
            row = FileRow(str(job.video))

            def merged(local: dict[str, Path]) -> list[str]:
                with TimelineWriter(local["timeline"], bo.fmt, self.analyser.options.smoothing) as tw:
                    for result in replay(self.analyser, parts):
                        tw.write(result)
                ends = next((c for c in parts if c.reached_end), None)  # every chunk that reached the end found the same
                return named(job.video, ends.problems) if ends is not None else []

            self._write_outputs(job, bo, row, merged)
        except FILE_ERRORS as e:
            return FileRow.error(job.video, _input_error(e))
        return row


_worker: Worker | None = None  # this process's Worker (process pools only: see init_worker)


def init_worker(options: Options, progress: Any = None) -> None:
    """A pool process's initializer: signal handling, then its Worker (models loaded once)."""
    global _worker
    signal.signal(signal.SIGINT, _worker_signal)
    signal.signal(signal.SIGTERM, _worker_signal)
    _worker = Worker(options, progress)


def process_one(job: Job, bo: BatchOptions) -> FileRow:
    """A pool task: one file through this process's Worker."""
    if _worker is None:
        raise RuntimeError("process_one runs in a process set up by init_worker")
    return _worker.process(job, bo)
