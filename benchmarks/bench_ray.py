"""Batch throughput, local worker processes vs a local Ray cluster, and Ray's per-file overhead.

    python benchmarks/bench_ray.py [--files 12] [--cpus 2]

A folder of ``--files`` copies of the bundled ``two_astronauts.mp4`` (50 frames, two faces) is
processed by ``run_batch`` locally (``--jobs 1`` and ``--jobs 2``) and on a local Ray cluster with
``--cpus`` CPUs (actors = CPUs), each Ray and ``--jobs 2`` run also with a ``file://`` URL as output
(the fsspec path: staging, upload under a temporary name, move); the cluster's start-up is timed apart (a real cluster is started once
for many batches). Per-file cost is the slope between a folder of N files and one of 3N, fixed cost the intercept
(worker start-up and model loading for local workers and Ray actors alike).
Each figure is the best of 2 runs; outputs are checked to be identical.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from fervideo.batch import BatchOptions, run_batch
from fervideo.batch.ray_cluster import connect
from fervideo.options import Options

ROOT = Path(__file__).resolve().parent.parent


def timed(src: Path, out: Path, jobs: int, ray: str | None, url: bool = False) -> float:
    best = float("inf")
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        res = run_batch(src, f"file://{out}" if url else out, Options(), BatchOptions(jobs=jobs, quiet=True), ray_address=ray)
        best = min(best, time.perf_counter() - t)
        assert not res.failed, res.failed
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8, help="the small folder; the large one has 3x as many")
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sizes = (args.files, 3 * args.files)
        for n in sizes:
            src = tmp / f"in{n}"
            src.mkdir()
            for i in range(n):
                shutil.copy(ROOT / "sample_videos" / "two_astronauts.mp4", src / f"clip{i:03d}.mp4")
        print(f"# batch: local vs Ray, folders of {sizes[0]} and {sizes[1]} files of 50 frames, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
        t = time.perf_counter()
        connect("local", num_cpus=args.cpus)
        startup = time.perf_counter() - t
        runs = {
            "local --jobs 1": (1, None, False),
            "local --jobs 2": (2, None, False),
            "local -j 2, URL": (2, None, True),  # --out file://...: staging + upload + move per output
            f"ray, {args.cpus} actors": (args.cpus, "local", False),
            f"ray, {args.cpus}, URL": (args.cpus, "local", True),
        }
        for label, (jobs, ray, url) in runs.items():
            t_small, t_large = (timed(tmp / f"in{n}", tmp / f"out-{label}-{n}", jobs, ray, url) for n in sizes)
            per_file = (t_large - t_small) / (sizes[1] - sizes[0])
            fixed = t_small - per_file * sizes[0]
            print(f"{label:<16} {sizes[1] / t_large:5.2f} files/s on {sizes[1]} files; per file {per_file * 1000:5.0f} ms, fixed {fixed:5.1f} s a run")
        a = tmp / f"out-local --jobs 1-{sizes[0]}"
        same = True
        for other in ("local -j 2, URL", f"ray, {args.cpus} actors", f"ray, {args.cpus}, URL"):
            b = tmp / f"out-{other}-{sizes[0]}"
            same = same and sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
            same = same and all((a / p.name).read_bytes() == p.read_bytes() for p in b.iterdir())
        print(f"Ray cluster start-up (once per cluster, not per batch): {startup:.1f} s; outputs identical to local: {same}")


if __name__ == "__main__":
    main()
