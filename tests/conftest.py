"""Shared fixtures. Tests that need ../shared (videos, FER2013) skip with a reason when it is absent."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FERVIDEO_SHARED", ROOT.parent / "shared"))
SHARED_VIDEOS = SHARED / "videos"
FER_NPZ = SHARED / "data" / "fer2013.npz"
YUNET = next(iter(sorted((SHARED / "models").glob("face_detection_yunet_*.onnx"))), None) if (SHARED / "models").is_dir() else None
SAMPLES = ROOT / "sample_videos"
GOLDEN = ROOT / "tests" / "golden"

# Decoded frame counts measured in ../shared/videos/README.md (the container may claim more).
SHARED_CLIPS = {
    "single_face.mp4": 72,
    "face_noface.mov": 169,
    "no_face.mp4": 95,
    "short_hamilton_clip.mp4": 275,
    "face.avi": 1003,
    "slow_traffic_small.mp4": 914,
}


_SHARED_NAMES = re.compile(r"\b(SHARED|SHARED_VIDEOS|FER_NPZ|YUNET|need_shared_videos|need_fer_npz)\b")

# The extras the README's test command installs (a test checks the README says so). Tests that
# need any other extra call need_extra() and are marked ``extras``: they skip under the README's
# command, and .ci/run runs them (-m extras) once it has installed every extra.
TEST_COMMAND_EXTRAS = ("dev", "train")
_NEEDS_EXTRA = re.compile(r'need_extra\("[\w.]+", "([\w-]+)"\)')


def need_extra(module: str, extra: str) -> Any:
    """Import ``module`` or skip, naming the extra that brings it."""
    return pytest.importorskip(module, reason=f"the {extra} extra is not installed: pip install '.[{extra}]'")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses ../shared as ``shared`` (found in its source), so
    ``-m "not shared"`` is what a fresh clone can run; ``slow`` is marked by hand on the tests that
    train or process long inputs, so ``-m "not slow"`` is the fast subset. ``extras`` marks the
    tests that call need_extra() for an extra the README's test command does not install, in the
    test or at the top of its module."""
    for item in items:
        fn = getattr(item, "function", None)
        try:
            src = inspect.getsource(fn) if fn is not None else ""
        except (OSError, TypeError):
            src = ""
        if _SHARED_NAMES.search(src):
            item.add_marker(pytest.mark.shared)
        module_top = [ln for ln in Path(str(item.fspath)).read_text().splitlines() if ln.startswith("need_extra(")]
        if any(m not in TEST_COMMAND_EXTRAS for m in _NEEDS_EXTRA.findall(src + "\n".join(module_top))):
            item.add_marker(pytest.mark.extras)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-goldens",
        action="store_true",
        default=False,
        help="Rewrite tests/golden/ from the current outputs (only after a deliberate model or pipeline change).",
    )


@pytest.fixture
def regen_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-goldens"))


def need_shared_videos() -> None:
    if not SHARED_VIDEOS.is_dir():
        pytest.skip(f"needs the shared test videos at {SHARED_VIDEOS} (absent in this checkout)")


def need_fer_npz() -> None:
    if not FER_NPZ.is_file():
        pytest.skip(f"needs FER2013 at {FER_NPZ} (absent in this checkout)")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fervideo ARGS`` as a user would; returns the completed process."""
    proc = subprocess.run(
        [sys.executable, "-m", "fervideo", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"fervideo {' '.join(args)} exited {proc.returncode}\n{proc.stderr}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """A user's mistake is one line on stderr, no traceback, and the documented exit code; the line
    names what it should (``needles``). Returns the line."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]

