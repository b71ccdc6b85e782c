"""Install a GPU-trained ``vgg_lite`` model as the ``accurate`` tier and write its model card.

    python scripts/make_accurate_model.py ../shared/models/gpu_trained/vgg_lite_w96_s1.keras \\
        --ensemble ../shared/models/gpu_trained/vgg_lite_w64_s1.keras ../shared/models/gpu_trained/vgg_lite_w64_s2.keras

The source's weights are loaded into this project's own ``vgg_lite(width)`` (so the shipped file is
our architecture, not whatever saved it), saved as ``models/fervideo_emotion_accurate.keras``,
exported to the float32 ``.tflite`` the tool runs (float16 weights were measured at 1.9e-3 from
Keras, over the 1e-3 the tier allows, because TFLite folds batch norm into the convolutions before
rounding), checked to agree with Keras, and evaluated on both test splits with each TTA mode
exactly as ``fervideo evaluate --model accurate`` does. ``--ensemble`` also measures the mean of
the accurate model and the given models (not shipped unless it earns its cost: the card says).
Writes ``models/accurate_card.json`` and ``models/README_accurate.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fervideo.emotions.classifier import TTA_MODES, EmotionClassifier
from fervideo.files import sha256_of
from fervideo.labels import EMOTIONS
from fervideo.model_files import ACCURATE_KERAS, ACCURATE_MODEL
from fervideo.training import data as fer_data
from fervideo.training.evaluate import evaluate, metrics, predict
from fervideo.training.export import export_tflite, max_abs_difference

ROOT = Path(__file__).resolve().parent.parent


def faces_per_second(model: Path, batch: int = 64, n: int = 4096, tta: str = "off") -> float:
    """Classifier throughput on 2 threads, best of 3 (the benchmark's method)."""
    clf = EmotionClassifier(model, batch_size=batch, num_threads=2, tta=tta)
    x = np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)
    clf.predict(x[:batch])
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, n, batch):
            clf.predict(x[i : i + batch])
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="a .keras file of vgg_lite(width) weights")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--ensemble", type=Path, nargs="*", default=[], help="more .keras models to measure the mean with")
    ap.add_argument("--provenance", default="", help="how the source was trained (recipe, machine)")
    ap.add_argument("--render-only", action="store_true", help="rewrite README_accurate.md from accurate_card.json (no measuring)")
    args = ap.parse_args()
    if args.render_only:
        card = json.loads((args.out / "accurate_card.json").read_text())
        (args.out / "README_accurate.md").write_text(render(card))
        return
    from fervideo.emotions.architectures import import_keras, vgg_lite
    from fervideo.emotions.specs import parse_arch

    keras = import_keras()
    src = keras.saving.load_model(args.source, compile=False)
    spec = parse_arch(src.name)
    if spec.family != "vgg_lite":
        raise SystemExit(f"{args.source}: not a vgg_lite_w<width> model (name {src.name!r})")
    model = vgg_lite(spec)
    model.set_weights(src.get_weights())
    out = args.out
    keras_path, tflite_path = out / ACCURATE_KERAS, out / ACCURATE_MODEL
    model.save(keras_path)
    export_tflite(keras_path, tflite_path)
    data = fer_data.load(args.data)
    diff = max_abs_difference(keras_path, tflite_path, data.split("private")[0][:512, :, :, 0])
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for split in ("public", "private"):
            for tta in TTA_MODES:
                results[f"{split}_{tta}"] = evaluate(tflite_path, args.data, split, Path(d) / f"{split}{tta}", tta=tta)
    speed = {tta: faces_per_second(tflite_path, tta=tta) for tta in ("off", "flip")}
    card = {
        "model": ACCURATE_MODEL,
        "keras": ACCURATE_KERAS,
        "source": args.source.name,
        "provenance": args.provenance,
        "architecture": model.name,
        "parameters": int(model.count_params()),
        "data_sha256": sha256_of(args.data) if args.data.suffix == ".npz" else "",
        "accuracy": {k: v["accuracy"] for k, v in results.items()},
        "private_macro_f1": results["private_off"]["macro_f1"],
        "private_recall": dict(zip(EMOTIONS, results["private_off"]["recall"])),
        "keras_vs_tflite_max_abs_diff": diff,
        "faces_per_s_2_threads": speed,
        "tflite_bytes": tflite_path.stat().st_size,
        "keras_bytes": keras_path.stat().st_size,
    }
    if args.ensemble:
        card["ensemble"] = measure_ensemble([tflite_path, *args.ensemble], data, Path(tempfile.mkdtemp()))
    (out / "accurate_card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "README_accurate.md").write_text(render(card))
    print(json.dumps({k: card[k] for k in ("accuracy", "faces_per_s_2_threads", "keras_vs_tflite_max_abs_diff")}, indent=1))
    if "ensemble" in card:
        print(json.dumps(card["ensemble"], indent=1))


def measure_ensemble(models: list[Path], data: fer_data.FerData, tmp: Path) -> dict:
    """Accuracy of the mean probabilities of ``models`` per split and TTA mode, and its cost."""
    tflites = []
    for m in models:
        if m.suffix == ".keras":
            t = tmp / (m.stem + ".tflite")
            export_tflite(m, t)
            m = t
        tflites.append(m)
    res: dict = {"members": [m.stem for m in models]}
    for split in ("public", "private"):
        faces, labels = data.split(split)
        for tta in ("off", "flip"):  # 18 views of three networks: ~1 hour on 2 cores, not worth it
            probs = np.mean([predict(m, faces, tta=tta) for m in tflites], axis=0)
            res[f"{split}_{tta}"] = metrics(labels.astype(int), probs.argmax(1))["accuracy"]
    res["faces_per_s_2_threads"] = 1.0 / sum(1.0 / faces_per_second(m) for m in tflites)
    res["tflite_bytes"] = sum(m.stat().st_size for m in tflites)
    return res


def render(c: dict) -> str:
    pct = lambda v: f"{100 * v:.2f}%"  # noqa: E731
    a = c["accuracy"]
    rec = " · ".join(f"{e} {pct(c['private_recall'][e])}" for e in EMOTIONS)
    ens = ""
    if "ensemble" in c:
        e = c["ensemble"]
        ens = f"""
## The ensemble (measured, not shipped)

Mean of {", ".join(f"`{m}`" for m in e["members"])}: PrivateTest {pct(e["private_off"])}, `--tta flip` {pct(e["private_flip"])};
PublicTest {pct(e["public_off"])}, `--tta flip` {pct(e["public_flip"])};
{e["faces_per_s_2_threads"]:.0f} faces/s on 2 threads, {e["tflite_bytes"] / 1e6:.0f} MB of TFLite.
Not shipped: the accurate model alone with `--tta flip` reaches {pct(a["private_flip"])} (the ensemble's single pass:
{pct(e["private_off"])}) at about the same cost ({c["faces_per_s_2_threads"]["flip"]:.0f} faces/s), and with `--tta full` {pct(a["private_full"])},
above the ensemble's best ({pct(e["private_flip"])}); the ensemble would add {(e["tflite_bytes"] - c["tflite_bytes"]) / 1e6:.0f} MB to the wheel for nothing
the accurate model cannot already buy with TTA.
"""
    fp16 = c.get("tflite_weights") == "float16"
    kind = "TFLite, float16 weights computed in float32" if fp16 else "TFLite, float32"
    full_note = " (`--tta full`: measured on the float32-weights file, not re-measured)" if fp16 else ""
    if fp16:
        f = c["float16"]
        why = f"""Why float16 weights (issue 23): the wheel ships each tier's weights once, in the smallest form that
serves every path. The GPU path runs this file's own graph in PyTorch, so no `.keras` copy ships (it
stays in the checkout for training), and float16 storage halves the file
({f["float32_tflite_bytes"] / 1e6:.1f} MB -> {f["tflite_bytes"] / 1e6:.1f} MB; the runtime widens the weights at load, so
speed and arithmetic are float32). Measured as a model of its own (`python scripts/make_fp16.py`):
PrivateTest {pct(f["float32_file_accuracy"]["private_off"])} -> {pct(f["accuracy"]["private_off"])},
`--tta flip` {pct(f["float32_file_accuracy"]["private_flip"])} -> {pct(f["accuracy"]["private_flip"])};
PublicTest (the rule: at most 0.1 points lost) {pct(f["float32_file_accuracy"]["public_off"])} -> {pct(f["accuracy"]["public_off"])};
max abs probability difference {f["max_abs_diff_vs_float32_file"]:.1e} from the float32 file and {f["max_abs_diff_vs_keras"]:.1e} from Keras
(TFLite folds batch norm into the convolutions before rounding); the GPU path equals this file to ~1e-6."""
    else:
        why = """Why float32: with float16 weights the TFLite file would be 21 MB, but its outputs were 1.9e-3 from
the Keras model's (TFLite folds batch norm into the convolutions before rounding), over the 1e-3 this
tier allows."""
    return f"""# Model card: `{c["model"]}` (`--model accurate`)

The accurate tier: the project's own `vgg_lite` architecture at width 96 ({c["parameters"]:,} parameters),
trained on a GPU. `{c["keras"]}` is the same network for Keras; `{c["model"]}` ({kind}) is what the
tool runs. Same contract as the fast model: raw grayscale pixels 0-255 shaped (N, 48, 48, 1) in, 7 softmax
probabilities (angry, disgust, fear, happy, sad, surprise, neutral) out. Regenerate with
`python scripts/make_accurate_model.py SOURCE.keras` (see its docstring).

| | |
|---|---|
| source | `{c["source"]}` |
| provenance | {c["provenance"]} |
| data | `fer2013.npz`, sha256 `{c["data_sha256"]}`; Training for gradients, PublicTest for the epoch choice, PrivateTest only for this card |
| **PrivateTest accuracy** | **{pct(a["private_off"])}**; `--tta flip` {pct(a["private_flip"])}; `--tta full` {pct(a["private_full"])}{full_note} |
| PublicTest accuracy | {pct(a["public_off"])}; `--tta flip` {pct(a["public_flip"])}; `--tta full` {pct(a["public_full"])}{full_note} |
| PrivateTest macro F1 | {c["private_macro_f1"]:.4f} |
| PrivateTest recall | {rec} |
| Keras vs TFLite | max abs difference {c["keras_vs_tflite_max_abs_diff"]:.2e} on 512 PrivateTest faces |
| speed | {c["faces_per_s_2_threads"]["off"]:.0f} faces/s on 2 CPU threads ({c["faces_per_s_2_threads"]["flip"]:.0f} with `--tta flip`) |
| file sizes | `.tflite` {c["tflite_bytes"] / 1e6:.1f} MB, `.keras` {c["keras_bytes"] / 1e6:.1f} MB (checkout only: the wheel ships the TFLite files) |
{("| **end to end** (issue 21) | " + c["e2e"] + " |" + chr(10)) if c.get("e2e") else ""}
Reproduce the figures: `fervideo evaluate --model accurate --data ../shared/data/fer2013.npz --split private --out runs/eval_accurate`
(add `--tta flip` or `--tta full`).

Retrain it with the project's own command, on a CUDA GPU (the `gpu` and `train` extras). The engine
implements the recipe above (the shared script ran it at ~2.5 s an epoch, ~11 minutes a model, on an
H100); no GPU was lent to the task that wrote the engine, so it has been run on a CPU only (CI trains
2 epochs on a subset with it), not yet timed on a GPU. Then install the result with this script:
`fervideo train --engine torch --arch vgg_lite_w96 --data fer2013.npz --epochs 257 --batch-size 128 --lr 0.1 --warmup-epochs 3 --patience 300 --out runs/w96`
and `python scripts/make_accurate_model.py runs/w96/best.keras`. The engine checks that the Keras copy
of its weights gives the PyTorch model's probabilities within 1e-4 before it writes `best.keras`.

{why}
Why this network and not a distilled small one: see the fast model's card ("Distillation").
{ens}"""


if __name__ == "__main__":
    main()
