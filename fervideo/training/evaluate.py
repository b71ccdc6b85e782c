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


LABEL_SETS = ("fer2013", "ferplus")
LABEL_TITLES = {"fer2013": "FER2013 labels (the intended expression)", "ferplus": "FER+ majority (what most of 10 people see)"}


def evaluate(
    model_path: str | Path, data_path: str | Path, split: str, out_dir: str | Path, tta: str = "off", limit: int | None = None, labels: str = "fer2013"
) -> dict[str, Any]:
    """Evaluate on ``split`` ('public' or 'private') against ``labels`` ('fer2013', 'ferplus' or
    'both') and write the report files into ``out_dir``.

    The result carries each label set's figures under its name, and the first set's at the top
    level. FER+ is scored on its 7-class majority (:func:`fervideo.training.ferplus.majority`);
    the faces that have none are dropped and counted (``dropped``).
    """
    from fervideo.errors import DataFormatError
    from fervideo.training.ferplus import majority, votes7

    sets = LABEL_SETS if labels == "both" else (labels,)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = fer_data.load(data_path)
    faces, fer_labels = dataset.split(split)
    votes = dataset.split_votes(split)
    if limit:
        faces, fer_labels = faces[:limit], fer_labels[:limit]
        votes = None if votes is None else votes[:limit]
    if len(faces) == 0:
        raise DataFormatError(data_path, f"the {split} split is empty in this data")
    if labels == "both" and votes is None:
        sets = ("fer2013",)  # a csv or image folder carries no FER+ votes: "both" is what there is
    if "ferplus" in sets and votes is None:
        raise DataFormatError(data_path, "--labels ferplus needs FER+ votes (an npz with a ferplus_votes array, as ../shared/data/fer2013.npz)")
    from fervideo.model_files import resolve_model

    model_path = resolve_model(model_path)
    pred = predict(model_path, faces, tta=tta).argmax(1)
    res: dict[str, Any] = {"labels": list(sets)}
    for name in sets:
        if name == "fer2013":
            truth, keep = fer_labels.astype(int), np.ones(len(fer_labels), bool)
        else:
            truth, keep = majority(votes, fer_labels)
        m = metrics(truth[keep], pred[keep])
        m["dropped"] = int((~keep).sum())
        if name == "ferplus":
            m["no_vote"] = int((votes7(votes).sum(1) == 0).sum())  # the rest of the dropped are ties without the FER2013 label
        res[name] = m
        _write_tables(m, out, "" if name == sets[0] else f"_{name}")
    res.update(res[sets[0]])
    res.update(split=split, tta=tta, model=str(model_path), data=str(data_path))
    _write_reports(res, fer_labels, out, Path(model_path))
    return res


def _write_tables(m: dict[str, Any], out: Path, suffix: str) -> None:
    """One label set's classification report and confusion matrix (csv and png)."""
    with atomic_output(out / f"classification_report{suffix}.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["class", "precision", "recall", "f1", "support"])
        w.writerows(_class_rows(m))
        w.writerow(["accuracy", "", "", f"{m['accuracy']:.4f}", str(m["n"])])
        w.writerow(["macro_f1", "", "", f"{m['macro_f1']:.4f}", str(m["n"])])
    with atomic_output(out / f"confusion_matrix{suffix}.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["true\\pred", *EMOTIONS])
        for e, r in zip(EMOTIONS, m["confusion"]):
            w.writerow([e, *r])
    _plot_confusion(np.array(m["confusion"]), out / f"confusion_matrix{suffix}.png")


def _class_rows(m: dict[str, Any]) -> list[list[str]]:
    return [[e, f"{m['precision'][i]:.4f}", f"{m['recall'][i]:.4f}", f"{m['f1'][i]:.4f}", str(m["support"][i])] for i, e in enumerate(EMOTIONS)]


def _write_reports(res: dict[str, Any], labels: np.ndarray, out: Path, model_path: Path) -> None:
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(res, indent=2))
    _plot_distribution(labels, res["split"], out / "class_distribution.png")
    curves = None
    log = model_path.parent / "log.csv"
    if log.exists():
        curves = out / "training_curves.png"
        plot_training_curves(log, curves)
    md = [f"# Evaluation of `{model_path.name}` on {res['split']} ({TTA_TITLES[res['tta']]})", "", f"- data: `{res['data']}`"]
    for i, name in enumerate(res["labels"]):
        m, suffix = res[name], "" if i == 0 else f"_{name}"
        dropped = ""
        if name == "ferplus":
            dropped = (
                f"; {m['dropped']} dropped ({m['no_vote']} with no 7-class vote, {m['dropped'] - m['no_vote']} tied without the FER2013 label among the tied)"
            )
        md += [
            "",
            f"## {LABEL_TITLES[name]}",
            "",
            f"- {m['n']} faces{dropped}",
            f"- **accuracy: {m['accuracy'] * 100:.2f}%**, macro F1: {m['macro_f1']:.4f}",
            "",
            "| class | precision | recall | F1 | support |",
            "|---|---|---|---|---|",
            *[f"| {' | '.join(r)} |" for r in _class_rows(m)],
            "",
            f"![confusion matrix, {name}](confusion_matrix{suffix}.png)",
        ]
    md += ["", "![class distribution](class_distribution.png)"]
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
