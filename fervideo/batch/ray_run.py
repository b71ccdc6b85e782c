"""The scheduling state of a ``batch --ray`` run: tasks (whole files, chunks, merges), the actors
idle, running or being restarted by Ray, and what to do when one of them finishes or dies.

Kept apart from :mod:`.ray_cluster` (connecting, the actors) so that the rules for worker loss,
re-runs and time limits read in one place; they mirror the local :mod:`.supervisor`'s.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fervideo.batch.options import BatchOptions, FileRow, Job
from fervideo.batch.supervisor import CRASHED, POLL_S, clean_job, error_row
from fervideo.errors import check_interrupted

log = logging.getLogger("fervideo.batch.ray_cluster")
RERUN = "a worker died while this file was in progress; it was re-run"
REVIVE_TRIES = 120  # pings 0.5 s apart: how long a restarting actor may take (a model load, a new node)


@dataclass
class Split:
    """A file running as chunks: their results (object refs, in file order; None until done)."""

    refs: list[Any]
    failed: bool = False  # an error row was given: its other chunks are dropped
    rerun: bool = False  # a chunk was re-run after its worker died


@dataclass
class Task:
    """One call to an actor: a whole file, one chunk of a file (``part``), or the merge of its chunks."""

    job: Job
    kind: str = "file"  # "file", "chunk" or "merge"
    part: int = 0
    bounds: tuple[int, int | None] = (0, None)
    attempt: int = 0
    split: Split | None = None  # the file's chunks, for a chunk or a merge

    @property
    def dropped(self) -> bool:
        """Its file already has an error row (another chunk failed)."""
        return self.split is not None and self.split.failed

    def submit(self, actor: Any, bo: BatchOptions) -> Any:
        if self.kind == "chunk":
            return actor.chunk.remote(self.job.video, *self.bounds)
        if self.kind == "merge":
            assert self.split is not None
            return actor.merge.remote(self.job, bo, *self.split.refs)
        return actor.run.remote(self.job, bo)


def split_file(video: Any, chunk_s: float) -> list[tuple[int, int | None]]:
    """The chunks of a local file (one, for a short file, a URL, or a file that does not probe:
    it then runs whole and its problem is reported as usual)."""
    from pathlib import Path

    from fervideo.batch.worker import FILE_ERRORS
    from fervideo.chunks import chunk_bounds
    from fervideo.video import probe

    if chunk_s <= 0 or not isinstance(video, Path):
        return [(0, None)]
    try:
        info = probe(video)
    except FILE_ERRORS:
        return [(0, None)]
    return chunk_bounds(info.frame_count_container, info.fps_float, chunk_s)


def plan_tasks(jobs: list[Job], chunk_s: float) -> deque[Task]:
    """Whole files, or with ``--chunk-s`` the chunks of long local files (their merges are
    queued when their chunks are done)."""
    todo: deque[Task] = deque()
    split_files = 0
    for job in jobs:
        bounds = [(0, None)] if job.skip else split_file(job.video, chunk_s)
        if len(bounds) == 1:
            todo.append(Task(job))
            continue
        split, split_files = Split([None] * len(bounds)), split_files + 1
        todo.extend(Task(job, "chunk", i, b, split=split) for i, b in enumerate(bounds))
    if split_files:
        log.info("%d file(s) split into chunks of %g s", split_files, chunk_s)
    return todo


class ClusterRun:
    """The state of one cluster run: tasks to send, tasks running, actors idle or restarting.

    An actor that died is not given work until it answers a ping again: calls made while Ray is
    restarting it can fail too, which would count a file killed once as killed twice.
    """

    def __init__(self, ray: Any, bo: BatchOptions, todo: deque[Task], actors: list[Any]) -> None:
        self.ray, self.bo, self.todo, self.idle = ray, bo, todo, actors
        self.running: dict[Any, tuple[Task, Any, float]] = {}  # ref -> (task, actor, start)
        self.pings: dict[Any, tuple[Any, int]] = {}  # ping ref -> (actor, tries)
        self.waiting: list[tuple[float, Any, int]] = []  # (not before, actor, tries): pings to send
        self.timed_out: set[Any] = set()

    def has_workers(self) -> bool:
        return bool(self.idle or self.running or self.pings or self.waiting)

    def revive(self, actor: Any, tries: int) -> None:
        """Ping a dead actor until Ray has restarted it (or give up on it)."""
        if tries < REVIVE_TRIES:
            self.waiting.append((time.monotonic() + (0.5 if tries else 0.0), actor, tries))
        else:
            log.warning("a Ray worker did not come back after %d s; going on without it", int(REVIVE_TRIES * 0.5))

    def send_due_pings(self) -> None:
        now = time.monotonic()
        for item in [w for w in self.waiting if w[0] <= now]:
            self.waiting.remove(item)
            self.pings[item[1].pid.remote()] = (item[1], item[2] + 1)

    def dispatch(self) -> None:
        while self.todo and self.idle:
            task = self.todo.popleft()
            if task.dropped:
                continue
            actor = self.idle.pop()
            self.running[task.submit(actor, self.bo)] = (task, actor, time.monotonic())

    def fail(self, task: Task, message: str) -> FileRow:
        if task.split is not None:
            task.split.failed = True  # its other chunks are dropped, not reported again
        return error_row(task.job, message)

    def abandon(self, message: str) -> Iterator[FileRow]:
        """Every worker is gone for good: an error row for each file not yet run."""
        while self.todo:
            task = self.todo.popleft()
            if not task.dropped:
                yield self.fail(task, message)

    def wait(self) -> list[Any]:
        """The refs (tasks or pings) that finished within one poll."""
        refs = list(self.running) + list(self.pings)
        if refs:
            done, _ = self.ray.wait(refs, num_returns=1, timeout=POLL_S)
        else:  # only restarting workers, their next ping not due yet
            done = []
            time.sleep(POLL_S)
        check_interrupted()
        return done

    def finished(self, ref: Any) -> Iterator[FileRow]:
        """Handle one finished ref: a ping (the actor is back, or still down), or a task's result or failure."""
        ray = self.ray
        if ref in self.pings:
            actor, tries = self.pings.pop(ref)
            try:
                ray.get(ref)
                self.idle.append(actor)
            except ray.exceptions.RayActorError:
                self.revive(actor, tries)
            return
        task, actor, _ = self.running.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError:
            self.revive(actor, 0)
            yield from self._worker_died(task, ref)
            return
        except ray.exceptions.RayTaskError as e:  # an unexpected exception inside the task
            self.idle.append(actor)
            if not task.dropped:
                yield self.fail(task, f"{type(e.cause).__name__}: {e.cause}")
            return
        except ray.exceptions.RayError as e:  # e.g. a chunk's results lost with its node
            self.idle.append(actor)
            if not task.dropped:
                yield self.fail(task, f"{type(e).__name__}: the cluster lost this file's partial results; run the batch again to redo it")
            return
        self.idle.append(actor)
        if task.dropped:
            return
        if task.kind == "chunk":
            assert task.split is not None
            task.split.refs[task.part] = ref
            if all(r is not None for r in task.split.refs):
                self.todo.appendleft(Task(task.job, "merge", split=task.split))
            return
        if task.attempt or (task.split is not None and task.split.rerun):
            result.note(RERUN)
        yield result

    def _worker_died(self, task: Task, ref: Any) -> Iterator[FileRow]:
        """A task's actor died: its time ran out, or re-run it once, or it is an error row."""
        if task.dropped:
            return
        if ref in self.timed_out:
            yield self.fail(task, f"did not finish within --file-timeout {self.bo.file_timeout_s:g} s (stopped)")
        elif task.attempt == 0:
            log.warning("%s: the worker died while this file was in progress; re-queued", task.job.video)
            if task.kind != "chunk":
                clean_job(task.job)
            task.attempt = 1
            if task.split is not None:
                task.split.rerun = True
            self.todo.append(task)
        else:
            yield self.fail(task, CRASHED)

    def stop_late_files(self) -> None:
        """``--file-timeout``: kill the actor of a file running too long (Ray restarts it; the task fails)."""
        if self.bo.file_timeout_s <= 0:
            return
        now = time.monotonic()
        for ref, (_task, actor, start) in self.running.items():
            if ref not in self.timed_out and now - start > self.bo.file_timeout_s:
                self.timed_out.add(ref)
                self.ray.kill(actor, no_restart=False)

    def cancel_running(self) -> None:
        for ref, (task, *_rest) in self.running.items():
            self.ray.cancel(ref, force=True)
            if task.kind != "chunk":
                clean_job(task.job)
