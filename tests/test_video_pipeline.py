"""End-to-end tests of timeline / annotate / batch / info on the bundled samples and shared clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import GOLDEN, SAMPLES, SHARED_CLIPS, SHARED_VIDEOS, need_shared_videos, run_cli

from fervideo.outputs import BASE_COLUMNS, read_timeline
from fervideo.pipeline import Options, process_video

SAMPLE_CLIPS = sorted(p.name for p in SAMPLES.glob("*.mp4"))

# Golden tolerance (README, 'Tests'): same rows, frames, times and face ids; boxes within 2 px,
# scores and probabilities within 0.01 (TFLite kernels differ slightly between CPU families);
# the top emotion must match wherever the top two probabilities are 0.02 or more apart.
BOX_TOL = 2
PROB_TOL = 0.01


def _timeline(video: Path, out: Path, *extra: str) -> pd.DataFrame:
    run_cli("timeline", str(video), "--csv", str(out), "--quiet", *extra, check=True)
    return read_timeline(out)


def test_help_lists_commands() -> None:
    proc = run_cli("--help", check=True)
    for cmd in ("annotate", "timeline", "batch", "image", "train", "evaluate", "live", "info"):
        assert cmd in proc.stdout


def test_samples_exist() -> None:
    assert SAMPLE_CLIPS == ["astronaut_pan.mp4", "two_astronauts.mp4"]


@pytest.mark.parametrize("clip", SAMPLE_CLIPS)
def test_golden_timeline(clip: str, tmp_path: Path, regen_goldens: bool) -> None:
    out = tmp_path / f"{clip}.csv"
    got = _timeline(SAMPLES / clip, out)
    golden = GOLDEN / f"{clip}.csv"
    if regen_goldens:
        shutil.copyfile(out, golden)
        pytest.skip("golden regenerated (--regen-goldens)")
    want = read_timeline(golden)
    assert list(got.columns) == list(want.columns) == BASE_COLUMNS
    assert len(got) == len(want)
    assert (got["frame"] == want["frame"]).all()
    assert np.allclose(got["time_s"], want["time_s"], atol=1e-6)
    assert got["face_id"].equals(want["face_id"])
    faces = want["face_id"].notna()
    for c in ("x", "y", "w", "h"):
        assert (got.loc[faces, c] - want.loc[faces, c]).abs().max() <= BOX_TOL, c
    cols = ["det_score", "confidence", "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert np.allclose(got.loc[faces, cols].to_numpy(float), want.loc[faces, cols].to_numpy(float), atol=PROB_TOL)
    probs = want.loc[faces, cols[2:]].to_numpy(float)
    top2 = np.sort(probs, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) >= 0.02
    assert (got.loc[faces, "emotion"].to_numpy()[clear] == want.loc[faces, "emotion"].to_numpy()[clear]).all()


def test_sample_content(tmp_path: Path) -> None:
    """The samples' known content: a face then none; two faces with two stable ids."""
    pan = _timeline(SAMPLES / "astronaut_pan.mp4", tmp_path / "a.csv")
    assert pan["frame"].tolist() == list(range(90))
    assert pan.loc[pan["frame"] < 60, "face_id"].notna().mean() >= 0.95
    assert pan.loc[pan["frame"] >= 60, "face_id"].isna().all()
    assert np.allclose(pan["time_s"].diff().dropna(), 1001 / 30000, atol=1e-3)
    two = _timeline(SAMPLES / "two_astronauts.mp4", tmp_path / "b.csv")
    assert sorted(two["face_id"].dropna().unique().tolist()) == [0, 1]
    assert (two.groupby("frame").size() == 2).all()


def test_rerun_is_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _timeline(SAMPLES / "two_astronauts.mp4", a)
    _timeline(SAMPLES / "two_astronauts.mp4", b)
    assert a.read_bytes() == b.read_bytes()


def _both_paths(video: Path, tmp_path: Path, **kw: object) -> tuple[bytes, bytes]:
    from fervideo.pipeline import Analyser

    outs = []
    for threaded in (False, True):
        analyser = Analyser(Options(plain=not threaded, **kw))  # type: ignore[arg-type]
        out = tmp_path / f"{video.name}.{threaded}.csv"
        process_video(video, analyser, timeline=out, annotated=tmp_path / f"{video.name}.{threaded}.mp4" if threaded else None)
        outs.append(out.read_bytes())
    return outs[0], outs[1]


