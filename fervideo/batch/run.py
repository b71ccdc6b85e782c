"""``fervideo batch``: find the videos, decide what to redo, run them, keep the summary current.

``summary.csv`` is rewritten (atomically) every few seconds while files finish and at the end,
however the run ends (Ctrl-C included), so it is complete after the run and at most a few seconds
behind during it.
Each file's outputs are written by one worker process and the summary only by this process, so
rows never interleave. Messages (notes, warnings) go through :mod:`logging` (logger
``fervideo.batch``); the CLI shows them on the terminal above the progress bars.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fervideo.batch import store
from fervideo.batch.discovery import find_videos, find_videos_at, nested_video_folders, outputs_for, unclashed
from fervideo.batch.options import BatchOptions, FileRow, Job
from fervideo.batch.resume import resume_state, run_settings
from fervideo.batch.supervisor import Supervisor
from fervideo.errors import EXIT_OK, EXIT_SOME_FAILED, BusyError, InputError, UsageError
from fervideo.files import sweep_partials
from fervideo.outputs import write_summary
from fervideo.outputs.timeline import check_format
from fervideo.pipeline import Analyser, Options

log = logging.getLogger(__name__)
SUMMARY_EVERY_S = 2.0  # seconds between rewrites of summary.csv in a folder
SUMMARY_EVERY_S_URL = 15.0  # ... and in a bucket


@dataclass
class BatchResult:
    """What a batch run did: one summary row per input, and where the summary is."""

    summary: Path | str  # a local path, or the URL it was uploaded to
    rows: list[FileRow] = field(default_factory=list)

    @property
    def failed(self) -> list[FileRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.failed else EXIT_OK


def _check_folder(directory: store.Target) -> None:
    if isinstance(directory, Path):
        exists, is_file = directory.exists(), directory.is_file()
    else:
        fs, path = store.filesystem(directory)
        try:
            exists = fs.exists(path)
            is_file = exists and fs.isfile(path)
        except (OSError, ValueError) as e:  # no such bucket, no credentials
            raise InputError(directory, f"cannot list it ({type(e).__name__}: {e})") from None
    if not exists:
        raise InputError(directory, "no such directory")
    if is_file:
        raise InputError(directory, "is a file, expected a folder of videos (use 'fervideo timeline' for one file)")


def _find_inputs(directory: store.Target, out: store.Target, bo: BatchOptions) -> list[store.Target]:
    if not isinstance(directory, Path):
        return list(find_videos_at(directory, bo.recursive, exclude=out if store.is_url(out) else None))
    out_here = store.local_root(out)
    videos: list[store.Target] = list(find_videos(directory, bo.recursive, exclude=out_here))
    if videos and not bo.recursive:
        nested = nested_video_folders(directory, out_here)
        if nested:
            names = ", ".join(p.name + "/" for p in nested[:3]) + (" ..." if len(nested) > 3 else "")
            log.info("sub-folders %s hold videos too; add --recursive to include them", names)
    return videos


def plan(directory: store.Target, out: store.Target, options: Options, bo: BatchOptions) -> list[Job]:
    """Check the inputs and the output folder, and decide per video: run or skip (resume)."""
    _check_folder(directory)
    options.validate()
    if bo.jobs < 1:
        raise UsageError(None, "--jobs must be at least 1")
    if bo.file_timeout_s < 0:
        raise UsageError(None, "--file-timeout must be 0 (no limit) or a positive number of seconds")
    # Load the models here once before starting workers: a bad --model is one error line and exit 4
    # (and no output folder), not a worker traceback per process.
    Analyser(options).close()
    store.prepare(out)
    local_out = store.local_root(out)
    if local_out is not None:
        swept = sweep_partials(local_out)
        if swept:
            log.info("removed %d temporary file(s) in %s left by a run that was killed", swept, out)
    videos = _find_inputs(directory, out, bo)
    if not videos:
        raise InputError(directory, "no video files found" + ("" if bo.recursive else " (try --recursive)"))
    bo.settings = run_settings(options, bo)
    settings = bo.settings
    wanted = [outputs_for(v, directory, out, bo) for v in videos]
    outs = unclashed(wanted, reserved=[store.join(out, "summary.csv")])
    bo.renamed = {}
    for v, w, o in zip(videos, wanted, outs, strict=True):
        if o != w:
            taken = store.name_of(w["timeline"])
            bo.renamed[str(v)] = f"outputs named {store.name_of(o['timeline'])} and alike: {taken} is a file the batch writes for itself or for another input"
    if bo.overwrite:
        found = ["missing"] * len(videos)
    else:
        modified = store.modified_times(directory, out)
        # A bucket answers in tens of ms per request: its run records are read in parallel.
        with ThreadPoolExecutor(16 if store.is_url(out) else 1) as pool:
            found = list(pool.map(lambda vo: resume_state(vo[0], vo[1], settings, modified), zip(videos, outs, strict=True)))
    jobs = [Job(v, o, state == "same") for v, o, state in zip(videos, outs, found, strict=True)]
    states = {s: found.count(s) for s in ("same", "changed", "missing")}
    if states["same"] or states["changed"]:
        log.info(
            "resuming in %s: %d file(s) up to date with the same options and model (skipped), %d made with other options or another model (redone), %d new",
            out,
            states["same"],
            states["changed"],
            states["missing"],
        )
    return jobs


class _Progress:
    """Two bars: files done, and frames of the file in progress (counts sent by the workers)."""

    def __init__(self, files: int, quiet: bool, frames: bool = True) -> None:
        from tqdm import tqdm

        self.files = tqdm(total=files, desc="videos", unit="file", disable=quiet, dynamic_ncols=True, position=0)
        self.frames = tqdm(desc="frames", unit="frame", disable=quiet or not frames, dynamic_ncols=True, position=1, leave=False)
        # An mp.Queue, not a SimpleQueue: a worker never blocks on it (put_nowait; the send happens
        # in a feeder thread), so a worker killed while sending cannot leave a lock that stalls others.
        self.queue = None if quiet or not frames else mp.get_context("spawn").Queue(maxsize=10_000)
        self.current = ""

    def poll(self) -> None:
        """Move the workers' frame counts onto the per-file bar (called between waits)."""
        moved = False
        while self.queue is not None:
            try:
                kind, video, n = self.queue.get_nowait()
            except (queue.Empty, OSError, ValueError):
                break
            moved = True
            if kind == "start":
                self.current = video
                self.frames.reset(total=n or None)
                self.frames.set_description(Path(video).name, refresh=False)
            elif video == self.current:
                self.frames.update(n)
        if moved:
            self.frames.refresh()

    def file_done(self, row: FileRow) -> None:
        self.poll()
        if row.input == self.current and row.figures.get("frames"):
            # The file is done: show its frame count (its last progress message may still be in
            # the queue's feeder thread) and ignore late messages for it.
            self.frames.n = self.frames.total or int(row.figures["frames"])
            self.frames.refresh()
            self.current = ""
        self.files.update(1)

    def close(self) -> None:
        self.frames.close()
        self.files.close()
        if self.queue is not None:
            self.queue.cancel_join_thread()
            self.queue.close()


