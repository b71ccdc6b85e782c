"""What ``batch --ray --chunk-s`` can gain: the chunks of one long file, timed one after another.

    python benchmarks/bench_chunks.py [--seconds 120] [--model fast] [--parts 2 4 8]

A clip of ``--seconds`` at 25 fps, 640x360, is made from the bundled astronaut clip (looped). It is
analysed in one pass (``Analyser.analyse``, the timeline's work) and then as 2, 4, 8 chunks with
``analyse_chunk`` plus the ``replay`` merge, each chunk timed alone, on this machine, in one run.
Printed per split: the longest chunk (the critical path when each chunk has a node to itself), the
projected speed-up (one pass / (longest chunk + merge)), and the total work against one pass (the
price: each chunk decodes the file from its start). Decode-only fps is the baseline that bounds it.
The chunked timeline is checked to equal the one-pass timeline.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2

from fervideo.chunks import analyse_chunk, chunk_bounds, replay
from fervideo.outputs.timeline import frame_rows
from fervideo.pipeline import Analyser, Options
from fervideo.streams import open_reader
from fervideo.video import FrameReader, open_writer, probe

ROOT = Path(__file__).resolve().parent.parent


def make_clip(path: Path, seconds: float) -> Path:
    cap = cv2.VideoCapture(str(ROOT / "sample_videos" / "astronaut_pan.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA))
    n = int(seconds * 25)
    with open_writer(path, 640, 360, Fraction(25), codec="h264") as w:
        for i in range(n):
            w.write(frames[i % len(frames)], i / 25)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--model", default="fast")
    ap.add_argument("--parts", type=int, nargs="+", default=[2, 4, 8])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        clip = make_clip(Path(d) / "long.mp4", args.seconds)
        info = probe(clip)
        analyser = Analyser(Options(model=args.model))
        t = time.perf_counter()
        n = sum(1 for _ in FrameReader(clip))
        decode = time.perf_counter() - t
        t = time.perf_counter()
        reader = open_reader(clip)
        whole = [row for r in analyser.analyse(reader, parallel=True) for row in frame_rows(r, False)]
        one_pass = time.perf_counter() - t
        print(f"# chunks of one {args.seconds:g} s clip (640x360, {n} frames), model {args.model}, {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"decode-only {n / decode:6.0f} fps; one pass {n / one_pass:6.0f} fps ({one_pass:5.1f} s); bound on the speed-up: {one_pass / decode:4.1f}x")
        print(f"{'chunks':>6} {'longest':>8} {'merge':>6} {'speed-up':>9} {'work':>6}")
        for parts in args.parts:
            bounds = chunk_bounds(info.frame_count_container, info.fps_float, args.seconds / parts)
            chunks, times = [], []
            for start, stop in bounds:
                t = time.perf_counter()
                chunks.append(analyse_chunk(clip, analyser, start, stop))
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            rows = [row for r in replay(analyser, chunks) for row in frame_rows(r, False)]
            merge = time.perf_counter() - t
            assert rows == whole, "chunked timeline differs from the one pass"
            speedup = one_pass / (max(times) + merge)
            print(f"{len(bounds):>6} {max(times):7.1f}s {merge:5.2f}s {speedup:8.2f}x {sum(times) / one_pass:5.2f}x")


if __name__ == "__main__":
    main()
