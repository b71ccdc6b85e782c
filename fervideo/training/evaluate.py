"""Evaluation report: accuracy, macro F1, per-class table, confusion matrix, plots, report.md.

The model is run exactly as the tool runs it: a ``.tflite`` through the same
:class:`~fervideo.emotions.classifier.EmotionClassifier`, a ``.keras`` through Keras. ``--tta flip``
averages each face's probabilities with those of its mirror image, ``--tta full`` over 18 views
(see :data:`~fervideo.emotions.classifier.TTA_MODES`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.files import atomic_output
from fervideo.labels import EMOTIONS
from fervideo.training import data as fer_data

TTA_TITLES = {"off": "without TTA", "flip": "with flip TTA", "full": "with 18-view TTA"}


def predict(model_path: str | Path, faces: np.ndarray, tta: str = "off") -> np.ndarray:
    """Probabilities (n, 7) for uint8 faces (n, 48, 48[, 1])."""
    from fervideo.emotions.classifier import EmotionClassifier

    clf = EmotionClassifier(model_path, batch_size=128, tta=tta)  # the tool's own TTA path
    return _chunked(clf, faces.reshape(-1, 48, 48))


def _chunked(clf: Any, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    return np.concatenate([clf.predict(np.ascontiguousarray(x[i : i + chunk])) for i in range(0, len(x), chunk)])


def metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, confusion matrix and per-class precision/recall/F1 (no scikit-learn needed)."""
    k = len(EMOTIONS)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(len(y_true)),
        "accuracy": float(tp.sum() / max(1, len(y_true))),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "confusion": cm.tolist(),
    }


def evaluate(model_path: str | Path, data_path: str | Path, split: str, out_dir: str | Path, tta: str = "off", limit: int | None = None) -> dict[str, Any]:
    """Evaluate on ``split`` ('public' or 'private') and write the report files into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = fer_data.load(data_path)
    faces, labels = dataset.split(split)
    if limit:
        faces, labels = faces[:limit], labels[:limit]
    if len(faces) == 0:
        from fervideo.errors import DataFormatError

        raise DataFormatError(data_path, f"the {split} split is empty in this data")
    from fervideo.model_files import resolve_model

    model_path = resolve_model(model_path)
    probs = predict(model_path, faces, tta=tta)
    res = metrics(labels.astype(int), probs.argmax(1))
    res.update(split=split, tta=tta, model=str(model_path), data=str(data_path))
    _write_reports(res, labels, out, Path(model_path))
    return res


def _write_reports(res: dict[str, Any], labels: np.ndarray, out: Path, model_path: Path) -> None:
    rows = [[e, f"{res['precision'][i]:.4f}", f"{res['recall'][i]:.4f}", f"{res['f1'][i]:.4f}", str(res["support"][i])] for i, e in enumerate(EMOTIONS)]
    header = ["class", "precision", "recall", "f1", "support"]
    with atomic_output(out / "classification_report.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        w.writerow(["accuracy", "", "", f"{res['accuracy']:.4f}", str(res["n"])])
        w.writerow(["macro_f1", "", "", f"{res['macro_f1']:.4f}", str(res["n"])])
    with atomic_output(out / "confusion_matrix.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["true\\pred", *EMOTIONS])
        for e, r in zip(EMOTIONS, res["confusion"]):
            w.writerow([e, *r])
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(res, indent=2))
    _plot_confusion(np.array(res["confusion"]), out / "confusion_matrix.png")
    _plot_distribution(labels, res["split"], out / "class_distribution.png")
    curves = None
    log = model_path.parent / "log.csv"
    if log.exists():
        curves = out / "training_curves.png"
        plot_training_curves(log, curves)
    md = [
        f"# Evaluation of `{model_path.name}` on {res['split']} ({TTA_TITLES[res['tta']]})",
        "",
        f"- data: `{res['data']}`, {res['n']} faces",
        f"- **accuracy: {res['accuracy'] * 100:.2f}%**, macro F1: {res['macro_f1']:.4f}",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "![class distribution](class_distribution.png)",
    ]
    if curves is not None:
        md += ["", "![training curves](training_curves.png)"]
    with atomic_output(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")


def _figure(size: tuple[float, float], ncols: int = 1) -> tuple[Any, Any]:
    """A figure from matplotlib's object API: no pyplot, so a notebook's backend is left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(1, ncols)


def _plot_confusion(cm: np.ndarray, path: Path) -> None:
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = _figure((6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, label="share of true class")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def _plot_distribution(labels: np.ndarray, split: str, path: Path) -> None:
    from fervideo.labels import EMOTION_COLORS

    counts = np.bincount(labels.astype(int), minlength=len(EMOTIONS))
    fig, ax = _figure((6.5, 3.5))
    ax.bar(EMOTIONS, counts, color=[EMOTION_COLORS[e] for e in EMOTIONS])
    for i, c in enumerate(counts):
        ax.text(i, c, str(c), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("faces")
    ax.set_title(f"class distribution ({split})")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


def plot_training_curves(log_csv: str | Path, path: str | Path) -> None:
    """Loss and accuracy per epoch (train and PublicTest) from a training ``log.csv``."""
    import pandas as pd

    df = pd.read_csv(log_csv)
    epochs = df["epoch"] + 1
    fig, (a1, a2) = _figure((10, 3.6), ncols=2)
    a1.plot(epochs, df["loss"], label="train")
    a1.plot(epochs, df["val_loss"], label="PublicTest")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(epochs, df["accuracy"], label="train (augmented)")
    a2.plot(epochs, df["val_accuracy"], label="PublicTest")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.legend()
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
