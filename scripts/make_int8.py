"""Make each tier's full-integer int8 model, choose its calibration on PublicTest, and card it.

Why: int8 weights and activations run the CNN ~4x faster on these CPUs (issue 23: fast 1,450 ->
5,700 faces/s, accurate 87 -> 368), which pays for the accurate tier on video or for more faces.
A quantized model is a model of its own: it is judged by its own measured accuracy, and it is
installed only if its PrivateTest accuracy is within 0.3 points of the float model's.

How: TensorFlow's post-training full-integer quantisation of the tier's ``.keras`` file
(``fervideo.training.export.export_tflite(int8_faces=...)``), float32 input and output. The
representative faces come from the Training split only, drawn at random with each class in
proportion; the calibration size is chosen among ``--calib`` sizes by PublicTest accuracy (ties:
the smaller). PrivateTest is read once, for the card: accuracy, per-class recall against the
float model, and classifier faces/s of both in the same run (2 threads, batch 64, best of 3).

Usage: python scripts/make_int8.py [--tiers fast accurate] [--calib 100 500 2000] [--data ../shared/data/fer2013.npz]
Writes models/<tier file>_int8.tflite, models/int8_card.json and models/README_int8.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from make_accurate_model import faces_per_second  # the same method (scripts/ is on sys.path when run as a script)

from fervideo.files import sha256_of
from fervideo.labels import EMOTIONS
from fervideo.model_files import TIERS, int8_name, models_dir
from fervideo.training import data as fer_data
from fervideo.training.evaluate import metrics, predict
from fervideo.training.export import export_tflite

ROOT = Path(__file__).resolve().parent.parent
MAX_DROP = 0.003  # PrivateTest accuracy, int8 against float32


def calibration_faces(faces: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` Training faces, each class in proportion (at least one of each)."""
    rng = np.random.default_rng(seed)
    picks = []
    for c in range(len(EMOTIONS)):
        idx = np.flatnonzero(labels == c)
        k = max(1, round(n * len(idx) / len(labels)))
        picks.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return faces[np.concatenate(picks)].reshape(-1, 48, 48)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiers", nargs="+", default=list(TIERS))
    ap.add_argument("--calib", nargs="+", type=int, default=[100, 500, 2000])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013.npz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data = fer_data.load(args.data)
    train_x, train_y = data.split("train")
    pub_x, pub_y = data.split("public")
    priv_x, priv_y = data.split("private")
    card_path = models_dir() / "int8_card.json"
    cards = json.loads(card_path.read_text()) if card_path.is_file() else {}
    for tier in args.tiers:
        tflite, keras = (models_dir() / f for f in TIERS[tier])
        tried = {}
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.calib:
                path = export_tflite(keras, Path(tmp) / f"int8_{n}.tflite", int8_faces=calibration_faces(train_x, train_y, n, args.seed))
                tried[n] = float(np.mean(predict(path, pub_x).argmax(1) == pub_y))
                print(f"{tier}: int8 calibrated on {n} Training faces: PublicTest {tried[n]:.2%}")
            best_n = max(sorted(tried), key=lambda k: tried[k])
            out = models_dir() / int8_name(TIERS[tier][0])
            chosen = export_tflite(keras, Path(tmp) / "chosen.tflite", int8_faces=calibration_faces(train_x, train_y, best_n, args.seed))
            p_float, p_int8 = predict(tflite, priv_x).argmax(1), predict(chosen, priv_x).argmax(1)
            m_float, m_int8 = metrics(priv_y, p_float), metrics(priv_y, p_int8)
            pub_float = float(np.mean(predict(tflite, pub_x).argmax(1) == pub_y))
            fps_float, fps_int8 = faces_per_second(tflite), faces_per_second(chosen)
            drop = m_float["accuracy"] - m_int8["accuracy"]
            installed = drop <= MAX_DROP
            if installed:
                Path(chosen).replace(out)
            cards[tier] = {
                "file": out.name,
                "installed": installed,
                "source": TIERS[tier][1],
                "calibration_faces": best_n,
                "calibration_tried_public": {str(k): round(v, 4) for k, v in tried.items()},
                "public": {"float32": round(pub_float, 4), "int8": round(tried[best_n], 4)},
                "private": {"float32": round(m_float["accuracy"], 4), "int8": round(m_int8["accuracy"], 4)},
                "recall": {e: [round(m_float["recall"][i], 4), round(m_int8["recall"][i], 4)] for i, e in enumerate(EMOTIONS)},
                "faces_per_s": {"float32": round(fps_float), "int8": round(fps_int8)},
                "size_bytes": {"float32": tflite.stat().st_size, "int8": out.stat().st_size if installed else None},
                "sha256": sha256_of(out) if installed else None,
                "data_sha256": sha256_of(args.data),
                "command": f"python scripts/make_int8.py --tiers {tier} --calib {' '.join(map(str, args.calib))}",
            }
            print(
                f"{tier}: PrivateTest float32 {m_float['accuracy']:.2%} int8 {m_int8['accuracy']:.2%} (drop {drop * 100:.2f} points); "
                f"{fps_float:,.0f} -> {fps_int8:,.0f} faces/s ({fps_int8 / fps_float:.2f}x); {'installed' if installed else 'NOT installed'} as {out.name}"
            )
    card_path.write_text(json.dumps(cards, indent=1) + "\n")
    (models_dir() / "README_int8.md").write_text(render(cards))


def render(cards: dict) -> str:
    lines = [
        "# Model card: the int8 models (`--precision int8`)",
        "",
        "Full-integer post-training quantisation of each tier's network (`python scripts/make_int8.py`):",
        "int8 weights and activations, float32 input and output, calibrated on faces from the Training split",
        "only (each class in proportion); the calibration size was chosen on PublicTest. A quantized model is a",
        "model of its own: it ships only if its PrivateTest accuracy is within 0.3 points of its float model's.",
        "Faces/s: classifier only, 2 CPU threads, batch 64, both precisions in the same run.",
        "",
        "| tier | file | calibration (PublicTest tried) | PublicTest float32 / int8 | **PrivateTest float32 / int8** "
        "| faces/s float32 / int8 | size float32 / int8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for tier, c in cards.items():
        tried = ", ".join(f"{k}: {v:.2%}" for k, v in c["calibration_tried_public"].items())
        size = c["size_bytes"]
        lines.append(
            f"| {tier} | `{c['file']}`{'' if c['installed'] else ' (not installed)'} | {c['calibration_faces']} faces ({tried}) | "
            f"{c['public']['float32']:.2%} / {c['public']['int8']:.2%} | **{c['private']['float32']:.2%} / {c['private']['int8']:.2%}** | "
            f"{c['faces_per_s']['float32']:,} / {c['faces_per_s']['int8']:,} ({c['faces_per_s']['int8'] / c['faces_per_s']['float32']:.1f}x) | "
            f"{size['float32'] / 1e6:.1f} / {(size['int8'] or 0) / 1e6:.2f} MB |"
        )
    lines += ["", "Per-class PrivateTest recall, float32 -> int8:", "", "| tier | " + " | ".join(EMOTIONS) + " |", "|---|" + "---|" * len(EMOTIONS)]
    for tier, c in cards.items():
        lines.append(f"| {tier} | " + " | ".join(f"{a:.1%} -> {b:.1%}" for a, b in c["recall"].values()) + " |")
    lines += ["", "Data: `fer2013.npz`, sha256 `" + next(iter(cards.values()))["data_sha256"] + "`.", ""]
    for tier, c in cards.items():
        lines.append(f"- {tier}: `{c['command']}`; sha256 `{c['sha256']}`")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
