"""Run the batch's files in worker processes and survive what files do to them.

Files run in worker processes even with one job, so that a file which kills its process (a segfault
in a decoder, the kernel's out-of-memory killer) costs only that file: the pool is restarted and the
batch goes on. At most ``jobs`` files are in flight, so when a pool breaks the suspects are known:
each is re-run alone in a fresh worker, which finds the one that crashes (it dies again: an error
row) and recovers the others, and a file that was only killed once (the out-of-memory killer
picking a worker while other files ran) gets its result. With ``file_timeout_s``, a file still
running after that long (a decoder stuck on a damaged file, a stalled network mount) is stopped
and becomes an error row, so a long unattended batch cannot hang on one file. On Ctrl-C/SIGTERM
the workers are told to stop their current file (which removes its temporary outputs) and the
interrupt is re-raised.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import multiprocessing.connection
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from fervideo.batch import store
from fervideo.batch.options import BatchOptions, FileRow, Job
from fervideo.batch.worker import init_worker, process_one
from fervideo.errors import check_interrupted
from fervideo.options import Options

CRASHED = "the worker process died on this file twice (a decoder crash, or killed: out of memory?); the batch went on"
RERUN = "a worker process died while this file was in progress; it was re-run alone"
POLL_S = 0.2  # how often the supervisor checks interrupts, time limits and progress


def stop_workers(workers: list[mp.process.BaseProcess], grace_s: float = 10.0) -> None:
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


def kill_workers(workers: list[mp.process.BaseProcess]) -> None:
    """SIGKILL (a stopped or hung worker ignores SIGTERM) and wait until they are gone, so that
    their temporary outputs can be removed without a dying process still writing them."""
    for w in workers:
        w.kill()
    for w in workers:
        w.join(timeout=10)


def pool_workers(pool: cf.ProcessPoolExecutor) -> list[mp.process.BaseProcess]:
    """The pool's own worker processes, and nothing else: ``mp.active_children()`` would also list
    a library caller's own processes, which a time-out or an interrupt must never kill."""
    return list((getattr(pool, "_processes", None) or {}).values())


def clean_job(job: Job) -> None:
    """Remove the temporary outputs a stopped or killed worker left for this job."""
    for target in job.outputs.values():
        store.remove_partials(target)


def error_row(job: Job, message: str) -> FileRow:
    """The summary row of a job that did not finish (its temporary outputs removed)."""
    clean_job(job)
    return FileRow.error(job.video, message)


class Supervisor:
    """Yields one summary row per job (:meth:`rows`), whatever happens to the workers."""

    def __init__(self, options: Options, bo: BatchOptions, progress: Any = None, poll: Callable[[], None] | None = None) -> None:
        self.options, self.bo, self.progress = options, bo, progress
        self.poll = poll or (lambda: None)
        self.ctx = mp.get_context("spawn")

    # ---------------------------------------------------------------- helpers

    def _pool(self, workers: int) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(workers, mp_context=self.ctx, initializer=init_worker, initargs=(self.options, self.progress))

    def _submit(self, pool: cf.ProcessPoolExecutor, job: Job) -> cf.Future[FileRow]:
        return pool.submit(process_one, job, self.bo)

    _clean = staticmethod(clean_job)
    _error = staticmethod(error_row)

    def _late(self, start: float) -> bool:
        return self.bo.file_timeout_s > 0 and time.monotonic() - start > self.bo.file_timeout_s

    def _timed_out(self, job: Job) -> FileRow:
        return self._error(job, f"did not finish within --file-timeout {self.bo.file_timeout_s:g} s (stopped)")

    def _tick(self) -> None:
        check_interrupted()  # the CLI's first Ctrl-C/SIGTERM only sets the flag
        self.poll()

    # ---------------------------------------------------------------- running

    def _alone(self, job: Job) -> FileRow:
        """Re-run one suspect file in a fresh single worker: its result, or an error row."""
        self._clean(job)  # what the killed worker left
        pool = self._pool(1)
        try:
            fut = self._submit(pool, job)
            start = time.monotonic()
            while not fut.done():
                cf.wait([fut], timeout=POLL_S)
                self._tick()
                if not fut.done() and self._late(start):
                    kill_workers(pool_workers(pool))
                    return self._timed_out(job)
            row = fut.result()
        except BrokenProcessPool:
            return self._error(job, CRASHED)
        except BaseException:
            stop_workers(pool_workers(pool))
            self._clean(job)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return row.note(RERUN)

    def rows(self, jobs: list[Job]) -> Iterator[FileRow]:
        """Run ``jobs`` with at most ``bo.jobs`` in flight; one row per job, in completion order."""
        todo = deque(jobs)
        while todo:
            suspects: list[Job] = []
            yield from self._pool_round(todo, suspects)
            for job in suspects:
                yield self._alone(job)

    def _pool_round(self, todo: deque[Job], suspects: list[Job]) -> Iterator[FileRow]:
        """Run jobs from ``todo`` in one pool until it is empty, the pool breaks (its files go to
        ``suspects``) or a file overruns its time (all workers killed; the others re-queued)."""
        pool = self._pool(self.bo.jobs)
        in_flight: dict[cf.Future[FileRow], Job] = {}
        started: dict[cf.Future[FileRow], float] = {}
        try:
            while (todo or in_flight) and not suspects:
                while todo and len(in_flight) < self.bo.jobs:
                    job = todo.popleft()
                    fut = self._submit(pool, job)
                    in_flight[fut], started[fut] = job, time.monotonic()
                done, _ = cf.wait(in_flight, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
                self._tick()
                for fut in done:
                    job = in_flight.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        suspects.append(job)
                late = [f for f in in_flight if self._late(started[f])] if not suspects else []
                if late:
                    # A worker cannot be told apart from its file here, so every worker is killed:
                    # the late files are errors, the others go back to the queue for a new pool.
                    kill_workers(pool_workers(pool))
                    for f in late:
                        yield self._timed_out(in_flight.pop(f))
                    todo.extendleft(reversed(list(in_flight.values())))
                    in_flight.clear()
                    return
            suspects.extend(in_flight.values())  # a broken pool fails every file it was running
        except BaseException:
            stop_workers(pool_workers(pool))
            pool.shutdown(wait=True, cancel_futures=True)
            for job in in_flight.values():  # and whatever a worker could not remove
                self._clean(job)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