@pytest.mark.parametrize("clip", SAMPLE_CLIPS)
def test_pipelined_equals_plain(clip: str, tmp_path: Path) -> None:
    plain, piped = _both_paths(SAMPLES / clip, tmp_path)
    assert plain == piped


def test_pipelined_equals_plain_shared(tmp_path: Path) -> None:
    need_shared_videos()
    plain, piped = _both_paths(SHARED_VIDEOS / "short_hamilton_clip.mp4", tmp_path, detect_every=2)
    assert plain == piped


def test_annotate_keeps_frames_size_fps(tmp_path: Path) -> None:
    src = SAMPLES / "astronaut_pan.mp4"
    out = tmp_path / "out.mp4"
    run_cli("annotate", str(src), "-o", str(out), "--quiet", check=True)
    a, b = cv2.VideoCapture(str(src)), cv2.VideoCapture(str(out))
    n = 0
    while True:
        ok, _ = b.read()
        if not ok:
            break
        n += 1
    assert n == 90
    assert int(b.get(cv2.CAP_PROP_FRAME_WIDTH)) == int(a.get(cv2.CAP_PROP_FRAME_WIDTH))
    assert int(b.get(cv2.CAP_PROP_FRAME_HEIGHT)) == int(a.get(cv2.CAP_PROP_FRAME_HEIGHT))
    assert abs(b.get(cv2.CAP_PROP_FPS) - a.get(cv2.CAP_PROP_FPS)) < 0.01
    assert not list(tmp_path.glob(".*partial*"))


def test_info(tmp_path: Path) -> None:
    proc = run_cli("info", str(SAMPLES / "astronaut_pan.mp4"), check=True)
    assert "640x360" in proc.stdout
    assert "30000/1001" in proc.stdout
    assert "h264" in proc.stdout
    assert "frames (decoded)    90" in proc.stdout


@pytest.mark.parametrize("clip", sorted(SHARED_CLIPS))
def test_shared_clip_timeline(clip: str, tmp_path: Path) -> None:
    need_shared_videos()
    df = _timeline(SHARED_VIDEOS / clip, tmp_path / "t.csv")
    n = SHARED_CLIPS[clip]
    frames = df["frame"]
    assert sorted(frames.unique().tolist()) == list(range(n)), "every decoded frame at least once"
    no_face = df["face_id"].isna()
    assert (df[no_face].groupby("frame").size() == 1).all()
    assert not set(df.loc[no_face, "frame"]) & set(df.loc[~no_face, "frame"]), "a no-face row only when no face"
    times = df.groupby("frame")["time_s"].first()
    assert (times.diff().dropna() >= 0).all(), "times non-decreasing"
    with_face = df.loc[~no_face, "frame"].nunique() / n
    if clip == "single_face.mp4":
        assert with_face >= 0.95
    if clip in ("no_face.mp4", "slow_traffic_small.mp4"):
        assert with_face <= 0.02
    if clip == "face.avi":
        ids = df.loc[~no_face].groupby("face_id")["frame"].nunique()
        assert ids.max() / df.loc[~no_face, "frame"].nunique() >= 0.8


@pytest.mark.slow
def test_batch_shared(tmp_path: Path) -> None:
    need_shared_videos()
    out = tmp_path / "out"
    proc = run_cli("batch", str(SHARED_VIDEOS), "--out", str(out), "--quiet", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(Path(p).name for p in summary["input"]) == sorted(SHARED_CLIPS)
    assert (summary["status"] == "ok").all()
    for clip, n in SHARED_CLIPS.items():
        assert (out / f"{clip}.csv").is_file()
        assert int(summary.loc[summary["input"].str.endswith(clip), "frames"].iloc[0]) == n


def test_yunet_detector(tmp_path: Path) -> None:
    from conftest import YUNET

    if YUNET is None:
        pytest.skip("needs the YuNet ONNX file in ../shared/models (absent in this checkout)")
    df = _timeline(SAMPLES / "two_astronauts.mp4", tmp_path / "y.csv", "--detector", "yunet", "--detector-model", str(YUNET))
    assert (df.groupby("frame")["face_id"].count() == 2).mean() >= 0.9


def test_haar_detector(tmp_path: Path) -> None:
    df = _timeline(SAMPLES / "two_astronauts.mp4", tmp_path / "h.csv", "--detector", "haar")
    assert (df.groupby("frame")["face_id"].count() >= 2).mean() >= 0.8
