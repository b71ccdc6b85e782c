"""A training run's folder, as both engines keep it: the saved config (``state.json``), the epoch
log (``log.csv``), the checkpoint that ``--resume`` continues from, and ``best.keras``.

Each engine owns only its epoch loop; what a run folder holds, how a run resumes (the saved
config, a new ``--epochs`` re-planning the schedule), which files a fresh run clears, what the
best PublicTest score so far is, and the distillation targets are decided here once. Every file is
written under a temporary name and renamed (:func:`fervideo.files.atomic_output`), so a run killed
mid-write resumes from the last complete epoch.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fervideo.errors import DataFormatError, UsageError
from fervideo.files import atomic_output
from fervideo.labels import EMOTIONS
from fervideo.training import data as fer_data
from fervideo.training.config import TrainConfig
from fervideo.training.ferplus import Validation, face_weights, parse_targets, prior_corrected, soft_targets

STATE = "state.json"
LOG = "log.csv"
BEST = "best.keras"
LOG_COLUMNS = ["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "lr", "epoch_time_s", "val_fer2013", "val_ferplus"]


class RunFolder:
    """The folder ``out`` of a run whose engine checkpoints to ``checkpoint`` (``last.keras``, ``last.pt``)."""

    def __init__(self, out: str | Path, checkpoint: str) -> None:
        self.out, self.checkpoint = Path(out), checkpoint

    def path(self, name: str) -> Path:
        return self.out / name

    def config(self, given: TrainConfig, resume: bool, epochs: int | None) -> tuple[TrainConfig, bool]:
        """The run's config: ``given`` for a new run, the saved one for ``--resume``; and whether a
        new ``epochs`` changes the saved plan (the engine then re-plans its schedule from where it is)."""
        if not resume:
            if epochs is not None:
                given.epochs = epochs
            return given, False
        if not self.path(self.checkpoint).exists() or not self.path(STATE).exists():
            raise UsageError(self.out, f"--resume needs {self.checkpoint} and {STATE} from an earlier --engine {given.engine} run in this folder")
        saved = json.loads(self.path(STATE).read_text())
        replan = epochs is not None and epochs != saved["epochs"]
        if epochs is not None:
            saved["epochs"] = epochs
        return TrainConfig(**saved), replan

    def save_config(self, config: TrainConfig) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with self.saving(STATE) as tmp:
            tmp.write_text(json.dumps(asdict(config), indent=2))

    def clear(self, *names: str) -> None:
        """A fresh run in an old folder: the files that would describe another run (the log, the best model...)."""
        for name in (LOG, BEST, *names):
            self.path(name).unlink(missing_ok=True)

    @contextmanager
    def saving(self, name: str) -> Iterator[Path]:
        """A temporary path that becomes ``out/name`` when the block succeeds."""
        with atomic_output(self.path(name)) as tmp:
            yield tmp

    def log_rows(self) -> list[dict[str, str]]:
        if not self.path(LOG).exists():
            return []
        with open(self.path(LOG), newline="") as f:
            return list(csv.DictReader(f))

    def write_log(self, rows: list[dict[str, str]]) -> None:
        with self.saving(LOG) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, [c for c in LOG_COLUMNS if any(c in r for r in rows)] or LOG_COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)

    def completed_epochs(self) -> int:
        return len(self.log_rows())

    def best_score(self, rows: list[dict[str, str]] | None = None) -> float:
        """The best PublicTest accuracy logged so far (-1 before the first epoch)."""
        rows = self.log_rows() if rows is None else rows
        return max((float(r["val_accuracy"]) for r in rows if r.get("val_accuracy")), default=-1.0)


@dataclass
class TrainingSet:
    """What an engine trains on: the faces, their targets (n, 7; label smoothing is left to each
    engine's loss) and per-face loss weights (mean 1)."""

    x: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


def training_set(config: TrainConfig, dataset: fer_data.FerData, x_train: np.ndarray, y_train: np.ndarray, soft_all: np.ndarray | None) -> TrainingSet:
    """The Training faces with the targets of ``config.targets``, balanced as ``config.balance``
    says, then mixed with a teacher's probabilities at weight ``distill`` when there is one (a
    teacher model run here on the faces, or ready-made probabilities for every row of the data file).

    Class balance is computed from the label targets before distillation, so ``--targets fer2013
    --balance weights`` is the square-root class weighting the tiers were always trained with.
    """
    spec = parse_targets(config.targets)
    votes = dataset.split_votes("train")
    if spec.needs_votes and votes is None:
        raise DataFormatError(config.data, f"--targets {config.targets} needs FER+ votes (an npz with a ferplus_votes array, as ../shared/data/fer2013.npz)")
    targets, keep = soft_targets(spec, votes, y_train)
    weights = face_weights(targets[keep]) if config.balance in ("weights", "both") else np.ones(int(keep.sum()), np.float32)
    targets = targets[keep]
    if config.balance in ("prior", "both"):
        targets = prior_corrected(targets)
    soft = None
    if config.teacher:
        soft = teacher_targets(config.teacher, x_train[keep], config.teacher_tta)
    elif soft_all is not None:
        soft = soft_all[dataset.rows[dataset.usage == fer_data.SPLITS["train"]]][keep]
    if soft is not None:
        targets = (1.0 - config.distill) * targets + config.distill * soft
    return TrainingSet(x_train[keep], targets.astype(np.float32), weights)


def validation(config: TrainConfig, dataset: fer_data.FerData, y_val: np.ndarray) -> Validation:
    """PublicTest's two label sets, when the run's targets need the FER+ one to choose checkpoints."""
    votes = dataset.split_votes("public") if parse_targets(config.targets).needs_votes else None
    return Validation.of(y_val, votes)


def teacher_targets(path: str, x: np.ndarray, tta: str = "flip") -> np.ndarray:
    """The teacher's probabilities on ``x`` (n, 7) averaged over the views of ``tta``, as ``--tta flip``
    ("flip") or ``--tta full`` ("full") compute them: the averaged teacher is more accurate than
    the single pass the student must match (a ``.tflite`` teacher runs through TFLite, ~10x
    faster than Keras).

    Computed once on the un-augmented faces: the augmentations are small enough (shifts of 10%,
    rotations of ~15 degrees) that the target of a face holds for its augmented copies.
    """
    from fervideo.emotions.classifier import EmotionClassifier

    clf = EmotionClassifier(path, batch_size=64, tta=tta)
    # In chunks: predict() stacks every view of its input at once, and the 18 views of the whole
    # Training split would be ~4.8 GB of float32 pixels.
    chunk = 2048
    return np.concatenate([clf.predict(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def load_teacher_probs(path: str, dataset: fer_data.FerData, temperature: float = 1.0) -> np.ndarray:
    """Ready-made distillation targets (n, 7) for every row of ``dataset`` (zeros where the file has none).

    The file is an npz as ``../shared/models/gpu_trained/teacher_probs.npz`` ships it: ``usage`` and
    ``labels`` of the rows it covers (the data file's rows in order, PrivateTest rows left out, so
    a teacher cannot leak the test split) and one (n, 7) probability array per teacher view
    (``w64_s1``, ``w64_s1_flip``, ...). The target is their mean: an ensemble of larger networks
    trained on a GPU, which the CPU could not run per training step. Rows are matched by position
    and checked against the labels, so a file made for another data file is refused rather than
    silently mis-aligned. ``temperature`` > 1 softens the targets (logits / T, as in Hinton et al.):
    on their own training faces the teachers are ~99% right and their dark knowledge sits in the
    small probabilities.
    """
    try:
        with np.load(path) as z:
            usage, labels = z["usage"].astype(np.uint8), z["labels"].astype(np.uint8)
            views = [z[k].astype(np.float64) for k in z.files if k not in ("usage", "labels")]
    except (OSError, ValueError, KeyError) as e:
        raise DataFormatError(path, f"not a teacher-probabilities npz with usage, labels and (n, 7) arrays ({e})") from None
    if not views or any(v.shape != (len(labels), len(EMOTIONS)) for v in views):
        raise DataFormatError(path, f"needs at least one ({len(labels)}, {len(EMOTIONS)}) probability array beside usage and labels")
    covered = np.flatnonzero(dataset.usage != fer_data.SPLITS["private"])
    if len(covered) != len(labels) or not np.array_equal(dataset.usage[covered], usage) or not np.array_equal(dataset.labels[covered], labels):
        raise DataFormatError(path, f"its rows do not match the Training and PublicTest rows of {dataset.source} (made for another data file?)")
    probs = np.clip(np.mean(views, axis=0), 1e-8, 1.0)
    if temperature != 1.0:
        probs = np.exp(np.log(probs) / temperature)
    probs /= probs.sum(axis=1, keepdims=True)
    out = np.zeros((len(dataset.labels), len(EMOTIONS)), np.float32)
    out[covered] = probs
    return out
