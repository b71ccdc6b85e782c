"""Process a folder of videos: never die on one file, resume where an interrupted run stopped.

* Which files: known video extensions, plus any other file whose first bytes look like a video
  container (MP4/MOV ``ftyp``, AVI ``RIFF``, Matroska/WebM, MPEG-TS/PS, FLV, ASF). A README or a
  photo beside the clips is skipped silently; a ``.mp4`` that is really text is an error row.
* Resume: an input is skipped when all its outputs exist, are newer than it, and were made with the
  same options and model: a sidecar ``<name>.run.json`` beside the timeline records them (written
  last, so a kill between the outputs and it only costs a redo). A run with other options or
  another model redoes the file instead of passing off old results as new; ``--overwrite`` redoes
  everything. Outputs are renamed into place only when complete, so existence means complete.
* ``summary.csv`` is rewritten (atomically) after every file, so it is right even after Ctrl-C.
* ``--jobs N`` runs files in N worker processes (one by default), each loading the models once; each
  file's outputs are written by one process, and the summary only by the parent, so rows never
  interleave. A file that kills its worker (decoder segfault, out-of-memory kill) becomes an error
  row and the batch goes on with a new worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import multiprocessing.connection
import os
import queue
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fervideo.errors import EXIT_OK, EXIT_SOME_FAILED, INTERRUPTED, FervideoError, InputError, OutputError, UsageError, check_interrupted
from fervideo.pipeline import Analyzer, Options, process_video
from fervideo.video import VIDEO_EXTENSIONS, remove_partials

_MAGIC = (
    (4, b"ftyp"),  # MP4 / MOV / 3GP
    (0, b"RIFF"),  # AVI
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"\x00\x00\x01\xba"),  # MPEG-PS
    (0, b"FLV"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
)


@dataclass
class BatchOptions:
    annotate: bool = False
    plots: bool = False
    recursive: bool = False
    overwrite: bool = False
    jobs: int = 1
    fmt: str = "csv"
    codec: str = "h264"
    quiet: bool = False
    file_timeout_s: float = 0.0  # 0: none
    settings: dict[str, Any] | None = None  # what run_settings() recorded for this run (resume)


def looks_like_video(path: Path) -> bool:
    """Known extension, or container magic bytes in the header (MPEG-TS: sync byte every 188)."""
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    if any(head[o : o + len(m)] == m for o, m in _MAGIC):
        return True
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47


def find_videos(directory: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    out = []
    for p in sorted(directory.glob(pattern)):
        if not p.is_file() or p.name.startswith("."):
            continue
        if exclude is not None and exclude in p.resolve().parents:
            continue
        if looks_like_video(p):
            out.append(p)
    return out


def outputs_for(video: Path, directory: Path, out: Path, bo: BatchOptions) -> dict[str, Path]:
    rel = video.relative_to(directory)
    base = out / rel.parent / rel.name
    paths = {"timeline": base.with_name(f"{rel.name}.{bo.fmt}")}
    if bo.annotate:
        paths["annotated"] = base.with_name(f"{rel.name}.annotated.mp4")
    if bo.plots:
        paths["plot"] = base.with_name(f"{rel.name}.png")
    return paths


def sidecar_for(outputs: dict[str, Path]) -> Path:
    t = outputs["timeline"]
    return t.with_name(t.name + ".run.json")


def run_settings(options: Options, bo: BatchOptions) -> dict[str, Any]:
    """What decides a file's outputs: the analysis options, the model files' contents, the formats.

    Batch size, threads and queue sizes are left out: they change speed, not results (tests check
    the pipelined and plain paths and any batch split agree byte for byte).
    """
    from fervideo import __version__
    from fervideo.models import resolve_model

    model = resolve_model(options.model)
    # A bundled detector is identified by the version; a user's file by its content.
    det_model = Path(options.detector_model) if options.detector_model else None
    return {
        "fervideo": __version__,
        "model_sha256": _sha256(model),
        "detector": options.detector,
        "detector_model_sha256": _sha256(det_model) if det_model is not None else None,
        "min_face": options.min_face,
        "detect_every": options.detect_every,
        "stride": options.stride,
        "smooth_s": options.smooth_s,
        "detect_size": options.detect_size,
        "tta": options.tta,
        "format": bo.fmt,
        "annotate": bo.annotate,
        "codec": bo.codec if bo.annotate else None,
        "plots": bo.plots,
    }


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    import hashlib

    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def resume_state(video: Path, outputs: dict[str, Path], settings: dict[str, Any]) -> str:
    """"missing" (no complete outputs, or older than the input), "changed" (made with other options
    or another model, or by a version that kept no record) or "same" (safe to skip)."""
    mtime = video.stat().st_mtime
    if not all(p.exists() and p.stat().st_mtime >= mtime for p in outputs.values()):
        return "missing"
    import json

    try:
        recorded = json.loads(sidecar_for(outputs).read_text())
    except (OSError, ValueError):
        return "changed"
    return "same" if recorded == settings else "changed"


def _write_sidecar(outputs: dict[str, Path], settings: dict[str, Any]) -> None:
    import json

    from fervideo.video import atomic_output

    with atomic_output(sidecar_for(outputs)) as tmp:
        tmp.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")


_worker_analyzer: Analyzer | None = None
_worker_progress: Any = None  # a multiprocessing queue to the parent's progress bar, or None

CRASHED = "the worker process died on this file twice (a decoder crash, or killed: out of memory?); the batch went on"
RERUN = "a worker process died while this file was in progress; it was re-run alone"


def _worker_signal(signum: int, frame: Any) -> None:
    """In a worker, Ctrl-C/SIGTERM only raise the flag that the frame loop checks between frames.

    Raising KeyboardInterrupt from the handler would land at an arbitrary point of the worker's
    main thread: once in ~10 runs it hit a ThreadPoolExecutor between starting a detection thread
    and registering it, and the worker then hung at exit waiting for that thread (and the batch
    with it). The check between frames is a safe point; the temporary outputs are removed there.
    """
    INTERRUPTED.set()


def _init_worker(options: Options, progress: Any = None) -> None:
    global _worker_analyzer, _worker_progress
    signal.signal(signal.SIGINT, _worker_signal)
    signal.signal(signal.SIGTERM, _worker_signal)
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


def _process_one(video: Path, outputs: dict[str, Path], skip: bool, bo: BatchOptions) -> dict[str, Any]:
    """Process one file in a worker and return its summary row; never raises for input errors."""
    from fervideo.outputs import plot_timeline, read_timeline, summarise

    row: dict[str, Any] = {"input": str(video), "status": "ok", "message": ""}
    try:
        check_interrupted()
        if skip:
            row["message"] = "up to date (skipped; --overwrite to redo)"
        else:
            assert _worker_analyzer is not None
            ticker = _FrameTicker(video)
            report = process_video(
                video,
                _worker_analyzer,
                timeline=outputs["timeline"],
                fmt=bo.fmt,
                annotated=outputs.get("annotated"),
                codec=bo.codec,
                progress=ticker,
                on_start=ticker.start,
            )
            ticker.flush()
            row["message"] = "; ".join(report.warnings)
        df = read_timeline(outputs["timeline"])
        row.update(summarise(df))
        if "plot" in outputs and not skip:
            plot_timeline(df, outputs["plot"], title=video.name, smoothed=_worker_analyzer.options.smooth_s > 0)  # type: ignore[union-attr]
        if not skip and bo.settings is not None:
            _write_sidecar(outputs, bo.settings)
    except FervideoError as e:
        row.update(status="error", message=e.problem)
    except (OSError, ValueError, RuntimeError) as e:  # a codec or file-system failure on one file
        row.update(status="error", message=f"{type(e).__name__}: {e}")
    return row


Job = tuple[Path, dict[str, Path], bool]


def _stop(workers: list[mp.process.BaseProcess], grace_s: float = 10.0) -> None:
    """Ask the workers to stop their current file (SIGTERM: they stop at the next frame and remove
    their temporary outputs); kill any that has not exited after ``grace_s`` (stuck in a decoder)."""
    for w in workers:
        w.terminate()
    deadline = time.monotonic() + grace_s
    alive = [w for w in workers if w.is_alive()]
    while alive and time.monotonic() < deadline:
        mp.connection.wait([w.sentinel for w in alive], timeout=max(0.0, deadline - time.monotonic()))
        alive = [w for w in alive if w.is_alive()]
    for w in alive:
        w.kill()


def _kill(workers: list[mp.process.BaseProcess]) -> None:
    """SIGKILL (a stopped or hung worker ignores SIGTERM) and wait until they are gone, so that
    their temporary outputs can be removed without a dying process still writing them."""
    for w in workers:
        w.kill()
    for w in workers:
        w.join(timeout=10)


def _rows_from_workers(jobs: list[Job], options: Options, bo: BatchOptions, progress: Any = None, poll: Any = None) -> Iterator[dict[str, Any]]:
    """Yield each file's summary row, the files running in ``bo.jobs`` worker processes.

    Files run in worker processes even with one job, so that a file which kills its process (a
    segfault in a decoder, the kernel's out-of-memory killer) costs only that file: the pool is
    restarted and the batch goes on. At most ``bo.jobs`` files are in flight, so when a pool
    breaks the suspects are known: each is re-run alone in a fresh worker, which finds the one that
    crashes (it dies again: an error row) and recovers the others, and a file that was only killed
    once (the out-of-memory killer picking a worker while other files ran) gets its result. With
    ``file_timeout_s``, a file still running after that long (a decoder stuck on a damaged file, a
    stalled network mount) is stopped and becomes an error row, so a long unattended batch cannot
    hang on one file. On Ctrl-C/SIGTERM the workers are told to stop their current file (which
    removes its temporary outputs) and the interrupt is re-raised.
    """
    ctx = mp.get_context("spawn")

    def new_pool(workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(options, progress))

    def clean(job: Job) -> None:
        for target in job[1].values():
            remove_partials(target)

    def crashed(job: Job) -> dict[str, Any]:
        clean(job)
        return {"input": str(job[0]), "status": "error", "message": CRASHED}

    def over_time(start: float) -> bool:
        return bo.file_timeout_s > 0 and time.monotonic() - start > bo.file_timeout_s

    def timed_out(job: Job) -> dict[str, Any]:
        clean(job)
        return {"input": str(job[0]), "status": "error", "message": f"did not finish within --file-timeout {bo.file_timeout_s:g} s (stopped)"}

    def alone(job: Job) -> dict[str, Any]:
        clean(job)  # what the killed worker left
        pool = new_pool(1)
        try:
            fut = pool.submit(_process_one, *job, bo)
            start = time.monotonic()
            while not fut.done():
                cf.wait([fut], timeout=0.2)
                check_interrupted()
                if poll is not None:
                    poll()
                if not fut.done() and over_time(start):
                    _kill(mp.active_children())
                    return timed_out(job)
            row = fut.result()
        except BrokenProcessPool:
            return crashed(job)
        except BaseException:
            _stop(mp.active_children())
            clean(job)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        row["message"] = "; ".join(m for m in (row["message"], RERUN) if m)
        return row

    todo = deque(jobs)
    while todo:
        pool = new_pool(bo.jobs)
        in_flight: dict[cf.Future[dict[str, Any]], Job] = {}
        started: dict[cf.Future[dict[str, Any]], float] = {}
        suspects: list[Job] = []
        try:
            while (todo or in_flight) and not suspects:
                while todo and len(in_flight) < bo.jobs:
                    job = todo.popleft()
                    fut = pool.submit(_process_one, *job, bo)
                    in_flight[fut], started[fut] = job, time.monotonic()
                done, _ = cf.wait(in_flight, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                check_interrupted()  # the CLI's first Ctrl-C/SIGTERM only sets the flag
                if poll is not None:
                    poll()
                for fut in done:
                    job = in_flight.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        suspects.append(job)
                late = [f for f in in_flight if over_time(started[f])] if not suspects else []
                if late:
                    # A worker cannot be told apart from its file here, so every worker is killed:
                    # the late files are errors, the others go back to the queue for a new pool.
                    _kill(mp.active_children())
                    for f in late:
                        yield timed_out(in_flight.pop(f))
                    todo.extendleft(reversed(list(in_flight.values())))
                    in_flight.clear()
                    break
            suspects.extend(in_flight.values())  # a broken pool fails every file it was running
        except BaseException:
            _stop(mp.active_children())
            pool.shutdown(wait=True, cancel_futures=True)
            for job in in_flight.values():  # and whatever a worker could not remove
                clean(job)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for job in suspects:
            yield alone(job)


def run_batch(directory: Path, out: Path, options: Options, bo: BatchOptions) -> int:
    """Process every video under ``directory`` into ``out``; returns the exit code (0 or 1)."""
    from tqdm import tqdm

    from fervideo.outputs import write_summary

    directory = Path(directory)
    if not directory.exists():
        raise InputError(directory, "no such directory")
    if not directory.is_dir():
        raise InputError(directory, "is a file, expected a folder of videos (use 'fervideo timeline' for one file)")
    options.validate()
    if bo.jobs < 1:
        raise UsageError(None, "--jobs must be at least 1")
    if bo.file_timeout_s < 0:
        raise UsageError(None, "--file-timeout must be 0 (no limit) or a positive number of seconds")
    # Load the models here once before starting workers: a bad --model is one error line and exit 4
    # (and no output folder), not a worker traceback per process.
    Analyzer(options).close()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(out, f"cannot create output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise OutputError(out, "output folder cannot be written (permission denied)")
    videos = find_videos(directory, bo.recursive, exclude=out.resolve())
    if not videos:
        raise InputError(directory, "no video files found" + ("" if bo.recursive else " (try --recursive)"))
    if not bo.recursive:
        nested = [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".") and p.resolve() != out.resolve() and find_videos(p, True)]
        if nested:
            names = ", ".join(p.name + "/" for p in nested[:3]) + (" ..." if len(nested) > 3 else "")
            print(f"fervideo: note: sub-folders {names} hold videos too; add --recursive to include them", file=sys.stderr)
    settings = run_settings(options, bo)
    jobs_list = []
    states = {"same": 0, "changed": 0, "missing": 0}
    for v in videos:
        outs = outputs_for(v, directory, out, bo)
        state = "missing" if bo.overwrite else resume_state(v, outs, settings)
        states[state] += 1
        jobs_list.append((v, outs, state == "same"))
    if states["same"] or states["changed"]:
        print(
            f"fervideo: resuming in {out}: {states['same']} file(s) up to date with the same options and model (skipped), "
            f"{states['changed']} made with other options or another model (redone), {states['missing']} new",
            file=sys.stderr,
        )
    bo.settings = settings
    rows: list[dict[str, Any]] = []
    summary = out / "summary.csv"
    bar = tqdm(total=len(jobs_list), desc="videos", unit="file", disable=bo.quiet, dynamic_ncols=True, position=0)
    frames_bar = tqdm(desc="frames", unit="frame", disable=bo.quiet, dynamic_ncols=True, position=1, leave=False)
    # An mp.Queue, not a SimpleQueue: a worker never blocks on it (put_nowait; the send happens in a
    # feeder thread), so a worker killed while sending cannot leave a lock that stalls the others.
    progress = None if bo.quiet else mp.get_context("spawn").Queue(maxsize=10_000)
    current = {"video": ""}

    def poll() -> None:
        """Move the workers' frame counts onto the per-file bar (called between waits)."""
        moved = False
        while progress is not None:
            try:
                kind, video, n = progress.get_nowait()
            except (queue.Empty, OSError, ValueError):
                break
            moved = True
            if kind == "start":
                current["video"] = video
                frames_bar.reset(total=n or None)
                frames_bar.set_description(Path(video).name, refresh=False)
            elif video == current["video"]:
                frames_bar.update(n)
        if moved:
            frames_bar.refresh()

    try:
        for row in _rows_from_workers(jobs_list, options, bo, progress, poll):
            poll()
            if row["input"] == current["video"] and row.get("frames"):
                # The file is done: show its frame count (its last progress message may still be
                # in the queue's feeder thread) and ignore late messages for it.
                frames_bar.n = frames_bar.total or int(row["frames"])
                frames_bar.refresh()
                current["video"] = ""
            rows.append(row)
            write_summary(rows, summary)
            if row["status"] == "ok" and row["message"] and not row["message"].startswith("up to date"):
                # Warnings (a video that ends early, a re-run after a crash) on the terminal too,
                # not only in summary.csv.
                for w in row["message"].split("; "):
                    tqdm.write(f"fervideo: warning: {w if row['input'] in w else row['input'] + ': ' + w}", file=sys.stderr)
            bar.update(1)
    finally:
        frames_bar.close()
        bar.close()
        if progress is not None:
            progress.cancel_join_thread()
            progress.close()
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        print(f"fervideo: error: {r['input']}: {r['message']}", file=sys.stderr)
    print(f"{summary}: {len(rows) - len(failed)} ok, {len(failed)} failed of {len(rows)} videos", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK
