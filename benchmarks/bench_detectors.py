"""`timeline` speed by detector, measured in one run: the default (RetinaFace) against BlazeFace.

    python benchmarks/bench_detectors.py [--shared ../shared] [--detectors retinaface blazeface]

Per clip (the single-face 640x360 clip, the same clip scaled to 1280x720, and the stage-and-audience
clip), each detector's timeline fps through ``process_video`` (models loaded once, outside the
timing; best of 3, baselines included) and the detector's own median ms a frame (one thread, as each
detection thread runs it). The ratio to BlazeFace is issue 31's acceptance figure (>= 0.5).
Pause any training run first: a timing taken beside one is not a figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fervideo.faces import create_detector
from fervideo.pipeline import Analyser, Options, process_video
from fervideo.video import FrameReader, open_writer

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def scaled_clip(src: Path, out: Path, width: int, height: int) -> Path:
    """``src`` re-encoded at ``width`` x ``height`` (H.264, same fps): a 720p input from a 360p clip."""
    reader = FrameReader(src)
    info = reader.info
    with open_writer(out, width, height, info.fps) as w:
        for _, ts, frame in reader:
            w.write(cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC), ts)
    return out


def timeline_fps(path: Path, analyser: Analyser, tmp: Path) -> tuple[float, int]:
    best = float("inf")
    frames = faces = 0
    for _ in range(REPEATS):
        t = time.perf_counter()
        r = process_video(path, analyser, timeline=tmp / "t.csv")
        best = min(best, time.perf_counter() - t)
        frames, faces = r.frames, r.faces_classified
    return frames / best, faces


def detector_ms(path: Path, name: str) -> float:
    det = create_detector(name)
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(40)]
    frames = [f for f in frames if f is not None]
    det.detect(frames[0])
    ts = []
    for f in frames:
        t = time.perf_counter()
        det.detect(f)
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("FERVIDEO_SHARED", ROOT.parent / "shared")))
    ap.add_argument("--detectors", nargs="+", default=["retinaface", "blazeface"])
    args = ap.parse_args()
    videos = args.shared / "videos"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        single = videos / "single_face.mp4" if (videos / "single_face.mp4").is_file() else ROOT / "sample_videos" / "two_astronauts.mp4"
        clips = {"640x360 single face": single, "1280x720 (same clip scaled)": scaled_clip(single, tmp / "720p.mp4", 1280, 720)}
        if (videos / "short_hamilton_clip.mp4").is_file():
            clips["640x360 stage and audience"] = videos / "short_hamilton_clip.mp4"
        analysers = {name: Analyser(Options(detector=name)) for name in args.detectors}
        base = args.detectors[-1]
        print(f"timeline fps, best of {REPEATS} (models loaded once; default tier, {os.cpu_count()} cores); ratio to {base}")
        for label, clip in clips.items():
            fps = {}
            for name, an in analysers.items():
                fps[name], faces = timeline_fps(clip, an, tmp)
                print(f"  {label:<30} {name:<12} {fps[name]:7.1f} fps  {faces:5d} faces  detector {detector_ms(clip, name):6.2f} ms/frame")
            for name in args.detectors[:-1]:
                print(f"  {label:<30} {name}/{base}: {fps[name] / fps[base]:.2f}")


if __name__ == "__main__":
    main()
