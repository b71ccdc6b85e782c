"""Model tiers, distillation targets, the PyTorch training engine and the --device GPU path (issue 14).

The GPU path is tested on the CPU ("torch-cpu" runs the very code ``--device gpu`` runs, on the
CPU's PyTorch): the timeline must match the TFLite path within 1e-3 probability.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import FER_NPZ, ROOT, SAMPLES, need_extra, need_fer_npz, run_cli

from fervideo.training import data as fer_data

ACCURATE_CARD = ROOT / "models" / "accurate_card.json"


# ------------------------------------------------------------------ tiers


def test_tiers_resolve_from_checkout_or_wheel() -> None:
    from fervideo.model_files import TIERS, models_dir, resolve_model

    for name, (tflite, keras) in TIERS.items():
        assert resolve_model(name) == models_dir() / tflite
        assert (models_dir() / tflite).is_file() and (models_dir() / keras).is_file(), name
    from fervideo.model_files import DEFAULT_PRECISION, DEFAULT_TIER, int8_name
    from fervideo.pipeline import Options

    assert (DEFAULT_TIER, DEFAULT_PRECISION, Options().precision) == ("accurate", "int8", "int8")  # issue 23's rule: see models.py
    assert resolve_model(None, "int8").name == int8_name(TIERS["accurate"][0])
    assert resolve_model(None).name == TIERS["accurate"][0]
    assert resolve_model("some/file.tflite") == Path("some/file.tflite")


@pytest.mark.slow
def test_accurate_tier_contract_and_card(tmp_path: Path) -> None:
    """The accurate tier: its float16-weights TFLite within what its card measured of its Keras file
    (a model of its own since issue 23), and `fervideo evaluate --model accurate` reproduces the
    card's PrivateTest figure."""
    need_fer_npz()
    from fervideo.model_files import ACCURATE_KERAS, models_dir
    from fervideo.training.export import max_abs_difference

    faces = fer_data.load(FER_NPZ).split("private")[0][:128, :, :, 0]
    pytest.importorskip("keras", reason="needs the train extra")
    card = json.loads(ACCURATE_CARD.read_text())
    assert card["tflite_weights"] == "float16" and card["float16"]["accepted"]
    diff = max_abs_difference(models_dir() / ACCURATE_KERAS, models_dir() / "fervideo_emotion_accurate.tflite", faces)
    assert diff <= 1.5 * card["keras_vs_tflite_max_abs_diff"]
    proc = run_cli("evaluate", "--model", "accurate", "--data", str(FER_NPZ), "--split", "private", "--out", str(tmp_path / "ev"), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads((tmp_path / "ev" / "metrics.json").read_text())["accuracy"]
    assert abs(got - card["accuracy"]["private_off"]) <= 0.0005, (got, card["accuracy"])
    assert got > 0.72  # vs the fast tier's 67.7%


def test_model_accurate_runs_the_pipeline(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    proc = run_cli("timeline", str(SAMPLES / "two_astronauts.mp4"), "--csv", str(csv), "--model", "accurate", "-q")
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(csv)
    assert df["face_id"].nunique() == 2 and (df["emotion"] == "happy").mean() > 0.9


# ------------------------------------------------------------------ int8 models (issue 23)


@pytest.mark.parametrize("tier", ["fast", "accurate"])
def test_int8_model_of_each_tier(tier: str) -> None:
    """Each tier's int8 file resolves with --precision int8, runs, gives each face the same
    probabilities whatever batch it is in (chunked analysis relies on it), and is within 0.03 of
    the float model on real faces (it is a model of its own: its accuracy is on its card)."""
    from fervideo.emotions.classifier import EmotionClassifier
    from fervideo.model_files import TIERS, int8_name, models_dir, resolve_model

    path = resolve_model(tier, "int8")
    assert path == models_dir() / int8_name(TIERS[tier][0]) and path.is_file()
    assert resolve_model(tier, "float32") == models_dir() / TIERS[tier][0]
    assert resolve_model("some/file.tflite", "int8") == Path("some/file.tflite")
    faces = np.stack([cv2.resize(f, (48, 48)) for f in _sample_faces()])
    q = EmotionClassifier(tier, precision="int8", batch_size=8)
    whole = q.predict(faces)
    one_by_one = np.concatenate([q.predict(faces[i : i + 1]) for i in range(len(faces))])
    assert np.array_equal(whole, one_by_one)
    assert np.abs(whole.sum(1) - 1).max() < 1e-5  # rescaled from the int8 softmax
    card = json.loads((ROOT / "models" / "int8_card.json").read_text())[tier]
    assert card["installed"] and card["file"] == path.name
    assert card["private"]["float32"] - card["private"]["int8"] <= 0.003, card["private"]


def _sample_faces() -> list[np.ndarray]:
    """Gray crops of the samples' faces (what the pipeline would classify)."""
    from fervideo.faces import create_detector, to_gray
    from fervideo.video import FrameReader

    det, out = create_detector("blazeface"), []
    for i, (_, _, frame) in enumerate(FrameReader(SAMPLES / "two_astronauts.mp4")):
        if i % 5 == 0:
            out += [to_gray(frame[f.y : f.y + f.h, f.x : f.x + f.w]) for f in det.detect(frame)]
    return out


@pytest.mark.slow
def test_int8_cards_reproduce(tmp_path: Path) -> None:
    """`fervideo evaluate` on each int8 file gives its card's PrivateTest figure."""
    need_fer_npz()
    cards = json.loads((ROOT / "models" / "int8_card.json").read_text())
    for tier, card in cards.items():
        proc = run_cli("evaluate", "--model", str(ROOT / "models" / card["file"]), "--data", str(FER_NPZ), "--split", "private", "--out", str(tmp_path / tier))
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads((tmp_path / tier / "metrics.json").read_text())["accuracy"]
        assert abs(got - card["private"]["int8"]) <= 0.0005, (tier, got, card["private"])


def test_unknown_precision_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(tmp_path / "t.csv"), "--precision", "int4")
    assert proc.returncode == 2 and "--precision" in proc.stderr and "int8" in proc.stderr
    assert not (tmp_path / "t.csv").exists()


# ------------------------------------------------------------------ distillation targets


def _tiny_teacher_file(d: fer_data.FerData, path: Path, bad_labels: bool = False) -> Path:
    keep = d.usage != 2
    labels = d.labels[keep].copy()
    if bad_labels:
        labels[0] = (labels[0] + 1) % 7
    probs = np.full((keep.sum(), 7), 0.02, np.float16)
    probs[np.arange(keep.sum()), d.labels[keep]] = 0.88
    np.savez(path, usage=d.usage[keep], labels=labels, t1=probs, t1_flip=probs)
    return path


def test_teacher_probs_are_matched_by_row_and_checked(tmp_path: Path) -> None:
    from fervideo.errors import DataFormatError
    from fervideo.training.train import load_teacher_probs

    need_fer_npz()
    full = fer_data.load(FER_NPZ)
    d = full.subset(50, seed=1)
    # A data file of just these rows: the teacher file covers its Training + PublicTest rows.
    small = fer_data.FerData(d.images, d.labels, d.usage, "small", "npz")
    t = load_teacher_probs(str(_tiny_teacher_file(small, tmp_path / "t.npz")), small)
    assert t.shape == (len(small.labels), 7)
    assert np.allclose(t[small.usage != 2].sum(1), 1) and (t[small.usage == 2] == 0).all()
    assert (t[small.usage != 2].argmax(1) == small.labels[small.usage != 2]).all()
    soft = load_teacher_probs(str(tmp_path / "t.npz"), small, temperature=2.0)
    assert soft[small.usage != 2].max() < t[small.usage != 2].max()  # softened
    with pytest.raises(DataFormatError, match="do not match"):
        load_teacher_probs(str(_tiny_teacher_file(small, tmp_path / "bad.npz", bad_labels=True)), small)


def test_shared_teacher_probs_fit_the_shared_data() -> None:
    need_fer_npz()
    path = FER_NPZ.parent.parent / "models" / "gpu_trained" / "teacher_probs.npz"
    if not path.is_file():
        pytest.skip(f"needs {path}")
    from fervideo.training.train import load_teacher_probs

    full = fer_data.load(FER_NPZ)
    t = load_teacher_probs(str(path), full)
    train = full.usage == 0
    assert (t[train].argmax(1) == full.labels[train]).mean() > 0.95  # the teachers fit their training faces


# ------------------------------------------------------------------ the PyTorch engine


@pytest.mark.slow
def test_torch_engine_trains_resumes_and_exports(tmp_path: Path) -> None:
    """--engine torch on the CPU: 2 epochs on a subset, then resumed to 3; the best weights move
    into the Keras vgg_lite and agree within 1e-4; the exported .tflite runs in the tool."""
    need_extra("torch", "gpu")
    need_fer_npz()
    pytest.importorskip("keras", reason="needs the train extra")
    run = tmp_path / "run"
    teacher = FER_NPZ.parent.parent / "models" / "gpu_trained" / "teacher_probs.npz"
    extra = ["--teacher-probs", str(teacher)] if teacher.is_file() else []
    proc = run_cli("train", "--engine", "torch", "--data", str(FER_NPZ), "--limit", "600", "--epochs", "2", "--out", str(run), *extra, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [0, 1] and {"loss", "accuracy", "val_accuracy", "val_loss", "lr", "epoch_time_s"} <= set(log.columns)
    assert json.loads((run / "export.json").read_text())["keras_vs_torch_max_abs_diff"] <= 1e-4
    for f in ("best.keras", "best.pt", "last.pt", "model.tflite", "state.json"):
        assert (run / f).is_file(), f
    proc = run_cli("train", "--engine", "torch", "--data", str(FER_NPZ), "--out", str(run), "--resume", "--epochs", "3", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(pd.read_csv(run / "log.csv")["epoch"]) == [0, 1, 2]
    csv = tmp_path / "t.csv"
    run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(csv), "--model", str(run / "model.tflite"), "-q", check=True)
    assert len(pd.read_csv(csv)) == 90


def test_torch_engine_refuses_other_architectures(tmp_path: Path) -> None:
    proc = run_cli("train", "--engine", "torch", "--arch", "mini_xception", "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "vgg_lite family" in proc.stderr and "Traceback" not in proc.stderr


def test_torch_vgg_lite_matches_keras_weights_both_ways() -> None:
    """A .keras file read without TensorFlow (h5py; a user's own model on --device gpu) gives the
    probabilities of the TFLite file exported from it: the fast tier's float32 file within 1e-4,
    the accurate tier's float16-weights file within what its card measured against Keras."""
    need_extra("torch", "gpu")
    from fervideo.emotions.classifier import EmotionClassifier
    from fervideo.emotions.torch_net import TorchClassifier

    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    card = json.loads(ACCURATE_CARD.read_text())
    bound = {"fervideo_emotion": 1e-4, "fervideo_emotion_accurate": 2 * card["keras_vs_tflite_max_abs_diff"] + 1e-4}
    for tier, tol in bound.items():
        got = TorchClassifier(ROOT / "models" / f"{tier}.keras", device="cpu").predict(faces)
        ref = EmotionClassifier(ROOT / "models" / f"{tier}.tflite", precision="float32").predict(faces)
        assert np.abs(got - ref).max() <= tol, tier


@pytest.mark.parametrize("tier", ["fast", "accurate"])
def test_gpu_path_runs_the_tiers_float_tflite_file(tier: str) -> None:
    """The GPU path runs a tier's float TFLite file's own graph in PyTorch (so the wheel ships no
    .keras copy): the CPU float path's probabilities within 1e-5, whatever the batch; an int8
    file is refused with a line that says why."""
    need_extra("torch", "gpu")
    from fervideo.emotions.classifier import EmotionClassifier, make_classifier
    from fervideo.emotions.torch_net import TorchClassifier
    from fervideo.errors import ModelError
    from fervideo.model_files import resolve_model

    faces = np.random.default_rng(1).integers(0, 256, (40, 48, 48), dtype=np.uint8)
    clf = make_classifier(tier, device="torch-cpu")
    assert isinstance(clf, TorchClassifier) and clf.path == resolve_model(tier, "float32")
    ref = EmotionClassifier(resolve_model(tier, "float32"), precision="float32").predict(faces)
    assert np.abs(clf.predict(faces) - ref).max() <= 1e-5
    assert np.abs(clf.predict(faces[:7]) - ref[:7]).max() <= 1e-5
    with pytest.raises(ModelError, match="float"):
        TorchClassifier(resolve_model(tier, "int8"), device="cpu")


# ------------------------------------------------------------------ --device


def test_device_timelines_agree(tmp_path: Path) -> None:
    need_extra("torch", "gpu")
    out = {}
    for dev in ("cpu", "torch-cpu"):
        out[dev] = tmp_path / f"{dev}.csv"
        # float32 on the CPU: the GPU path runs the same float file (int8 is a model of its own)
        args = ("--csv", str(out[dev]), "--device", dev, "--tta", "flip", "--precision", "float32", "-q")
        proc = run_cli("timeline", str(SAMPLES / "two_astronauts.mp4"), *args)
        assert proc.returncode == 0, proc.stderr
    a, b = pd.read_csv(out["cpu"]), pd.read_csv(out["torch-cpu"])
    assert a.drop(columns=list(a.columns[10:])).equals(b.drop(columns=list(b.columns[10:])))  # frames, ids, boxes
    assert (a[a.columns[10:]] - b[b.columns[10:]]).abs().max().max() <= 1e-3


def test_device_gpu_without_cuda_is_one_line_and_auto_falls_back(tmp_path: Path) -> None:
    from fervideo.emotions.torch_net import cuda_available

    if cuda_available():
        pytest.skip("this machine has a CUDA GPU")
    proc = run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(tmp_path / "g.csv"), "--device", "gpu", "-q")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "--device" in lines[0]
    assert not (tmp_path / "g.csv").exists()
    proc = run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(tmp_path / "a.csv"), "--device", "auto", "-q")
    assert proc.returncode == 0
    notes = [ln for ln in proc.stderr.splitlines() if "note:" in ln]
    assert len(notes) == 1 and "CPU" in notes[0]
    assert len(pd.read_csv(tmp_path / "a.csv")) == 90


def test_wheel_ships_each_tiers_weights_once_within_40_mb() -> None:
    """Issue 23: the wheel's models are the TFLite files only (no .keras copies: the GPU path runs
    the float file's graph), at most 40 MB before compression (so the wheel is smaller still)."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    include, exclude = conf["package-data"]["fervideo._models"], conf["exclude-package-data"]["fervideo._models"]
    matches = lambda name, globs: any(fnmatch.fnmatch(name, g) for g in globs)  # noqa: E731
    files = [p for p in (ROOT / "models").iterdir() if matches(p.name, include) and not matches(p.name, exclude)]
    assert not [p for p in files if p.suffix == ".keras"]
    from fervideo.model_files import TIERS, int8_name

    for tflite, _keras in TIERS.values():
        assert {tflite, int8_name(tflite)} <= {p.name for p in files}
    total = sum(p.stat().st_size for p in files)
    assert total <= 40e6, f"{total / 1e6:.1f} MB of models in the wheel"
