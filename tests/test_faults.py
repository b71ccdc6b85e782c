"""Faults a real archive throws at us (issue 25), one class at a time; each test fails without its fix.

Covered so far: numbers that are not numbers (every float option refuses NaN and infinity with a
usage error, before any work) and a model name that is no tier and no file (the line names the tiers).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLES, one_line_error, run_cli

from fervideo.errors import UsageError
from fervideo.pipeline import Options

EXIT_USAGE, EXIT_MODEL = 2, 4


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_float_options_refuse_nan_and_infinity(value: str, tmp_path: Path) -> None:
    clip = str(SAMPLES / "astronaut_pan.mp4")
    for args in (
        ("timeline", clip, "--csv", str(tmp_path / "t.csv"), "--smooth", value),
        ("batch", str(SAMPLES), "--out", str(tmp_path / "b"), "--file-timeout", value),
        ("batch", str(SAMPLES), "--out", str(tmp_path / "b"), "--chunk-s", value),
        ("train", "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "r"), "--lr", value),
        ("train", "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "r"), "--distill", value),
    ):
        proc = run_cli(*args)
        assert proc.returncode == EXIT_USAGE, (args, proc.stderr)
        assert "finite" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing created


def test_options_refuse_nan_from_python() -> None:
    with pytest.raises(UsageError, match="--smooth"):
        Options(smooth_s=float("nan")).validate()


def test_unknown_model_name_lists_the_tiers(tmp_path: Path) -> None:
    proc = run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(tmp_path / "t.csv"), "--model", "fastest")
    one_line_error(proc, EXIT_MODEL, "fastest", "fast or accurate")
    proc = run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(tmp_path / "t.csv"), "--model", str(tmp_path / "m.tflite"))
    one_line_error(proc, EXIT_MODEL, "m.tflite", "a tier, fast or accurate")
    assert not (tmp_path / "t.csv").exists()


def test_broken_symlinks_and_loops_are_error_rows(tmp_path: Path) -> None:
    """A broken link and a link loop in the input folder are error rows naming what is wrong; the
    real video beside them is analysed and the batch exits 1 (some inputs failed)."""
    import shutil

    import pandas as pd

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(SAMPLES / "astronaut_pan.mp4", d / "good.mp4")
    (d / "gone.mp4").symlink_to(d / "deleted.mp4")
    (d / "loop_a.mp4").symlink_to(d / "loop_b.mp4")
    (d / "loop_b.mp4").symlink_to(d / "loop_a.mp4")
    proc = run_cli("batch", str(d), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 1, proc.stderr
    rows = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("input")
    status = {Path(k).name: v for k, v in rows["status"].items()}
    assert status == {"good.mp4": "ok", "gone.mp4": "error", "loop_a.mp4": "error", "loop_b.mp4": "error"}, status
    messages = {Path(k).name: v for k, v in rows["message"].items()}
    assert "broken symbolic link" in messages["gone.mp4"] and "loop" in messages["loop_a.mp4"], messages
    assert "Traceback" not in proc.stderr
