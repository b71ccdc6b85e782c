"""Face-detector recall on the shared clips: which detector should be the default?

    python benchmarks/detector_recall.py [--every 5] [--shared ../shared] [--retina 640:0.8,480:0.8]

No clip has hand-made face boxes, so the reference is the union of what the detectors find
(BlazeFace full-range, BlazeFace short-range, YuNet at score 0.7; Haar and RetinaFace are left out of
the reference: Haar fires on non-faces, and RetinaFace is the detector being judged), merged at
IoU >= 0.3, faces of at least ``--min-face`` pixels. A second table scores against YuNet's boxes
alone (IoU > 0.4), as issue 31 measured. ``--retina`` adds RetinaFace at each long side:score.
Each detector's recall is the share of that union it finds, overall and by face size. A box in the
union that only one detector found may be a false positive of that detector: the "only" column
counts them, so a detector cannot win by firing on everything. Timing per frame is printed too.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from fervideo.errors import MissingExtraError
from fervideo.faces import RetinaFace, create_detector
from fervideo.geometry import iou_matrix

FACELESS = ("no_face.mp4", "slow_traffic_small.mp4")
# Frames from which a clip holds no face: the animated title of face_noface.mov (its face leaves
# before frame 80; checked by eye and by YuNet, which finds none after it).
FACE_FREE_FROM = {"face_noface.mov": 90}
CLIPS = ["single_face.mp4", "face_noface.mov", "short_hamilton_clip.mp4", "face.avi", "no_face.mp4", "slow_traffic_small.mp4"]
SIZES = ((20, 40), (40, 80), (80, 10_000))


def boxes(faces: list, min_face: int) -> np.ndarray:
    b = [[f.x, f.y, f.x + f.w, f.y + f.h] for f in faces if max(f.w, f.h) >= min_face]
    return np.array(b, float).reshape(-1, 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("FERVIDEO_SHARED", Path(__file__).resolve().parents[2] / "shared")))
    ap.add_argument("--every", type=int, default=5, help="use every N-th frame")
    ap.add_argument("--min-face", type=int, default=20)
    ap.add_argument("--retina", default="640:0.8", help="RetinaFace variants, long side:score threshold[:model file], comma-separated")
    ap.add_argument("--no-yuface", action="store_true", help="leave yuface out even where installed")
    args = ap.parse_args()
    yunet = next(iter(sorted((args.shared / "models").glob("face_detection_yunet_*.onnx"))))
    dets = {
        "blazeface": create_detector("blazeface"),
        "blazeface-short": create_detector("blazeface-short"),
        "yunet": create_detector("yunet", yunet),
        "haar": create_detector("haar"),
    }
    for variant in filter(None, args.retina.split(",")):
        size, score, *model = variant.split(":")  # an optional third field: another model file
        name = f"retinaface@{size}:{score}" + (f":{Path(model[0]).stem}" if model else "")
        dets[name] = RetinaFace(model[0] if model else None, min_score=float(score), detect_size=int(size))
    try:
        if not args.no_yuface:
            dets["yuface"] = create_detector("yuface")  # the opt-in extra, where installed
    except MissingExtraError:
        print("yuface: not installed (pip install '.[yuface]'), left out")
    in_ref = ["blazeface", "blazeface-short", "yunet"]
    found = {n: np.zeros(len(SIZES), int) for n in dets}
    only = dict.fromkeys(dets, 0)
    total = np.zeros(len(SIZES), int)
    ms = {n: [] for n in dets}
    per_clip = []
    vs_yunet = {n: [0, 0] for n in dets}  # found, YuNet's faces; per clip below
    vs_yunet_clip: dict[str, dict[str, list[int]]] = {}
    boxes_on_empty = dict.fromkeys(dets, 0)
    for clip in CLIPS:
        cap = cv2.VideoCapture(str(args.shared / "videos" / clip))
        i = 0
        clip_total, clip_found = 0, dict.fromkeys(dets, 0)
        vs_yunet_clip[clip] = {n: [0, 0] for n in dets}
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            i += 1
            if (i - 1) % args.every:
                continue
            got = {}
            for n, d in dets.items():
                t = time.perf_counter()
                got[n] = boxes(d.detect(frame), args.min_face)
                ms[n].append(1000 * (time.perf_counter() - t))
            if clip in FACELESS or i > FACE_FREE_FROM.get(clip, 1 << 30):
                for n in dets:
                    boxes_on_empty[n] += len(got[n])
                continue  # a known face-free frame: every box on it is a false positive, none a reference face
            for b in got["yunet"]:
                for n in dets:
                    hit = len(got[n]) > 0 and iou_matrix(b[None], got[n]).max() > 0.4
                    for tally in (vs_yunet[n], vs_yunet_clip[clip][n]):
                        tally[0] += hit
                        tally[1] += 1
            ref = np.zeros((0, 4))
            for n in in_ref:  # union, merged at IoU >= 0.3
                for b in got[n]:
                    if len(ref) == 0 or iou_matrix(b[None], ref).max() < 0.3:
                        ref = np.vstack([ref, b])
            for b in ref:
                side = max(b[2] - b[0], b[3] - b[1])
                k = next(j for j, (lo, hi) in enumerate(SIZES) if lo <= side < hi)
                total[k] += 1
                clip_total += 1
                hits = [n for n in dets if len(got[n]) and iou_matrix(b[None], got[n]).max() >= 0.3]
                for n in hits:
                    found[n][k] += 1
                    clip_found[n] += 1
                if len(hits) == 1:
                    only[hits[0]] += 1
        cap.release()
        per_clip.append((clip, clip_total, clip_found))
    print(f"reference: {total.sum()} faces (union of {', '.join(in_ref)}; every {args.every}th frame; >= {args.min_face} px)")
    head = "".join(f"{f'{lo}-{hi}px' if hi < 10_000 else f'>={lo}px':>11}" for lo, hi in SIZES)
    print(f"{'detector':<17}{'recall':>8}{head}{'only':>7}{'ms/frame':>10}")
    print(f"{'(faces)':<17}{total.sum():>8}" + "".join(f"{t:>11}" for t in total))
    for n in dets:
        r = found[n].sum() / max(1, total.sum())
        by = "".join(f"{found[n][k] / max(1, total[k]):>11.3f}" for k in range(len(SIZES)))
        print(f"{n:<17}{r:>8.3f}{by}{only[n]:>7}{np.median(ms[n]):>10.2f}")
    print(f"\nper clip (reference faces; recall of {' / '.join(dets)})")
    for clip, n, f in per_clip:
        print(f"  {clip:<26}{n:>5}  " + " / ".join(f"{f[d] / max(1, n):.3f}" for d in dets))
    print("\nagainst YuNet's boxes alone (IoU > 0.4): overall, then per clip")
    print("  " + "  ".join(f"{d}={vs_yunet[d][0] / max(1, vs_yunet[d][1]):.3f}" for d in dets))
    for clip, tallies in vs_yunet_clip.items():
        print(f"  {clip:<26}{tallies['yunet'][1]:>5}  " + " / ".join(f"{t[0] / max(1, t[1]):.3f}" for t in tallies.values()))
    print(f"\nboxes on the face-free clips and frames ({', '.join(FACELESS)}, face_noface.mov's title): " + ", ".join(f"{d} {boxes_on_empty[d]}" for d in dets))


if __name__ == "__main__":
    main()
