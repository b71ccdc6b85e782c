"""FER+ consensus labels (issue 33): the majority rule, the soft targets, class balance, and the
``evaluate --labels`` / ``train --targets`` flags end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FER_NPZ, need_fer_npz, run_cli

from fervideo.errors import UsageError
from fervideo.labels import EMOTIONS
from fervideo.training.ferplus import (
    FERPLUS_COLUMN,
    Targets,
    Validation,
    majority,
    parse_targets,
    prior_corrected,
    selection_score,
    soft_targets,
)

# FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
HAPPY, ANGRY, NEUTRAL, FEAR = EMOTIONS.index("happy"), EMOTIONS.index("angry"), EMOTIONS.index("neutral"), EMOTIONS.index("fear")


def _votes(**by_column: int) -> np.ndarray:
    cols = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "nf"]
    v = np.zeros(10, np.uint8)
    for k, n in by_column.items():
        v[cols.index(k)] = n
    return v


def test_column_order_maps_ferplus_to_ours() -> None:
    ours = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear"]
    for i, e in enumerate(EMOTIONS):
        assert ours[FERPLUS_COLUMN[i]] == e


def test_majority_ties_and_missing_votes() -> None:
    votes = np.stack(
        [
            _votes(happiness=6, neutral=4),  # clear majority: happy
            _votes(anger=4, neutral=4, contempt=2),  # tie, FER2013 says angry: angry
            _votes(anger=4, neutral=4),  # tie, FER2013 says fear (not tied): dropped
            _votes(contempt=5, unknown=5),  # no 7-class vote: dropped
            _votes(fear=3, nf=7),  # not-a-face majority, but a 7-class vote: fear
        ]
    )
    fer = np.array([NEUTRAL, ANGRY, FEAR, HAPPY, FEAR])
    label, keep = majority(votes, fer)
    assert keep.tolist() == [True, True, False, False, True]
    assert label[keep].tolist() == [HAPPY, ANGRY, FEAR]


def test_soft_targets_mix_and_leave_out_not_a_face() -> None:
    votes = np.stack([_votes(happiness=8, neutral=2), _votes(nf=8, neutral=2), _votes(unknown=10)])
    labels = np.array([NEUTRAL, NEUTRAL, ANGRY])
    t, keep = soft_targets(Targets(1.0), votes, labels)
    assert keep.tolist() == [True, False, True]
    assert abs(t[0, HAPPY] - 0.8) < 1e-6 and abs(t[0, NEUTRAL] - 0.2) < 1e-6
    assert t[2, ANGRY] == 1.0  # no 7-class vote: keeps its FER2013 label
    m, _ = soft_targets(parse_targets("mix:0.25"), votes, labels)
    assert abs(m[0, HAPPY] - 0.2) < 1e-6 and abs(m[0, NEUTRAL] - 0.8) < 1e-6
    one_hot, keep = soft_targets(parse_targets("fer2013"), None, labels)
    assert keep.all() and (one_hot.argmax(1) == labels).all()
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)


def test_prior_correction_lifts_rare_classes() -> None:
    t = np.zeros((100, 7), np.float32)
    t[:90, NEUTRAL] = 1.0
    t[90:, FEAR] = 0.5
    t[90:, NEUTRAL] = 0.5
    c = prior_corrected(t)
    assert c[95, FEAR] > 0.5 > c[95, NEUTRAL]  # the mixed faces lean to the rare class
    np.testing.assert_allclose(c.sum(1), 1.0, rtol=1e-6)
    assert c[0, NEUTRAL] == 1.0  # a one-class target stays what it is


def test_targets_flag_values() -> None:
    assert parse_targets("ferplus").name == "ferplus" and parse_targets("mix:0.7").w == 0.7
    for bad in ("mix:1.5", "mix:x", "plus", "mix:"):
        with pytest.raises(UsageError):
            parse_targets(bad)
    v = Validation.of(np.array([HAPPY, ANGRY]), np.stack([_votes(happiness=9), _votes(neutral=9)]))
    fer, plus = v.scores(np.array([HAPPY, NEUTRAL]))
    assert fer == 0.5 and plus == 1.0
    assert selection_score(Targets(0.7), fer, plus) == pytest.approx(0.85)


def test_evaluate_reports_both_label_sets(tmp_path: Path) -> None:
    need_fer_npz()
    out = tmp_path / "ev"
    proc = run_cli("evaluate", "--model", "fast", "--data", str(FER_NPZ), "--split", "private", "--limit", "600", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == ["fer2013", "ferplus"] and m["accuracy"] == m["fer2013"]["accuracy"]
    plus = m["ferplus"]
    assert plus["n"] + plus["dropped"] == 600 and 0 <= plus["no_vote"] <= plus["dropped"]
    assert 0.4 < plus["accuracy"] < 1.0
    for f in ("confusion_matrix_ferplus.csv", "classification_report_ferplus.csv", "confusion_matrix_ferplus.png"):
        assert (out / f).is_file(), f
    report = (out / "report.md").read_text()
    assert "FER+ majority" in report and "FER2013 labels" in report and f"{plus['dropped']} dropped" in report
    assert "private, ferplus: accuracy" in proc.stdout
    proc = run_cli("evaluate", "--model", "fast", "--data", str(FER_NPZ), "--limit", "300", "--out", str(tmp_path / "e2"), "--labels", "ferplus")
    assert proc.returncode == 0 and json.loads((tmp_path / "e2" / "metrics.json").read_text())["labels"] == ["ferplus"]


@pytest.mark.slow
def test_train_on_ferplus_targets_chooses_on_ferplus(tmp_path: Path) -> None:
    need_fer_npz()
    run = tmp_path / "run"
    args = ["--data", str(FER_NPZ), "--limit", "300", "--epochs", "1", "--out", str(run), "--targets", "mix:0.5", "--balance", "both"]
    proc = run_cli("train", *args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = pd.read_csv(run / "log.csv")
    row = log.iloc[0]
    assert row["val_accuracy"] == pytest.approx(0.5 * row["val_fer2013"] + 0.5 * row["val_ferplus"])
    state = json.loads((run / "state.json").read_text())
    assert state["targets"] == "mix:0.5" and state["balance"] == "both"


def test_ferplus_targets_need_votes(tmp_path: Path) -> None:
    csv = tmp_path / "fer2013.csv"
    px = " ".join(["128"] * 48 * 48)
    csv.write_text("emotion,pixels,Usage\n" + "".join(f"{i % 7},{px},{u}\n" for i, u in enumerate(["Training"] * 7 + ["PublicTest"] * 7)))
    proc = run_cli("train", "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "r"), "--targets", "ferplus")
    ours = [line for line in proc.stderr.splitlines() if line.startswith("fervideo:")]
    assert proc.returncode == 3 and len(ours) == 1 and "FER+ votes" in ours[0], proc.stderr[-2000:]
    proc = run_cli("train", "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "r"), "--targets", "plus")
    assert proc.returncode == 2 and "--targets" in proc.stderr
    proc = run_cli("train", "--data", str(csv), "--epochs", "1", "--out", str(tmp_path / "r"), "--balance", "sqrt")
    assert proc.returncode == 2 and "--balance" in proc.stderr