def check_chunk_options(options: Options, bo: BatchOptions, ray_address: str | None) -> None:
    """Refuse ``--chunk-s`` combinations that cannot give the one-pass timeline: usage errors, so
    the CLI checks them before it looks for the Ray extra (a wrong flag is said first)."""
    if bo.chunk_s < 0:
        raise UsageError(None, "--chunk-s must be 0 (files whole) or a positive number of seconds")
    if bo.chunk_s > 0:
        if ray_address is None:
            raise UsageError(None, "--chunk-s splits files across a Ray cluster's workers: add --ray")
        if bo.annotate:
            raise UsageError(None, "--chunk-s: annotated videos are written in one pass; leave out --annotate or --chunk-s")
        if options.detect_every != 1:
            raise UsageError(None, "--chunk-s needs --detect-every 1 (boxes carried between detections depend on the whole file)")


def run_batch(directory: str | Path, out: str | Path, options: Options, bo: BatchOptions, ray_address: str | None = None) -> BatchResult:
    """Process every video under ``directory`` into ``out`` (each a folder, or an fsspec URL: see
    :mod:`.store`); never stops on a bad file. With ``ray_address``, the files run on a Ray
    cluster (:mod:`.ray_cluster`) instead of local workers."""
    check_chunk_options(options, bo, ray_address)
    check_format(bo.fmt)
    if bo.chunk_s > 0 and options.device != "cpu":
        # TFLite's output for a face does not depend on its batch (0.0 difference, checked);
        # PyTorch's does, in the last bits (1.5e-8 measured), which can move a 4th decimal.
        log.info("--chunk-s with --device %s: probabilities can differ from a single pass in the last printed digit", options.device)
    root = store.as_target(out)
    with output_lock(root):
        return _run(directory, root, options, bo, ray_address)


