"""FER+ human consensus: the majority label people see, and soft training targets built from the votes.

FER2013's labels came from the search keywords the images were found with (the *intended*
expression); the FER+ relabelling (Barsoum et al. 2016, ten annotators a face) is what people
*perceive*. The two agree on only ~64% of faces, so the tool is trained and judged on both.

The vote columns are in FER+ order (neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown, not-a-face), not ours: :data:`FERPLUS_COLUMN` maps each of our classes to its
column, and contempt, unknown and not-a-face votes never become one of our seven classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fervideo.errors import UsageError
from fervideo.labels import EMOTIONS

# Our class i is FER+ column FERPLUS_COLUMN[i]: angry<-anger, disgust<-disgust, fear<-fear,
# happy<-happiness, sad<-sadness, surprise<-surprise, neutral<-neutral.
FERPLUS_COLUMN = (4, 5, 6, 1, 3, 2, 0)
NOT_A_FACE = 9
TARGETS_HELP = "fer2013 (one-hot labels), ferplus (FER+ vote distributions) or mix:W (W x FER+ + (1-W) x FER2013)"
BALANCES = ("weights", "prior", "both", "none")


@dataclass(frozen=True)
class Targets:
    """What a run trains towards: the FER+ weight ``w`` (0 = FER2013 labels only, 1 = FER+ votes only)."""

    w: float

    @property
    def name(self) -> str:
        return "fer2013" if self.w == 0 else "ferplus" if self.w == 1 else f"mix:{self.w:g}"

    @property
    def needs_votes(self) -> bool:
        return self.w > 0


def parse_targets(text: str) -> Targets:
    """``fer2013``, ``ferplus`` or ``mix:W`` with 0 <= W <= 1; a usage error (exit 2) otherwise."""
    if text == "fer2013":
        return Targets(0.0)
    if text == "ferplus":
        return Targets(1.0)
    if text.startswith("mix:"):
        try:
            w = float(text[4:])
        except ValueError:
            w = -1.0
        if 0.0 <= w <= 1.0:
            return Targets(w)
    raise UsageError(None, f"unknown --targets {text!r}; choose {TARGETS_HELP}")


def votes7(votes: np.ndarray) -> np.ndarray:
    """The (n, 10) FER+ votes as (n, 7) counts in our class order (contempt, unknown, not-a-face dropped)."""
    return votes[:, FERPLUS_COLUMN].astype(np.float32)


def not_a_face(votes: np.ndarray) -> np.ndarray:
    """Faces whose FER+ majority says the image is not a face (more not-a-face votes than any other column)."""
    others = np.delete(votes, NOT_A_FACE, axis=1).max(axis=1)
    return votes[:, NOT_A_FACE] > others


def majority(votes: np.ndarray, fer_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 7-class FER+ majority label of each face, and which faces have one.

    Ties are broken by the FER2013 label where it is among the tied classes, else the face is
    dropped; a face with no vote for any of the seven classes is dropped too.
    """
    v = votes7(votes)
    top = v.max(axis=1)
    tied = (v == top[:, None]) & (top[:, None] > 0)
    n_tied = tied.sum(axis=1)
    label = v.argmax(axis=1)
    fer_in_tie = tied[np.arange(len(v)), fer_labels.astype(int)]
    label = np.where((n_tied > 1) & fer_in_tie, fer_labels.astype(int), label)
    keep = (n_tied == 1) | ((n_tied > 1) & fer_in_tie)
    return label.astype(np.int64), keep


def soft_targets(targets: Targets, votes: np.ndarray | None, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training targets (n, 7) and which faces train at all.

    ``ferplus``: each face's vote distribution over the seven classes (Barsoum et al.'s
    cross-entropy scheme). Faces FER+ calls not-a-face are left out; faces with no 7-class vote
    keep their FER2013 label. ``mix:W`` is W x that + (1 - W) x the FER2013 one-hot.
    """
    one_hot = np.eye(len(EMOTIONS), dtype=np.float32)[labels.astype(int)]
    keep = np.ones(len(labels), bool)
    if not targets.needs_votes:
        return one_hot, keep
    assert votes is not None, "callers check that the data carries FER+ votes"
    v = votes7(votes)
    total = v.sum(axis=1, keepdims=True)
    dist = np.where(total > 0, v / np.maximum(total, 1), one_hot)
    keep = ~not_a_face(votes)
    return (targets.w * dist + (1 - targets.w) * one_hot).astype(np.float32), keep


def prior_corrected(targets: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Each face's target divided by (its class's share of all target mass) ** power, renormalised.

    In Training a third of FER+ votes say neutral and 1.8% disgust: trained on raw votes the
    network learns that prior and calls posed anger, fear and sadness neutral. Dividing by the
    square root of the share kept the FER+ gain and brought posed expressions back (issue 33).
    """
    share = targets.sum(axis=0) / targets.sum()
    out = targets / np.maximum(share, 1e-6) ** power
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def face_weights(targets: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Per-face loss weights from the targets in use: class weight (N / (K n_c)) ** power, where n_c
    is the class's target mass, averaged over each face's target; mean 1. On one-hot targets this
    is the square-root class weighting the tiers were trained with."""
    mass = np.maximum(targets.sum(axis=0), 1e-6)
    w = (targets.sum() / (len(EMOTIONS) * mass)) ** power
    per_face = targets @ w
    return (per_face / per_face.mean()).astype(np.float32)


def selection_score(targets: Targets, fer2013_acc: float, ferplus_acc: float | None) -> float:
    """What checkpoints and early stopping maximise on PublicTest: the accuracy on the targets' own
    label set (for ``mix:W`` the same mix of the two accuracies)."""
    if ferplus_acc is None:
        return fer2013_acc
    return targets.w * ferplus_acc + (1 - targets.w) * fer2013_acc


@dataclass
class Validation:
    """PublicTest faces with both label sets, scored once per epoch by either engine."""

    labels: np.ndarray
    plus_labels: np.ndarray | None
    plus_keep: np.ndarray | None

    @classmethod
    def of(cls, labels: np.ndarray, votes: np.ndarray | None) -> Validation:
        if votes is None:
            return cls(labels.astype(np.int64), None, None)
        plus, keep = majority(votes, labels)
        return cls(labels.astype(np.int64), plus, keep)

    def scores(self, pred: np.ndarray) -> tuple[float, float | None]:
        """Accuracy of predicted classes ``pred`` on FER2013 labels, and on the FER+ majority (None without votes)."""
        fer = float((pred == self.labels).mean())
        if self.plus_labels is None or self.plus_keep is None:
            return fer, None
        return fer, float((pred[self.plus_keep] == self.plus_labels[self.plus_keep]).mean())
