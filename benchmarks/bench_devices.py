"""Classifier faces/s, timeline and annotate fps per model tier, precision and device, against decode-only in the same run.

    python benchmarks/bench_devices.py [--tiers fast accurate] [--precisions int8 float32] [--devices cpu torch-cpu gpu] [--no-annotate]

Precisions (``--precision``, the CPU path only): ``int8`` (full-integer models, models/README_int8.md)
and ``float32``; the other devices run the float TFLite file's graph in PyTorch.

Devices: ``cpu`` (TFLite, the default path), ``torch-cpu`` (the GPU code path on the CPU's
PyTorch: what CI tests), ``gpu`` (PyTorch on CUDA; only where one is visible). Clips: a 640x360
clip (``single_face.mp4`` of ../shared, or the bundled sample) and the same frames scaled to
1280x720, written to a temporary file by this script. Every figure is the best of 3 runs (faces/s: of 5, after a warm-up pass).
"""

from __future__ import annotations

import argparse
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
        kinds = ["timeline"] + ([] if args.no_annotate else ["annotate"])
        print(f"{'tier':<10}{'precision':<10}{'device':<11}{'faces/s':>9}" + "".join(f"{sizes[c] + ' ' + k:>22}{'/decode':>9}" for k in kinds for c in clips))
        for tier in args.tiers:
            for dev in devices:
                for precision in args.precisions if dev == "cpu" else ["float32"]:
                    clf = make_classifier(tier, batch_size=64 if dev == "cpu" else 1024, device=dev, precision=precision)
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


if __name__ == "__main__":
    main()
