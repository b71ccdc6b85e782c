"""End-to-end fidelity: how much of the curated-crop accuracy survives detector -> crop -> CNN.

FER2013 faces with known labels are upscaled, optionally rolled, and composited with a feathered
border into face-free frames of the shared clips (``fervideo.fidelity``); the pipeline's detector
and crop find and cut them, and each tier classifies both that crop and the original 48x48 face.
Per tier x detector x crop variant, by face size (40-80, 80-160, >=160 px) and roll (0, +-10,
+-20 degrees): the detection rate, the accuracy of the pipeline's crops, the accuracy of the
original faces (the same detected faces), and their ratio. PublicTest for choices, PrivateTest to
report (--split private). Crop variants: ``pipeline`` (what the tool runs: the detector's fitted
map, rolled upright by the eyes), ``no-align`` (fitted map, upright box), ``legacy`` (the crop
before issue 21: box + 20%, no roll).

Usage: python benchmarks/e2e_fidelity.py [--split private] [--faces 300] [--tiers fast accurate]
       [--detectors blazeface yunet ...] [--variants no-align legacy] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from fervideo import fidelity
from fervideo.emotions.classifier import EmotionClassifier
from fervideo.faces import CROP_MAPS, LEGACY_CROP, crop_face
from fervideo.pipeline import Analyser, Options
from fervideo.training import data as fer_data

ROOT = Path(__file__).resolve().parent.parent


def _aligned_from(threshold: float) -> Callable[[str], fidelity.CropFn]:
    """The pipeline's crop with ``min_roll`` set to ``threshold``: how the thresholds were chosen."""
    return lambda det: lambda frame, face: crop_face(frame, face, replace(CROP_MAPS[det], min_roll=threshold), align=True)


VARIANTS = {
    "no-align": lambda det: lambda frame, face: crop_face(frame, face, CROP_MAPS[det], align=False),
    "legacy": lambda det: lambda frame, face: crop_face(frame, face, LEGACY_CROP, align=False),
    **{f"align>={t}": _aligned_from(t) for t in (0, 4, 6, 8, 10, 12, 20, 30)},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("FERVIDEO_SHARED", ROOT.parent / "shared")))
    ap.add_argument("--split", choices=("public", "private"), default="public")
    ap.add_argument("--faces", type=int, default=300, help="faces per size x roll cell (the same faces in every cell)")
    ap.add_argument("--tiers", nargs="+", default=["fast", "accurate"])
    ap.add_argument("--precisions", nargs="+", default=["float32"], help="int8 and/or float32: each tier in each")
    ap.add_argument("--detectors", nargs="+", default=["blazeface", "blazeface-short", "yunet", "haar"])
    ap.add_argument("--variants", nargs="*", default=["no-align", "legacy"], choices=sorted(VARIANTS))
    ap.add_argument("--sizes", nargs="+", default=list(fidelity.SIZE_BINS))
    ap.add_argument("--rolls", nargs="+", type=float, default=list(fidelity.ROLLS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    faces, labels = fer_data.load(args.shared / "data" / "fer2013.npz").split(args.split)
    # A fixed random subset (not the split's first rows), the same for every cell.
    pick = np.random.default_rng(args.seed).permutation(len(faces))[: args.faces]
    faces48, labels = faces[pick, :, :, 0], labels[pick]
    videos = [args.shared / "videos" / n for n in ("no_face.mp4", "slow_traffic_small.mp4")]
    backgrounds = fidelity.background_frames(videos, 40)
    cases = fidelity.make_cases(len(faces48), len(backgrounds), sizes=args.sizes, rolls=args.rolls, seed=args.seed + 1)
    yunet = next(iter(sorted((args.shared / "models").glob("face_detection_yunet_*.onnx"))), None)
    classifiers = {t if p == "float32" else f"{t}-{p}": EmotionClassifier(t, precision=p) for t in args.tiers for p in args.precisions}
    curated = {t: c.predict(faces48[:, :, :, None]).argmax(1) for t, c in classifiers.items()}
    print(f"{args.split}: {len(faces48)} faces x {len(args.sizes)} sizes x {len(args.rolls)} rolls = {len(cases)} cases per detector; frames 640x360")
    for t in classifiers:
        print(f"curated accuracy of these faces, {t}: {np.mean(curated[t] == labels):.2%}")
    results = []
    for det in args.detectors:
        if det == "yunet" and yunet is None:
            print("yunet: no ONNX file in shared/models; skipped")
            continue
        analyser = Analyser(Options(detector=det, detector_model=str(yunet) if det == "yunet" else None, model="fast", min_face=0))
        t0 = time.perf_counter()
        found = list(fidelity.run_chain(analyser, faces48, backgrounds, cases, {v: VARIANTS[v](det) for v in args.variants}))
        chain_s = time.perf_counter() - t0
        hits = [f for f in found if f.face is not None]
        for t, clf in classifiers.items():
            for variant in ["pipeline", *args.variants]:
                pred = clf.predict(np.stack([f.crops[variant] for f in hits])[:, :, :, None]).argmax(1) if hits else np.zeros(0, int)
                cells = fidelity.score(found, labels, pred, curated[t])
                print(f"\n{t} / {det} / crop {variant} ({chain_s:.0f} s for detection and crops)")
                print(f"{'size':8} {'roll':>6} {'cases':>6} {'detect':>7} {'e2e':>7} {'curated':>8} {'ratio':>6}")
                for size in args.sizes:
                    for label, rolls in (("0", [0.0]), ("+-10", [-10.0, 10.0]), ("+-20", [-20.0, 20.0])):
                        rolls = [r for r in rolls if r in args.rolls]
                        if not rolls:
                            continue
                        c = fidelity.pooled(cells, size, rolls)
                        print(f"{size:8} {label:>6} {c.cases:6d} {c.detection_rate:7.1%} {c.e2e:7.1%} {c.curated:8.1%} {c.ratio:6.3f}")
                        results.append(
                            {
                                "split": args.split,
                                "tier": t,
                                "detector": det,
                                "crop": variant,
                                "size": size,
                                "roll": label,
                                "cases": c.cases,
                                "detected": c.detected,
                                "e2e": c.e2e,
                                "curated": c.curated,
                                "ratio": c.ratio,
                            }
                        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
