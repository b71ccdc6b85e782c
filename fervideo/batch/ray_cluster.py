"""``fervideo batch --ray ADDRESS``: the same batch on a Ray cluster.

One task per file, run by long-lived actors that load the models once (like the local worker
processes, one Analyzer each); an actor asks for a GPU when ``--device gpu``. Everything else is the
local batch's: the same plan (discovery, resume rules, the ``run.json`` sidecars), the same
per-file code (:func:`fervideo.batch.worker.process_one`), the same atomic outputs and summary, so
a cluster run writes byte for byte what a local run writes.

Worker loss: an actor that dies mid-file (its node lost, the out-of-memory killer) is restarted by
Ray; the file is re-queued once on a live actor and, if it takes its actor down again, becomes an
error row with its temporary outputs removed. ``--file-timeout`` kills the actor running a late
file (Ray restarts it) and records an error row. Inputs and outputs are paths every node sees (a
shared filesystem) or fsspec URLs that every node can reach (:mod:`.store`). With ``--chunk-s`` a long
local file runs as chunks on several actors (:func:`fervideo.pipeline.analyse_chunk`: detections
and probabilities, no ids) and one merge task that replays ids and smoothing in file order
(:func:`fervideo.batch.worker.merge_chunks`), so its timeline is the one a single pass writes.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fervideo.batch.options import BatchOptions, Job
from fervideo.batch.supervisor import CRASHED, POLL_S, clean_job, error_row
from fervideo.errors import MissingExtraError, UsageError, check_interrupted
from fervideo.pipeline import Options

log = logging.getLogger(__name__)
RERUN = "a worker died while this file was in progress; it was re-run"
REVIVE_TRIES = 120  # pings 0.5 s apart: how long a restarting actor may take (a model load, a new node)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError(None, "--ray needs Ray: pip install 'fervideo[ray]'") from None
    return ray


class FileActor:
    """A Ray actor: one Analyzer (models loaded once), then one file, chunk or merge per call."""

    def __init__(self, options: Options) -> None:
        from fervideo.batch.worker import init_worker

        init_worker(options, None, handle_signals=False)

    def run(self, video: Any, outputs: dict[str, Any], skip: bool, bo: BatchOptions) -> dict[str, Any]:
        from fervideo.batch.worker import process_one

        return process_one(video, outputs, skip, bo)

    def chunk(self, video: Any, start: int, stop: int | None) -> Any:
        from fervideo.batch.worker import process_chunk

        return process_chunk(video, start, stop)

    def merge(self, video: Any, outputs: dict[str, Any], bo: BatchOptions, *chunks: Any) -> dict[str, Any]:
        from fervideo.batch.worker import merge_chunks

        return merge_chunks(video, outputs, bo, *chunks)

    def pid(self) -> int:
        return os.getpid()


@dataclass
class _Split:
    """A file running as chunks: their results (object refs, in file order; None until done)."""

    refs: list[Any]
    failed: bool = False  # an error row was given: its other chunks are dropped
    rerun: bool = False  # a chunk was re-run after its worker died


@dataclass
class _Task:
    """One call to an actor: a whole file, one chunk of a file (``part``), or the merge of its chunks."""

    job: Job
    kind: str = "file"  # "file", "chunk" or "merge"
    part: int = 0
    bounds: tuple[int, int | None] = (0, None)
    attempt: int = 0
    split: _Split | None = None  # the file's chunks, for a chunk or a merge

    @property
    def dropped(self) -> bool:
        """Its file already has an error row (another chunk failed)."""
        return self.split is not None and self.split.failed

    def submit(self, actor: Any, bo: BatchOptions) -> Any:
        if self.kind == "chunk":
            return actor.chunk.remote(self.job[0], *self.bounds)
        if self.kind == "merge":
            assert self.split is not None
            return actor.merge.remote(self.job[0], self.job[1], bo, *self.split.refs)
        return actor.run.remote(*self.job, bo)


def split_file(video: Any, chunk_s: float) -> list[tuple[int, int | None]]:
    """The chunks of a local file (one, for a short file, a URL, or a file that does not probe:
    it then runs whole and its problem is reported as usual)."""
    from pathlib import Path

    from fervideo.batch.worker import FILE_ERRORS
    from fervideo.pipeline import chunk_bounds
    from fervideo.video import probe

    if chunk_s <= 0 or not isinstance(video, Path):
        return [(0, None)]
    try:
        info = probe(video)
    except FILE_ERRORS:
        return [(0, None)]
    return chunk_bounds(info.frame_count_container, info.fps_float, chunk_s)


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Join the cluster at ``address`` ("local" starts one on this machine; "auto" finds a running
    one, as ``ray start --head`` leaves it; or ``ray://host:10001``)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(num_cpus=num_cpus, **kwargs)
    else:
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise UsageError(None, f"--ray {address}: cannot connect to a Ray cluster ({str(e).splitlines()[0]})") from None
    return ray


class RaySupervisor:
    """Yields one summary row per job, the files running on the cluster's actors."""

    def __init__(self, options: Options, bo: BatchOptions, address: str, actors: int | None = None) -> None:
        self.ray = connect(address)
        self.options, self.bo = options, bo
        gpu = options.device == "gpu"
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        count = actors or (bo.jobs if bo.jobs > 1 else max(1, cpus))
        remote = self.ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=-1, max_task_retries=0)(FileActor)
        self.actors = [remote.remote(options) for _ in range(count)]

    _clean = staticmethod(clean_job)
    _error = staticmethod(error_row)

    def _tasks(self, jobs: list[Job]) -> deque[_Task]:
        """Whole files, or with ``--chunk-s`` the chunks of long local files (their merges are
        queued when their chunks are done)."""
        todo: deque[_Task] = deque()
        split_files = 0
        for job in jobs:
            bounds = [(0, None)] if job[2] else split_file(job[0], self.bo.chunk_s)
            if len(bounds) == 1:
                todo.append(_Task(job))
                continue
            split, split_files = _Split([None] * len(bounds)), split_files + 1
            todo.extend(_Task(job, "chunk", i, b, split=split) for i, b in enumerate(bounds))
        if split_files:
            log.info("%d file(s) split into chunks of %g s", split_files, self.bo.chunk_s)
        return todo

    def rows(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        ray = self.ray
        todo = self._tasks(jobs)
        idle = list(self.actors)
        running: dict[Any, tuple[_Task, Any, float]] = {}  # ref -> (task, actor, start)
        # An actor that died is not given work until it answers again: calls made while Ray is
        # restarting it can fail too, which would count a file killed once as killed twice.
        pings: dict[Any, tuple[Any, int]] = {}  # ping ref -> (actor, tries)
        waiting: list[tuple[float, Any, int]] = []  # (not before, actor, tries): pings to send
        timed_out: set[Any] = set()

        def revive(actor: Any, tries: int) -> None:
            if tries < REVIVE_TRIES:
                waiting.append((time.monotonic() + (0.5 if tries else 0.0), actor, tries))
            else:
                log.warning("a Ray worker did not come back after %d s; going on without it", int(REVIVE_TRIES * 0.5))

        def fail(task: _Task, message: str) -> dict[str, Any]:
            if task.split is not None:
                task.split.failed = True  # its other chunks are dropped, not reported again
            return self._error(task.job, message)

        try:
            while todo or running:
                now = time.monotonic()
                for item in [w for w in waiting if w[0] <= now]:
                    waiting.remove(item)
                    pings[item[1].pid.remote()] = (item[1], item[2] + 1)
                while todo and idle:
                    task = todo.popleft()
                    if task.dropped:
                        continue
                    actor = idle.pop()
                    ref = task.submit(actor, self.bo)
                    running[ref] = (task, actor, time.monotonic())
                if todo and not (idle or running or pings or waiting):
                    while todo:  # every worker is gone for good
                        task = todo.popleft()
                        if not task.dropped:
                            yield fail(task, "no Ray worker left to run this file")
                    break
                refs = list(running) + list(pings)
                if refs:
                    done, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
                else:  # only restarting workers, their next ping not due yet
                    done = []
                    time.sleep(POLL_S)
                check_interrupted()
                for ref in done:
                    if ref in pings:
                        actor, tries = pings.pop(ref)
                        try:
                            ray.get(ref)
                            idle.append(actor)
                        except ray.exceptions.RayActorError:
                            revive(actor, tries)
                        continue
                    task, actor, _ = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        revive(actor, 0)
                        if task.dropped:
                            continue
                        if ref in timed_out:
                            yield fail(task, f"did not finish within --file-timeout {self.bo.file_timeout_s:g} s (stopped)")
                        elif task.attempt == 0:
                            log.warning("%s: the worker died while this file was in progress; re-queued", task.job[0])
                            if task.kind != "chunk":
                                self._clean(task.job)
                            task.attempt = 1
                            if task.split is not None:
                                task.split.rerun = True
                            todo.append(task)
                        else:
                            yield fail(task, CRASHED)
                        continue
                    except ray.exceptions.RayTaskError as e:  # an unexpected exception inside the task
                        idle.append(actor)
                        if not task.dropped:
                            yield fail(task, f"{type(e.cause).__name__}: {e.cause}")
                        continue
                    except ray.exceptions.RayError as e:  # e.g. a chunk's results lost with its node
                        idle.append(actor)
                        if not task.dropped:
                            yield fail(task, f"{type(e).__name__}: the cluster lost this file's partial results; run the batch again to redo it")
                        continue
                    idle.append(actor)
                    if task.dropped:
                        continue
                    if task.kind == "chunk":
                        assert task.split is not None
                        task.split.refs[task.part] = ref
                        if all(r is not None for r in task.split.refs):
                            todo.appendleft(_Task(task.job, "merge", split=task.split))
                        continue
                    if task.attempt or (task.split is not None and task.split.rerun):
                        result["message"] = "; ".join(m for m in (result["message"], RERUN) if m)
                    yield result
                if self.bo.file_timeout_s > 0:
                    now = time.monotonic()
                    for ref, (_task, actor, start) in running.items():
                        if ref not in timed_out and now - start > self.bo.file_timeout_s:
                            timed_out.add(ref)
                            ray.kill(actor, no_restart=False)  # Ray restarts it; the task fails
        finally:
            for ref, (task, *_rest) in running.items():
                ray.cancel(ref, force=True)
                if task.kind != "chunk":
                    self._clean(task.job)
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
