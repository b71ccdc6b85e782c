"""Put both label sets on every model card, and record FER+ training attempts (issue 33).

FER2013's labels are the intended expression (the search keywords the images were found with);
the FER+ majority of ten annotators is what people see. They agree on only ~64% of faces, so a
card with one of them is half a card. This script runs ``fervideo evaluate --labels both`` (the
same function) on every shipped TFLite file, on PublicTest and PrivateTest, and writes a
``label_sets`` entry into its card: accuracy and macro F1 on each set, the recall on the faces
people call neutral, and how many faces the FER+ majority leaves out.

``--attempt RUN`` (repeatable) also measures a training run folder of ``fervideo train --targets``
(its ``model.tflite`` and, where present, ``int8.tflite``) and records it in
``models/ferplus_attempts.json`` with its command and PublicTest log, kept or not: the choice is
made on PublicTest, and PrivateTest is reported beside it, never used to choose.

Usage: python scripts/card_ferplus.py [--data ../shared/data/fer2013.npz] [--attempt runs/x ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path
from typing import Any

from fervideo.labels import EMOTIONS
from fervideo.model_files import models_dir
from fervideo.training.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
NEUTRAL = EMOTIONS.index("neutral")


def label_sets(model: Path, data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        for split in ("public", "private"):
            r = evaluate(model, data, split, Path(d) / split, labels="both")
            f, p = r["fer2013"], r["ferplus"]
            out[split] = {
                "fer2013": round(f["accuracy"], 4),
                "fer2013_macro_f1": round(f["macro_f1"], 4),
                "ferplus": round(p["accuracy"], 4),
                "ferplus_macro_f1": round(p["macro_f1"], 4),
                "ferplus_neutral_recall": round(p["recall"][NEUTRAL], 4),
                "ferplus_faces": p["n"],
                "ferplus_dropped": p["dropped"],
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013.npz")
    ap.add_argument("--attempt", type=Path, action="append", default=[], help="a fervideo train run folder to record")
    ap.add_argument("--skip-cards", action="store_true", help="only record --attempt runs")
    ap.add_argument("--render-only", action="store_true", help="rewrite models/README_ferplus.md from the cards (no measuring)")
    args = ap.parse_args()
    m = models_dir()
    if args.render_only:
        (m / "README_ferplus.md").write_text(render(m))
        return
    if not args.skip_cards:
        for card_file, key, model in (
            ("model_card.json", None, "fervideo_emotion.tflite"),
            ("accurate_card.json", None, "fervideo_emotion_accurate.tflite"),
            ("int8_card.json", "fast", "fervideo_emotion_int8.tflite"),
            ("int8_card.json", "accurate", "fervideo_emotion_accurate_int8.tflite"),
        ):
            path = m / card_file
            cards = json.loads(path.read_text())
            card = cards[key] if key else cards
            card["label_sets"] = label_sets(m / model, args.data)
            path.write_text(json.dumps(cards, indent=1) + "\n")
            print(f"{model:<40} {json.dumps(card['label_sets']['private'])}")
    if args.attempt:
        record = m / "ferplus_attempts.json"
        attempts = json.loads(record.read_text()) if record.exists() else []
        for run in args.attempt:
            state = json.loads((run / "state.json").read_text())
            with open(run / "log.csv", newline="") as fh:
                log = list(csv.DictReader(fh))
            best = max(range(len(log)), key=lambda i: float(log[i]["val_accuracy"]))
            entry = {
                "run": run.name,
                "command": state["command"],
                "arch": state["arch"],
                "init": state["init"],
                "targets": state["targets"],
                "balance": state["balance"],
                "lr": state["lr"],
                "epochs": len(log),
                "best_epoch": best,
                "public_log": [{k: round(float(r[k]), 4) for k in ("val_fer2013", "val_ferplus", "val_accuracy")} for r in log],
                "epoch_time_s": [float(r["epoch_time_s"]) for r in log],
            }
            for name in ("model.tflite", "int8.tflite"):
                if (run / name).exists():
                    entry[name] = label_sets(run / name, args.data)
                    print(f"{run.name}/{name}: {json.dumps(entry[name]['private'])}")
            attempts = [a for a in attempts if a["run"] != run.name] + [entry]
        record.write_text(json.dumps(attempts, indent=1) + "\n")
    (m / "README_ferplus.md").write_text(render(m))


def render(m: Path) -> str:
    """models/README_ferplus.md: every shipped file and every attempt on both label sets."""
    rows = []
    cards = {
        "fast float32": json.loads((m / "model_card.json").read_text()),
        "accurate float32 (float16 weights)": json.loads((m / "accurate_card.json").read_text()),
    }
    int8 = json.loads((m / "int8_card.json").read_text())
    cards.update({"fast int8": int8["fast"], "accurate int8 (default)": int8["accurate"]})
    for name, card in cards.items():
        if "label_sets" in card:
            rows.append((name, card["label_sets"]))
    attempts = json.loads((m / "ferplus_attempts.json").read_text()) if (m / "ferplus_attempts.json").exists() else []
    for a in attempts:
        for f in ("model.tflite", "int8.tflite"):
            if f in a:
                what = "float" if f == "model.tflite" else "int8"
                rows.append(
                    (f"attempt {a['run']} ({a['arch']}, --targets {a['targets']} --balance {a['balance']}, lr {a['lr']}, {a['epochs']} epochs), {what}", a[f])
                )
    lines = [
        "# Every model on both label sets (`scripts/card_ferplus.py`)",
        "",
        "FER2013 labels: the intended expression. FER+ majority: what most of ten annotators see (7-class majority; ties broken by the",
        "FER2013 label where it is among the tied, else dropped; faces with no 7-class vote dropped: 72 of PrivateTest's 3,589).",
        "Attempts are chosen on PublicTest; PrivateTest is reported, never used to choose. Commands and PublicTest logs: `ferplus_attempts.json`.",
        "",
        "| model | PublicTest FER2013 / FER+ | PrivateTest FER2013 | PrivateTest FER+ | FER+ macro F1 | recall on faces people call neutral |",
        "|---|---|---|---|---|---|",
    ]
    for name, ls in rows:
        pub, pri = ls["public"], ls["private"]
        cells = [f"{pub['fer2013']:.1%} / {pub['ferplus']:.1%}", f"{pri['fer2013']:.1%}", f"{pri['ferplus']:.1%}"]
        cells += [f"{pri['ferplus_macro_f1']:.3f}", f"{pri['ferplus_neutral_recall']:.2f}"]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
