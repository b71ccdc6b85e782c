"""fervideo against the ``fer`` package on the same clip, with decode-only as the floor, in one run (issue 23).

    python benchmarks/bench_fer.py [--clip PATH] [--frames 300] [--venv DIR]

``fer`` (its defaults: OpenCV's Haar cascade, then the mini-Xception of Arriaga et al. as an int8
TFLite file; MTCNN is its option and needs facenet-pytorch and a second PyTorch) is installed in a separate virtual
environment made by this script (default ``~/.cache/fervideo-bench/fer-venv``, reused), so its
TensorFlow, Keras and OpenCV pins never touch ours: ``fer`` itself with ``--no-deps`` and the
packages its Haar path imports. Where that cannot be done (no package index, an unsupported
Python), its row is skipped with the reason.

Rows, each the best of 3 over the same first ``--frames`` frames of the clip (default: the shared
640x360 single-face clip, else the bundled sample): OpenCV decode only; ``fervideo timeline``'s
analysis (default tier and precision, the pipelined driver, CSV written); and ``fer``'s
``FER().detect_emotions(frame)`` per frame, as its README runs it on video. Faces found per frame
are printed too: the detectors differ, so the work done differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FERVIDEO_SHARED", ROOT.parent / "shared")) / "videos"
FER_VERSION = "25.10.3"
# What fer's Haar path imports (fer.py, utils.py); its other requirements (facenet-pytorch for MTCNN,
# moviepy and ffmpeg-python for its Video class) are not needed to analyse frames.
FER_DEPS = ["tensorflow", "opencv-contrib-python-headless<5", "pandas", "requests", "Pillow", "setuptools<81"]

CHILD = r"""
import json, sys, time, logging, warnings
warnings.filterwarnings("ignore")
import cv2
from fer.fer import FER
logging.getLogger("fer").setLevel(logging.ERROR)
clip, n = sys.argv[1], int(sys.argv[2])
cap = cv2.VideoCapture(clip)
frames = []
while len(frames) < n:
    ok, f = cap.read()
    if not ok:
        break
    frames.append(f)
det = FER(mtcnn=False)
det.detect_emotions(frames[0])  # warm-up: model load, first graph call
best, faces = None, 0
for _ in range(3):
    t0 = time.perf_counter()
    faces = sum(len(det.detect_emotions(f)) for f in frames)
    dt = time.perf_counter() - t0
    best = dt if best is None else min(best, dt)
print(json.dumps({"fps": len(frames) / best, "frames": len(frames), "faces": faces}))
"""


def fer_python(venv: Path) -> tuple[Path | None, str]:
    """The fer venv's interpreter, made on first use; (None, why) when it cannot be made."""
    py = venv / "bin" / "python"
    if py.is_file() and subprocess.run([str(py), "-c", "import fer.fer"], capture_output=True).returncode == 0:
        return py, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *FER_DEPS], check=True, capture_output=True, text=True, timeout=1800)
        subprocess.run([*pip, "--no-deps", f"fer=={FER_VERSION}"], check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return None, f"could not install fer {FER_VERSION} in {venv}: {str(detail).strip().splitlines()[-1] if detail else e}"
    return py, ""


def first_frames(clip: Path, n: int, out: Path) -> Path:
    """The clip's first ``n`` frames as a file of their own, so every row reads the same frames."""
    from fervideo.video import FrameReader, open_writer

    reader = FrameReader(clip)
    info = reader.info
    with open_writer(out, info.width, info.height, info.fps, codec="mp4v") as w:
        for i, t, frame in reader:
            if i >= n:
                break
            w.write(frame, t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_clip = SHARED / "single_face.mp4" if (SHARED / "single_face.mp4").is_file() else ROOT / "sample_videos" / "two_astronauts.mp4"
    ap.add_argument("--clip", type=Path, default=default_clip)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "fervideo-bench" / "fer-venv")
    args = ap.parse_args()
    from bench_devices import best  # the same best-of-3 timer (benchmarks/ is on sys.path when run as a script)

    from fervideo.pipeline import Analyser, Options, process_video
    from fervideo.video import FrameReader

    with tempfile.TemporaryDirectory() as tmp:
        clip = first_frames(args.clip, args.frames, Path(tmp) / "clip.mp4")
        n = sum(1 for _ in FrameReader(clip))
        info = FrameReader(clip).info
        print(f"clip: {args.clip.name}, first {n} frames, {info.width}x{info.height}; {os.cpu_count()} cores")

        def decode() -> None:
            cap = cv2.VideoCapture(str(clip))
            while cap.read()[0]:
                pass

        print(f"{'decode only (OpenCV)':<44}{n / best(decode):8.0f} fps")
        analyser = Analyser(Options())
        report = process_video(clip, analyser, timeline=Path(tmp) / "warm.csv")
        dt = best(lambda: process_video(clip, analyser, timeline=Path(tmp) / "t.csv"))
        print(f"{'fervideo timeline (accurate int8, default)':<44}{n / dt:8.0f} fps   {report.faces_classified / n:.2f} faces/frame")
        analyser.close()
        fast = Analyser(Options(model="fast"))
        process_video(clip, fast, timeline=Path(tmp) / "warm.csv")
        dt = best(lambda: process_video(clip, fast, timeline=Path(tmp) / "t.csv"))
        print(f"{'fervideo timeline --model fast (int8)':<44}{n / dt:8.0f} fps")
        fast.close()
        py, why = fer_python(args.venv)
        if py is None:
            print(f"{'fer ' + FER_VERSION:<44}skipped: {why}")
            return
        proc = subprocess.run([str(py), "-c", CHILD, str(clip), str(n)], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if proc.returncode != 0:
            print(f"{'fer ' + FER_VERSION:<44}skipped: it failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            return
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{'fer ' + FER_VERSION + ' (Haar + int8 mini-Xception)':<44}{r['fps']:8.1f} fps   {r['faces'] / r['frames']:.2f} faces/frame")


if __name__ == "__main__":
    main()
