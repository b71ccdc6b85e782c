"""Outputs people keep: H.264 with the input's audio, plots, smoothing, formats, stills, live."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLES, run_cli
from media import audio_packets, sample_frames, write_video

from fervideo.labels import EMOTIONS
from fervideo.outputs import SMOOTH_COLUMNS, read_timeline


def test_annotate_h264_with_audio_copied(tmp_path: Path) -> None:
    src = write_video(tmp_path / "talk.mp4", sample_frames(75), fps=25, audio_seconds=3.0)
    out = tmp_path / "talk.annotated.mp4"
    proc = run_cli("annotate", str(src), "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == 75
    src_audio = audio_packets(src)
    assert len(src_audio) > 50
    assert audio_packets(out) == src_audio
    with av.open(str(src)) as a, av.open(str(out)) as b:
        ta = [f.time for f in a.decode(video=0)]
        tb = [f.time for f in b.decode(video=0)]
    assert np.allclose(ta, tb, atol=1e-3)


def test_annotate_mp4v_codec(tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    assert run_cli("annotate", str(SAMPLES / "two_astronauts.mp4"), "-o", str(out), "--codec", "mp4v", "--quiet").returncode == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 50
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"mp4v", b"FMP4")  # MPEG-4 Part 2


def test_annotated_frame_shows_boxes(tmp_path: Path) -> None:
    src = SAMPLES / "two_astronauts.mp4"
    out = tmp_path / "a.mp4"
    assert run_cli("annotate", str(src), "-o", str(out), "--quiet").returncode == 0
    _, a = cv2.VideoCapture(str(src)).read()
    _, b = cv2.VideoCapture(str(out)).read()
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 60
    assert changed.mean() > 0.002  # boxes, labels and bars were drawn


def test_plot_png(tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    proc = run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(tmp_path / "t.csv"), "--plot", str(png), "--quiet")
    assert proc.returncode == 0, proc.stderr
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 1000 and img.shape[0] >= 300
    assert img.std() > 20  # not blank
    # The no-face stretch (last third) is shaded grey.
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50


def test_smoothing_adds_columns_and_keeps_raw(tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    sm = tmp_path / "sm.csv"
    assert run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(raw), "--quiet").returncode == 0
    assert run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(sm), "--smooth", "0.5", "--quiet").returncode == 0
    a, b = read_timeline(raw), read_timeline(sm)
    assert list(b.columns) == list(a.columns) + SMOOTH_COLUMNS
    pd.testing.assert_frame_equal(a, b[a.columns])
    faces = b["face_id"].notna()
    raw_p = b.loc[faces, list(EMOTIONS)].to_numpy(float)
    sm_p = b.loc[faces, [f"{e}_smoothed" for e in EMOTIONS]].to_numpy(float)
    assert np.allclose(raw_p[0], sm_p[0], atol=1e-4)  # first sighting: nothing to smooth with
    assert np.abs(raw_p - sm_p).max() > 1e-3
    # Smoothing reduces frame-to-frame jitter.
    assert np.abs(np.diff(sm_p, axis=0)).mean() < np.abs(np.diff(raw_p, axis=0)).mean()


def test_formats_have_the_same_content(tmp_path: Path) -> None:
    frames = {}
    for fmt in ("csv", "parquet", "jsonl"):
        out = tmp_path / f"t.{fmt}"
        assert run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(out), "--format", fmt, "--quiet").returncode == 0
        frames[fmt] = read_timeline(out)
    base = frames["csv"]
    for fmt in ("parquet", "jsonl"):
        df = frames[fmt]
        assert list(df.columns) == list(base.columns)
        assert len(df) == len(base)
        assert np.allclose(df["happy"].astype(float).fillna(-1), base["happy"].astype(float).fillna(-1))
        assert (df["face_id"].astype("Float64").fillna(-1) == base["face_id"].astype("Float64").fillna(-1)).all()


def test_stride(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    assert run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(out), "--stride", "5", "--quiet").returncode == 0
    assert read_timeline(out)["frame"].tolist() == list(range(0, 90, 5))


def test_stride_timeline_skips_converting_frames_but_not_results(tmp_path: Path) -> None:
    """Without an annotated video, frames skipped by --stride are only decoded (retrieve_every);
    the timeline must be the one the full path (every frame retrieved, for the video) writes."""
    from fervideo.pipeline import Analyser, Options, process_video
    from fervideo.video import FrameReader

    clip = SAMPLES / "two_astronauts.mp4"
    reader = FrameReader(clip)
    reader.retrieve_every = 4
    got = [(i, t, f is None) for i, t, f in reader]
    full = [(i, t, False) for i, t, _ in FrameReader(clip)]
    assert [(i, t) for i, t, _ in got] == [(i, t) for i, t, _ in full]
    assert [none for _, _, none in got] == [i % 4 != 0 for i, _, _ in full]

    analyser = Analyser(Options(stride=4))
    try:
        process_video(clip, analyser, timeline=tmp_path / "fast.csv")
        process_video(clip, analyser, timeline=tmp_path / "full.csv", annotated=tmp_path / "a.mp4")
    finally:
        analyser.close()
    assert (tmp_path / "fast.csv").read_bytes() == (tmp_path / "full.csv").read_bytes()
    assert read_timeline(tmp_path / "fast.csv")["frame"].unique().tolist() == list(range(0, 50, 4))


def test_tta_changes_probabilities_not_boxes(tmp_path: Path) -> None:
    plain, tta = tmp_path / "p.csv", tmp_path / "t.csv"
    video = str(SAMPLES / "two_astronauts.mp4")
    assert run_cli("timeline", video, "--csv", str(plain), "--quiet").returncode == 0
    assert run_cli("timeline", video, "--csv", str(tta), "--tta", "flip", "--quiet").returncode == 0
    a, b = read_timeline(plain), read_timeline(tta)
    assert a[["frame", "face_id", "x", "y", "w", "h"]].equals(b[["frame", "face_id", "x", "y", "w", "h"]])
    diff = (a[list(EMOTIONS)] - b[list(EMOTIONS)]).abs().to_numpy()
    assert diff.max() > 1e-3  # the mirror pass really ran
    assert np.allclose(b[list(EMOTIONS)].sum(axis=1), 1.0, atol=2e-3)
    full = tmp_path / "f.csv"
    assert run_cli("timeline", video, "--csv", str(full), "--tta", "full", "--stride", "10", "--quiet").returncode == 0
    c = read_timeline(full)
    sub = a[a["frame"] % 10 == 0].reset_index(drop=True)
    assert sub[["frame", "x", "y", "w", "h"]].equals(c[["frame", "x", "y", "w", "h"]])
    assert (sub[list(EMOTIONS)] - c[list(EMOTIONS)]).abs().to_numpy().max() > 1e-3
    assert np.allclose(c[list(EMOTIONS)].sum(axis=1), 1.0, atol=2e-3)


def test_image_command(tmp_path: Path) -> None:
    img = tmp_path / "two.png"
    _, frame = cv2.VideoCapture(str(SAMPLES / "two_astronauts.mp4")).read()
    cv2.imwrite(str(img), frame)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.zeros((100, 100, 3), np.uint8))
    proc = run_cli("image", str(img), str(blank), "--csv", str(tmp_path / "i.csv"), "--annotate-dir", str(tmp_path / "ann"))
    assert proc.returncode == 0, proc.stderr
    assert "two.png" in proc.stdout and "no face" in proc.stdout
    df = pd.read_csv(tmp_path / "i.csv")
    assert (df["image"] == str(img)).sum() == 2
    assert (tmp_path / "ann" / "two.annotated.png").is_file()
    bad = run_cli("image", str(tmp_path / "missing.png"))
    assert bad.returncode == 1 and "missing.png" in bad.stderr


def test_live_no_window_on_a_file() -> None:
    proc = run_cli("live", "--no-window", "--source", str(SAMPLES / "astronaut_pan.mp4"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("frame,time_s,face_id")
    frames = {int(line.split(",")[0]) for line in lines[1:]}
    assert frames == set(range(90))
    assert "fps" in proc.stderr


def test_writer_falls_back_to_mp4v_without_pyav(tmp_path: Path, monkeypatch: object) -> None:
    import sys
    from fractions import Fraction

    from fervideo.video import open_writer

    monkeypatch.setitem(sys.modules, "av", None)  # type: ignore[attr-defined]  # import av -> ImportError
    out = tmp_path / "f.mp4"
    with open_writer(out, 64, 48, Fraction(25)) as w:
        for i in range(5):
            w.write(np.full((48, 64, 3), 40 * i, np.uint8), i / 25)
    assert w.codec == "mp4v" and w.notice and "PyAV" in w.notice
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_batch_plots_and_annotations(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("batch", str(SAMPLES), "--out", str(out), "--plots", "--annotate", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for clip in ("astronaut_pan.mp4", "two_astronauts.mp4"):
        assert cv2.imread(str(out / f"{clip}.png")) is not None
        cap = cv2.VideoCapture(str(out / f"{clip}.annotated.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == {"astronaut_pan.mp4": 90, "two_astronauts.mp4": 50}[clip]
    s = pd.read_csv(out / "summary.csv")
    assert (s["status"] == "ok").all() and len(s) == 2


def test_python_api_returns_what_the_cli_writes(tmp_path: Path) -> None:
    import fervideo
    from fervideo.errors import UsageError, VideoOpenError

    clip = SAMPLES / "two_astronauts.mp4"
    out = tmp_path / "t.csv"
    assert run_cli("timeline", str(clip), "--csv", str(out), "--stride", "3", "--quiet").returncode == 0
    df = fervideo.analyse_video(clip, stride=3)
    pd.testing.assert_frame_equal(df, read_timeline(out))
    assert df["face_id"].nunique() == 2

    analyser = fervideo.Analyser(fervideo.Options(stride=3))
    try:
        pd.testing.assert_frame_equal(fervideo.analyse_video(clip, analyser), df)
        with pytest.raises(UsageError):
            fervideo.analyse_video(clip, analyser, stride=2)
    finally:
        analyser.close()
    with pytest.raises(UsageError, match="strid"):
        fervideo.analyse_video(clip, strid=3)
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoOpenError, match=r"notes\.mp4"):
        fervideo.analyse_video(bad)


def test_crowded_frame_charts_cover_no_other_face() -> None:
    """Issue 31: in a crowd no 7-bar panel is drawn over another face; a face with no free place
    keeps its compact label only."""
    from fervideo.frames import Face
    from fervideo.outputs.annotate import draw_faces

    probs = np.full(7, 1 / 7, np.float32)
    probs[3] = 0.5
    # A row of faces 60 px apart on a 640x360 frame, as an audience: no room beside any of them.
    faces = [Face(10 + 60 * i, 150, 50, 50, 0.9, face_id=i, probs=probs) for i in range(10)]
    frame = np.full((360, 640, 3), 200, np.uint8)
    draw_faces(frame, faces)
    for f in faces:  # the inside of every face box, minus the label strip above and the box lines, is untouched
        inner = frame[f.y + 6 : f.y + f.h - 3, f.x + 3 : f.x + f.w - 3]
        assert (inner == 200).all(), f.face_id
    # A lone face still gets its chart (a darkened panel beside it).
    frame = np.full((360, 640, 3), 200, np.uint8)
    draw_faces(frame, [Face(100, 100, 80, 80, 0.9, face_id=0, probs=probs)])
    assert (frame[100:200, 190:300] < 100).any()
