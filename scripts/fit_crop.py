"""Fit each detector's crop map (fervideo.faces.CROP_MAPS) to the framing the CNN was trained on.

Why: the crop decides what every tier sees. FER2013's faces are squares framed from forehead to
chin; each detector's box frames a face its own way (BlazeFace's box is tighter, Haar's looser).
Before issue 21 the crop was the box enlarged by 20%, a guess, and on real frames the chain lost
7.5-15 points against curated crops. Here the true square is known: PublicTest faces are upscaled
to 80-240 px and composited, upright, with a feathered border into face-free frames of the shared
clips (fervideo.fidelity), each detector runs on the frame, and for every face it finds we record

    scale = side / max(w, h),   dx = (square cx - box cx) / max(w, h),   dy = likewise in y.

The map is the median of each (robust to the odd loose box); the residual spread (1.4826 x MAD)
is what training augmentation must cover. Prints a table and the CROP_MAPS lines to paste.

Usage: python scripts/fit_crop.py [--shared ../shared] [--faces 200] [--detectors blazeface yunet ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fervideo import fidelity
from fervideo.pipeline import Analyser, Options
from fervideo.training import data as fer_data

ROOT = Path(__file__).resolve().parent.parent


def mad(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("FERVIDEO_SHARED", ROOT.parent / "shared")))
    ap.add_argument("--faces", type=int, default=200, help="PublicTest faces (each in both size bins)")
    ap.add_argument("--detectors", nargs="+", default=["blazeface", "blazeface-short", "yunet", "haar"])
    ap.add_argument("--json", type=Path, help="also write the fit here")
    args = ap.parse_args()

    faces = fer_data.load(args.shared / "data" / "fer2013.npz").split("public")[0][: args.faces, :, :, 0]
    videos = [args.shared / "videos" / n for n in ("no_face.mp4", "slow_traffic_small.mp4")]
    backgrounds = fidelity.background_frames(videos, 40)
    cases = fidelity.make_cases(len(faces), len(backgrounds), sizes=("80-160", ">=160"), rolls=(0.0,), seed=1)
    yunet = next(iter(sorted((args.shared / "models").glob("face_detection_yunet_*.onnx"))), None)
    fits = {}
    print(f"{len(cases)} upright PublicTest faces, 80-240 px, on {len(backgrounds)} face-free frames (640x360)")
    print(f"{'detector':16} {'found':>6} {'scale':>7} {'dx':>7} {'dy':>7}   {'spread: scale':>13} {'dx':>6} {'dy':>6}   aspect h/w")
    for name in args.detectors:
        opts = Options(detector=name, detector_model=str(yunet) if name == "yunet" else None, min_face=0)
        analyser = Analyser(opts)
        t0 = time.perf_counter()
        rows = []
        for f in fidelity.run_chain(analyser, faces, backgrounds, cases):
            if f.face is None:
                continue
            b = max(f.face.w, f.face.h)
            rows.append((f.case.size / b, (f.case.cx - f.face.x - f.face.w / 2) / b, (f.case.cy - f.face.y - f.face.h / 2) / b, f.face.h / f.face.w))
        a = np.array(rows)
        fit = {k: round(float(np.median(a[:, i])), 3) for i, k in enumerate(("scale", "dx", "dy"))}
        spread = {k: round(mad(a[:, i]), 3) for i, k in enumerate(("scale", "dx", "dy"))}
        fits[name] = {"fit": fit, "spread": spread, "found": len(a), "cases": len(cases), "s": round(time.perf_counter() - t0, 1)}
        print(
            f"{name:16} {len(a):6d} {fit['scale']:7.3f} {fit['dx']:7.3f} {fit['dy']:7.3f}   "
            f"{spread['scale']:13.3f} {spread['dx']:6.3f} {spread['dy']:6.3f}   {np.median(a[:, 3]):.3f}"
        )
    print("\nCROP_MAPS = {")
    for name, f in fits.items():
        print(f'    "{name}": CropMap({f["fit"]["scale"]}, {f["fit"]["dx"]}, {f["fit"]["dy"]}),')
    print("}")
    if args.json:
        args.json.write_text(json.dumps(fits, indent=1) + "\n")


if __name__ == "__main__":
    main()