@contextmanager
def output_lock(root: store.Target) -> Iterator[None]:
    """Hold this machine's lock on the output folder ``root`` for the run.

    Two runs into one folder would both process every file and call each other's outputs "made
    with other options"; the second is stopped before it reads or writes anything, with the first
    one's pid. The lock is an ``flock`` on a file in the temporary folder named after the resolved
    output (nothing is added to the output folder, and the kernel releases it when its process
    dies, however it dies)."""
    import hashlib
    import tempfile

    try:
        import fcntl
    except ImportError:  # not a POSIX system: no lock (two runs would both run, as before)
        yield
        return

    key = str(store.local_root(root) or root)
    path = Path(tempfile.gettempdir()) / f"fervideo-batch-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise BusyError(root, f"another fervideo batch run (pid {other}) is writing to this output folder; nothing was changed") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def _run(directory: str | Path, root: store.Target, options: Options, bo: BatchOptions, ray_address: str | None) -> BatchResult:
    jobs = plan(store.as_target(directory), root, options, bo)
    result = BatchResult(store.join(root, "summary.csv"))
    progress = _Progress(len(jobs), bo.quiet, frames=ray_address is None)  # cluster workers send no frame counts
    if ray_address is not None:
        from fervideo.batch.ray_cluster import RaySupervisor

        rows = RaySupervisor(options, bo, ray_address).rows(jobs)
    else:
        rows = Supervisor(options, bo, progress.queue, progress.poll).rows(jobs)
    # summary.csv is rewritten whole, so rewriting it after every file is quadratic: 10,000 files
    # would write 6.8 GB and spend ~400 s formatting rows (measured). At most every few seconds instead (a
    # bucket upload costs more than a local write), and always when the run ends, however it ends.
    every_s = SUMMARY_EVERY_S_URL if store.is_url(root) else SUMMARY_EVERY_S
    written_at, written_rows = time.monotonic(), 0
    try:
        for row in rows:
            note = bo.renamed.get(row.input)
            if note:
                row.note(note)
            result.rows.append(row)
            if time.monotonic() - written_at >= every_s:
                _write_summary(result)
                written_at, written_rows = time.monotonic(), len(result.rows)
            if row.ok and not row.skipped:
                # Warnings (a video that ends early, a re-run after a crash) on the terminal too,
                # not only in summary.csv; a note that does not name the input is about it.
                for w in row.notes:
                    log.warning("%s", w if row.input in w else f"{row.input}: {w}")
            progress.file_done(row)
    finally:
        progress.close()
        if len(result.rows) > written_rows:
            _write_summary(result)
    return result


def _write_summary(result: BatchResult) -> None:
    with store.publishing(result.summary) as tmp:
        write_summary([r.as_dict() for r in result.rows], tmp)
