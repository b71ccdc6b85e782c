"""``fervideo batch --ray ADDRESS``: the same batch on a Ray cluster.

One task per file, run by long-lived actors that load the models once (like the local worker
processes, one Analyser each); an actor asks for a GPU when ``--device gpu``. Everything else is the
local batch's: the same plan (discovery, resume rules, the ``run.json`` sidecars), the same
per-file code (:class:`fervideo.batch.worker.Worker`), the same atomic outputs and summary, so
a cluster run writes byte for byte what a local run writes.

Worker loss: an actor that dies mid-file (its node lost, the out-of-memory killer) is restarted by
Ray; the file is re-queued once on a live actor and, if it takes its actor down again, becomes an
error row with its temporary outputs removed. ``--file-timeout`` kills the actor running a late
file (Ray restarts it) and records an error row. Inputs and outputs are paths every node sees (a
shared filesystem) or fsspec URLs that every node can reach (:mod:`.store`). With ``--chunk-s`` a long
local file runs as chunks on several actors (:func:`fervideo.chunks.analyse_chunk`: detections
and probabilities, no ids) and one merge task that replays ids and smoothing in file order
(:meth:`fervideo.batch.worker.Worker.merge`), so its timeline is the one a single pass writes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from fervideo.batch.options import BatchOptions, FileRow, Job
from fervideo.batch.ray_run import ClusterRun, plan_tasks
from fervideo.errors import MissingExtraError, UsageError
from fervideo.options import Options

log = logging.getLogger(__name__)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingExtraError(None, "--ray needs Ray: pip install 'fervideo[ray]'") from None
    return ray


class FileActor:
    """A Ray actor: a :class:`~fervideo.batch.worker.Worker` (models loaded once), then one file,
    chunk or merge per call. (Signals are Ray's: it stops its workers itself.)"""

    def __init__(self, options: Options) -> None:
        from fervideo.batch.worker import Worker

        self.worker = Worker(options)

    def run(self, job: Job, bo: BatchOptions) -> FileRow:
        return self.worker.process(job, bo)

    def chunk(self, video: Any, start: int, stop: int | None) -> Any:
        return self.worker.chunk(video, start, stop)

    def merge(self, job: Job, bo: BatchOptions, *chunks: Any) -> FileRow:
        return self.worker.merge(job, bo, *chunks)

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
    """Yields one summary row per job (:meth:`rows`), the files running on the cluster's actors."""

    def __init__(self, options: Options, bo: BatchOptions, address: str, actors: int | None = None) -> None:
        self.ray = connect(address)
        self.options, self.bo = options, bo
        gpu = options.device == "gpu"
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        count = actors or (bo.jobs if bo.jobs > 1 else max(1, cpus))
        remote = self.ray.remote(num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=-1, max_task_retries=0)(FileActor)
        self.actors = [remote.remote(options) for _ in range(count)]

    def rows(self, jobs: list[Job]) -> Iterator[FileRow]:
        """Run ``jobs`` on the actors; one row per job, in completion order."""
        run = ClusterRun(self.ray, self.bo, plan_tasks(jobs, self.bo.chunk_s), list(self.actors))
        try:
            while run.todo or run.running:
                run.send_due_pings()
                run.dispatch()
                if run.todo and not run.has_workers():
                    yield from run.abandon("no Ray worker left to run this file")
                    break
                for ref in run.wait():
                    yield from run.finished(ref)
                run.stop_late_files()
        finally:
            run.cancel_running()
            for actor in self.actors:
                self.ray.kill(actor, no_restart=True)
