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
