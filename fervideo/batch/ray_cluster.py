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
shared filesystem) or fsspec URLs that every node can reach (:mod:`.store`). Files are not chunked (a
long file is one task): face ids and smoothing carry state across frames and seeking is not
frame-exact for every codec, so identical chunked timelines would need each chunk decoded from the
file's start, which caps the gain (README, "Many machines").
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
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
    """A Ray actor: one Analyzer (models loaded once), then one file per call."""

    def __init__(self, options: Options) -> None:
        from fervideo.batch.worker import init_worker

        init_worker(options, None, handle_signals=False)

    def run(self, video: Any, outputs: dict[str, Any], skip: bool, bo: BatchOptions) -> dict[str, Any]:
        from fervideo.batch.worker import process_one

        return process_one(video, outputs, skip, bo)

    def pid(self) -> int:
        return os.getpid()


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

    def rows(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        ray = self.ray
        todo: deque[tuple[Job, int]] = deque((job, 0) for job in jobs)
        idle = list(self.actors)
        running: dict[Any, tuple[Job, int, Any, float]] = {}  # ref -> (job, attempt, actor, start)
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

        try:
            while todo or running:
                now = time.monotonic()
                for item in [w for w in waiting if w[0] <= now]:
                    waiting.remove(item)
                    pings[item[1].pid.remote()] = (item[1], item[2] + 1)
                while todo and idle:
                    (job, attempt), actor = todo.popleft(), idle.pop()
                    ref = actor.run.remote(*job, self.bo)
                    running[ref] = (job, attempt, actor, time.monotonic())
                if todo and not (idle or running or pings or waiting):
                    while todo:  # every worker is gone for good
                        yield self._error(todo.popleft()[0], "no Ray worker left to run this file")
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
                    job, attempt, actor, _ = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        revive(actor, 0)
                        if ref in timed_out:
                            yield self._error(job, f"did not finish within --file-timeout {self.bo.file_timeout_s:g} s (stopped)")
                        elif attempt == 0:
                            log.warning("%s: the worker died while this file was in progress; re-queued", job[0])
                            self._clean(job)
                            todo.append((job, 1))
                        else:
                            yield self._error(job, CRASHED)
                        continue
                    except ray.exceptions.RayTaskError as e:  # an unexpected exception inside the task
                        idle.append(actor)
                        yield self._error(job, f"{type(e.cause).__name__}: {e.cause}")
                        continue
                    idle.append(actor)
                    if attempt:
                        row["message"] = "; ".join(m for m in (row["message"], RERUN) if m)
                    yield row
                if self.bo.file_timeout_s > 0:
                    now = time.monotonic()
                    for ref, (_job, _attempt, actor, start) in running.items():
                        if ref not in timed_out and now - start > self.bo.file_timeout_s:
                            timed_out.add(ref)
                            ray.kill(actor, no_restart=False)  # Ray restarts it; the task fails
        finally:
            for ref, (job, *_rest) in running.items():
                ray.cancel(ref, force=True)
                self._clean(job)
            for actor in self.actors:
                ray.kill(actor, no_restart=True)
