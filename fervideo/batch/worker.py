"""What runs inside a batch worker process: load the models once, then one file per call.

A worker never raises for a bad input: every file gives a summary row (``status`` ok or error).
Its frame counts go to the parent's progress bar through a queue, a few times a second.
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
from fervideo.batch.options import BatchOptions
from fervideo.batch.resume import write_sidecar
from fervideo.batch.store import Target
from fervideo.errors import INTERRUPTED, FervideoError, OutputError, check_interrupted
from fervideo.logs import to_terminal
from fervideo.outputs import TimelineWriter, plot_timeline, read_timeline, summarise
from fervideo.pipeline import Analyzer, Chunk, Options, analyse_chunk, process_video

_worker_analyzer: Analyzer | None = None
_worker_progress: Any = None  # a multiprocessing queue to the parent's progress bar, or None



def _worker_signal(signum: int, frame: Any) -> None:
    """In a worker, Ctrl-C/SIGTERM only raise the flag that the frame loop checks between frames.

    Raising KeyboardInterrupt from the handler would land at an arbitrary point of the worker's
    main thread: once in ~10 runs it hit a ThreadPoolExecutor between starting a detection thread
    and registering it, and the worker then hung at exit waiting for that thread (and the batch
    with it). The check between frames is a safe point; the temporary outputs are removed there.
    """
    INTERRUPTED.set()


def init_worker(options: Options, progress: Any = None, handle_signals: bool = True) -> None:
    """Per worker process, once: signal handling, the models (loaded once for all its files), progress.
    (A Ray actor leaves signals to Ray, which stops its workers itself.)"""
    global _worker_analyzer, _worker_progress
    if handle_signals:
        signal.signal(signal.SIGINT, _worker_signal)
        signal.signal(signal.SIGTERM, _worker_signal)
    to_terminal(logging.WARNING)  # the parent has shown the notes (it loaded the same models first)
    store.sweep_stages()  # what a killed worker on this machine left while uploading to a URL
    _worker_analyzer = Analyzer(options)
    _worker_progress = progress
    if progress is not None:
        progress.cancel_join_thread()  # a worker's exit never waits on progress messages


class _FrameTicker:
    """Sends a worker's frame count to the parent's per-file bar, at most ~4 times a second
    (a queue message per frame would cost more than the frame's analysis at 1,000+ fps)."""

    def __init__(self, video: Path) -> None:
        self.video, self.pending, self.last = str(video), 0, time.monotonic()

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
        if _worker_progress is not None:
            try:
                _worker_progress.put_nowait(msg)
            except (OSError, ValueError, queue.Full):  # the parent went away or lags: progress is optional
                pass


# What one input can raise (a bad input, a codec or file-system failure): an error row, never the batch's end.
FILE_ERRORS = (FervideoError, OSError, ValueError, RuntimeError)


def _input_error(e: BaseException) -> str:
    """A file's problem as its summary row says it."""
    if isinstance(e, OutputError) and e.path is not None:
        return str(e)  # the output's own path: the row's input is not what could not be written
    return e.problem if isinstance(e, FervideoError) else f"{type(e).__name__}: {e}"


def process_one(video: Target, outputs: dict[str, Target], skip: bool, bo: BatchOptions) -> dict[str, Any]:
    """Process one file in a worker and return its summary row; never raises for input errors."""
    row: dict[str, Any] = {"input": str(video), "status": "ok", "message": ""}
    try:
        check_interrupted()
        if skip:
            row["message"] = "up to date (skipped; --overwrite to redo)"
            with store.fetched(outputs["timeline"]) as timeline:
                row.update(summarise(read_timeline(timeline)))
            return row
        with store.fetched(video) as local_video:  # an input given by URL is downloaded first

            def analyse(local: dict[str, Path]) -> list[str]:
                assert _worker_analyzer is not None
                ticker = _FrameTicker(video)
                report = process_video(
                    local_video,
                    _worker_analyzer,
                    timeline=local["timeline"],
                    fmt=bo.fmt,
                    annotated=local.get("annotated"),
                    codec=bo.codec,
                    progress=ticker,
                    on_start=ticker.start,
                )
                ticker.flush()
                return [w.replace(str(local_video), str(video)) for w in report.warnings]

            _write_outputs(video, outputs, bo, row, analyse)
    except FILE_ERRORS as e:
        row.update(status="error", message=_input_error(e))
    return row


def _write_outputs(video: Target, outputs: dict[str, Target], bo: BatchOptions, row: dict[str, Any], produce: Callable[[dict[str, Path]], list[str]]) -> None:
    """One file's outputs: ``produce`` writes the timeline (and annotated video) at the local paths
    it is given (in place for a local --out; in a staging folder for a URL, uploaded when all are
    complete) and returns its warnings; then the summary figures, the plot, and the run record last."""
    assert _worker_analyzer is not None
    with store.staged(outputs) as local:
        row["message"] = "; ".join(produce(local))
        df = read_timeline(local["timeline"])
        row.update(summarise(df))
        if "plot" in local:
            plot_timeline(df, local["plot"], title=store.name_of(video), smoothed=_worker_analyzer.options.smooth_s > 0)
    if bo.settings is not None:
        write_sidecar(outputs, bo.settings)


def process_chunk(video: Target, start: int, stop: int | None) -> Chunk:
    """Frames ``[start, stop)`` of one file: detections and probabilities (see
    :func:`fervideo.pipeline.analyse_chunk`); an input error comes back in ``Chunk.error``."""
    assert _worker_analyzer is not None
    try:
        check_interrupted()
        with store.fetched(video) as local_video:
            chunk = analyse_chunk(local_video, _worker_analyzer, start, stop)
            if chunk.warning is not None:
                chunk.warning = chunk.warning.replace(str(local_video), str(video))
            return chunk
    except FILE_ERRORS as e:
        return Chunk(error=_input_error(e))


def merge_chunks(video: Target, outputs: dict[str, Target], bo: BatchOptions, *chunks: Chunk) -> dict[str, Any]:
    """The outputs of a file analysed in chunks (in file order): ids and smoothing replayed over
    them in one pass, so the timeline is byte for byte what one worker writes for the whole file."""
    row: dict[str, Any] = {"input": str(video), "status": "ok", "message": ""}
    try:
        check_interrupted()
        failed = next((c.error for c in chunks if c.error is not None), None)
        if failed is not None:
            return {**row, "status": "error", "message": failed}
        assert _worker_analyzer is not None
        smoothing = _worker_analyzer.options.smooth_s > 0

        def replay(local: dict[str, Path]) -> list[str]:
            assert _worker_analyzer is not None
            with TimelineWriter(local["timeline"], bo.fmt, smoothing) as tw:
                for result in _worker_analyzer.replay(chunks):
                    tw.write(result)
            warning = next((c.warning for c in chunks if c.reached_end), None)  # every chunk that reached the end has the same
            return [warning] if warning else []

        _write_outputs(video, outputs, bo, row, replay)
    except FILE_ERRORS as e:
        row.update(status="error", message=_input_error(e))
    return row
