"""Classifier faces/s, timeline and annotate fps per model tier, precision and device, against decode-only in the same run.

    python benchmarks/bench_devices.py [--tiers fast accurate] [--precisions int8 float32] [--devices cpu torch-cpu gpu] [--no-annotate]

Precisions (``--precision``, the CPU path only): ``int8`` (full-integer models, models/README_int8.md)
and ``float32``; the other devices run the float TFLite file's graph in PyTorch.

Devices: ``cpu`` (TFLite, the default path), ``torch-cpu`` (the GPU code path on the CPU's
PyTorch: what CI tests), ``gpu`` (PyTorch on CUDA; only where one is visible). Clips: a 640x360
clip (``single_face.mp4`` of ../shared, or the bundled sample) and the same frames scaled to
1280x720, written to a temporary file by this script. The ``fer`` package runs on the same clips in
a venv of its own (``bench_fer.py``; ``--no-fer`` leaves it out). Every figure is the best of 3 runs (faces/s: of 5, after a warm-up pass).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fervideo.emotions.classifier import make_classifier
from fervideo.emotions.torch_net import cuda_available
from fervideo.pipeline import Analyser, Options, process_video
from fervideo.video import FrameReader, open_writer

ROOT = Path(__file__).resolve().parent.parent

SHARED = Path(os.environ.get("FERVIDEO_SHARED", ROOT.parent / "shared")) / "videos"


def best(fn: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def scaled_copy(src: Path, out: Path, size: tuple[int, int]) -> Path:
    reader = FrameReader(src)
    with open_writer(out, size[0], size[1], reader.info.fps) as w:
        for _, t, frame in reader:
            w.write(cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR), t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiers", nargs="*", default=["fast", "accurate"])
    ap.add_argument("--devices", nargs="*", default=None)
    ap.add_argument("--precisions", nargs="*", default=["int8", "float32"])
    ap.add_argument("--faces", type=int, default=2048)
    ap.add_argument("--no-annotate", action="store_true", help="timeline fps only")
    ap.add_argument("--no-fer", action="store_true", help="leave out the fer package's row (bench_fer.py installs it in a venv of its own)")
    args = ap.parse_args()
    devices = args.devices or ["cpu", "torch-cpu"] + (["gpu"] if cuda_available() else [])
    src = SHARED / "single_face.mp4" if (SHARED / "single_face.mp4").is_file() else ROOT / "sample_videos" / "two_astronauts.mp4"
    print(f"# fervideo devices benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, CUDA: {cuda_available()}")
    x = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clips = [src, scaled_copy(src, tmp / "clip_1280x720.mp4", (1280, 720))]
        decode = {c: len(list(FrameReader(c))) / best(lambda c=c: sum(1 for _ in FrameReader(c))) for c in clips}
        sizes = {c: f"{FrameReader(c).info.width}x{FrameReader(c).info.height}" for c in clips}
        print("decode-only: " + ", ".join(f"{sizes[c]} {decode[c]:.0f} fps" for c in clips))
        if not args.no_fer:
            print(fer_row(clips, sizes, decode), flush=True)
        kinds = ["timeline"] + ([] if args.no_annotate else ["annotate"])
        print(f"{'tier':<10}{'precision':<10}{'device':<11}{'faces/s':>9}" + "".join(f"{sizes[c] + ' ' + k:>22}{'/decode':>9}" for k in kinds for c in clips))
        for tier in args.tiers:
            for dev in devices:
                for precision in args.precisions if dev == "cpu" else ["float32"]:
                    # The CPU at the pipeline's own batch size (--batch-size, default 32): what a run gets.
                    # (int8 is sensitive to it here: 5,368 faces/s at 32, 4,023 at 64, 4,511 at 256 in one run.)
                    clf = make_classifier(tier, batch_size=Options().batch_size if dev == "cpu" else 1024, device=dev, precision=precision)
                    # A whole pass first: an interpreter's first calls run slower (XNNPACK packs
                    # its weights, caches warm), and int8 more so (4062 vs 4353 faces/s measured).
                    clf.predict(x)
                    fps = args.faces / best(lambda clf=clf: [clf.predict(x[i : i + 256]) for i in range(0, len(x), 256)], repeats=5)
                    cells = ""
                    analyser = Analyser(Options(model=tier, device=dev, precision=precision))
                    for kind in kinds:
                        for c in clips:
                            n = len(list(FrameReader(c)))
                            video = tmp / "a.mp4" if kind == "annotate" else None
                            t = best(lambda c=c, a=analyser, v=video: process_video(c, a, timeline=tmp / "t.csv", annotated=v))
                            cells += f"{n / t:>22.0f}{n / t / decode[c]:>9.2f}"
                    analyser.close()
                    print(f"{tier:<10}{precision:<10}{dev:<11}{fps:>9.0f}{cells}", flush=True)


def fer_row(clips: list[Path], sizes: dict[Path, str], decode: dict[Path, float]) -> str:
    """The ``fer`` package (its defaults: Haar + int8 mini-Xception) per frame on the same clips, run in
    the venv of :mod:`bench_fer` (made on first use; skipped with the reason when it cannot be)."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_fer import CHILD, FER_VERSION, fer_python

    py, why = fer_python(Path.home() / ".cache" / "fervideo-bench" / "fer-venv")
    if py is None:
        return f"fer {FER_VERSION}: skipped: {why}"
    cells = []
    for c in clips:
        proc = subprocess.run([str(py), "-c", CHILD, str(c), "1000000"], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if proc.returncode != 0:
            return f"fer {FER_VERSION}: skipped: it failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        cells.append(f"{sizes[c]} {r['fps']:.1f} fps ({r['fps'] / decode[c]:.3f} of decode, {r['faces'] / r['frames']:.2f} faces/frame)")
    return f"fer {FER_VERSION} (Haar + int8 mini-Xception, per frame, timeline only): " + ", ".join(cells)


if __name__ == "__main__":
    main()
