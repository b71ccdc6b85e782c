"""Batch throughput, local worker processes vs a local Ray cluster, and Ray's per-file overhead.

    python benchmarks/bench_ray.py [--files 12] [--cpus 2]

A folder of ``--files`` copies of the bundled ``two_astronauts.mp4`` (50 frames, two faces) is
processed by ``run_batch`` locally (``--jobs 1`` and ``--jobs 2``) and on a local Ray cluster with
``--cpus`` CPUs (actors = CPUs); the cluster's start-up is timed apart (a real cluster is started once
for many batches). Per-file overhead = (Ray wall - local wall at the same parallelism) / files.
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
from fervideo.pipeline import Options

ROOT = Path(__file__).resolve().parent.parent


def timed(src: Path, out: Path, jobs: int, ray: str | None) -> float:
    best = float("inf")
    for _ in range(2):
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        res = run_batch(src, out, Options(), BatchOptions(jobs=jobs, quiet=True), ray_address=ray)
        best = min(best, time.perf_counter() - t)
        assert not res.failed, res.failed
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "in"
        src.mkdir()
        for i in range(args.files):
            shutil.copy(ROOT / "sample_videos" / "two_astronauts.mp4", src / f"clip{i:03d}.mp4")
        print(f"# batch: local vs Ray, {args.files} files of 50 frames, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}")
        local = {j: timed(src, tmp / f"local{j}", j, None) for j in (1, 2)}
        t = time.perf_counter()
        connect("local", num_cpus=args.cpus)
        startup = time.perf_counter() - t
        ray_s = timed(src, tmp / "ray", args.cpus, "local")
        same = all((tmp / "local1" / p.name).read_bytes() == p.read_bytes() for p in (tmp / "ray").iterdir())
        for j, s in local.items():
            print(f"local --jobs {j}: {s:6.1f} s, {args.files / s:5.2f} files/s")
        print(f"ray ({args.cpus} actors): {ray_s:6.1f} s, {args.files / ray_s:5.2f} files/s  (+ {startup:.1f} s cluster start-up, once)")
        j = min(args.cpus, 2)
        print(f"per-file overhead of Ray vs local --jobs {j}: {(ray_s - local[j]) / args.files * 1000:+.0f} ms; outputs identical: {same}")


if __name__ == "__main__":
    main()
