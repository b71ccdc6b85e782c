"""Faults a real archive throws at us (issue 25), one class at a time; each test fails without its fix.

1. The file system says no: a write that fails (a full disk through a tiny tmpfs where one can be
   mounted; everywhere, the kernel's own EFBIG under a file-size limit, which goes down the same
   path) on every output kind is one line naming the output, exit 5, and nothing left behind;
   legal 240-byte names; a killed run's temporary files are swept by the next batch.
2. What the output container or codec cannot hold: every container x audio codec pair, odd sizes
   and variable frame rates with mp4v.
3. Damaged data in mid-stream: decoding goes on past it, the warning says which frames are lost.
4. Batch outputs that would land on the batch's own files (a video named ``summary``).
5. Broken symbolic links and loops; 6. numbers that are not numbers; 7. a model name that is no
   tier and no file.
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SAMPLES, one_line_error, run_cli

from fervideo.errors import UsageError
from fervideo.options import Options

EXIT_SOME_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_OUTPUT = 1, 2, 4, 5
CLIP = SAMPLES / "astronaut_pan.mp4"


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
        Options(smooth=float("nan")).validate()


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


# --- 1. the file system says no ----------------------------------------------------------------


def run_cli_limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with a file-size limit: every write past ``limit`` bytes fails in the kernel with
    EFBIG (Python ignores SIGXFSZ), whichever library writes (csv, pyarrow, FFmpeg, OpenCV, PNG).
    matplotlib's font cache is built first, without the limit (it is no output of ours)."""
    mpl = Path(os.environ.get("MPLCONFIGDIR", Path.home() / ".config" / "matplotlib"))
    subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], env={**os.environ, "MPLCONFIGDIR": str(mpl)}, check=True, capture_output=True)

    def limit_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "fervideo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit_size,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLCONFIGDIR": str(mpl)},
    )


def _outputs_of(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "kind",
    ["csv", "parquet", "jsonl", "annotated-h264", "annotated-mp4v", "plot"],
)
def test_a_failing_write_is_one_line_exit_5_and_leaves_nothing(kind: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fast = ("--model", "fast", "--quiet")
    if kind in ("csv", "parquet", "jsonl"):
        if kind == "parquet":
            pytest.importorskip("pyarrow", reason="the parquet extra")
        target = out / f"t.{kind}"
        args = ("timeline", str(CLIP), "--csv", str(target), "--format", kind, *fast)
    elif kind == "plot":
        target = out / "p.png"
        args = ("timeline", str(CLIP), "--csv", str(tmp_path / "t.csv"), "--plot", str(target), *fast)
    else:
        target = out / "a.mp4"
        args = ("annotate", str(CLIP), "--output", str(target), "--codec", kind.split("-")[1], *fast)
    # Limits that the output passes partway: the timeline's CSV rows, the PNG, the video's frames.
    limit = {"plot": 20_000, "csv": 2_000, "jsonl": 2_000, "parquet": 2_000}.get(kind, 20_000)  # CSV 6.8 KB, PNG 35 KB
    proc = run_cli_limited(limit, *args)
    line = one_line_error(proc, EXIT_OUTPUT, target.name, "cannot be written")
    # OpenCV's writer reports nothing: its unfinished file is found at close.
    assert "file too large" in line or (kind == "annotated-mp4v" and "incomplete file" in line), line
    assert _outputs_of(out) == [], "a partial file was left behind"


def test_batch_summary_and_run_record_failing_writes(tmp_path: Path) -> None:
    """In a batch, a file whose outputs cannot be written is an error row naming the output (the
    batch goes on); when the summary itself cannot be written, the batch ends with one line and exit 5."""
    import pandas as pd

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(CLIP, d / "a.mp4")
    out = tmp_path / "out"
    proc = run_cli_limited(1_000, "batch", str(d), "--out", str(out), "--model", "fast", "--quiet")
    assert proc.returncode == EXIT_SOME_FAILED and "Traceback" not in proc.stderr, proc.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["status"] == "error" and "a.mp4.csv: cannot be written: file too large" in row["message"], row["message"]
    assert _outputs_of(out) == ["summary.csv"]  # no timeline, no run record, no partial file
    out2 = tmp_path / "out2"
    proc = run_cli_limited(100, "batch", str(d), "--out", str(out2), "--model", "fast", "--quiet")
    line = one_line_error(proc, EXIT_OUTPUT, "summary.csv", "cannot be written")
    assert "file too large" in line
    assert _outputs_of(out2) == []


def _tmpfs_available() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _tmpfs_available(), reason="needs unshare with user namespaces to mount a small tmpfs")
@pytest.mark.parametrize("command", ["timeline", "annotate"])
def test_disk_full_is_one_line_exit_5(command: str, tmp_path: Path) -> None:
    """A real ENOSPC: the output folder is a 4 KB tmpfs (mounted in a private namespace)."""
    full = tmp_path / "full"
    full.mkdir()
    target = full / ("t.csv" if command == "timeline" else "a.mp4")
    flag = "--csv" if command == "timeline" else "--output"
    fervideo = " ".join([sys.executable, "-m", "fervideo", command, str(CLIP), flag, str(target), "--model", "fast", "--quiet"])
    script = f"mount -t tmpfs -o size=4k tmpfs {full} && cd {ROOT} && {fervideo}; rc=$?; ls -A {full} >&2; exit $rc"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no space left on the device" in lines[0] and target.name in lines[0], proc.stderr  # ls printed nothing


def test_os_errors_on_outputs_map_to_exit_5_in_one_place(tmp_path: Path) -> None:
    from fervideo.errors import OutputError
    from fervideo.files import OUTPUT_ERRNOS, atomic_output

    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.ENAMETOOLONG, errno.EDQUOT, errno.EIO):
        assert code in OUTPUT_ERRNOS
        target = tmp_path / "x.csv"
        with pytest.raises(OutputError) as info, atomic_output(target) as tmp:
            tmp.write_text("partial")
            raise OSError(code, os.strerror(code))
        assert info.value.exit_code == EXIT_OUTPUT and str(target) in str(info.value)
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="not an output problem"), atomic_output(tmp_path / "y.csv"):
        raise OSError(errno.ECONNRESET, "not an output problem")  # other errors keep their type


def test_long_names_get_temporary_names_that_fit(tmp_path: Path) -> None:
    """A legal 240-byte name (and its outputs) must not fail on the temporary name built from it."""
    d = tmp_path / "in"
    d.mkdir()
    name = "é" * 110 + "x" * 16 + ".mp4"  # 240 bytes in UTF-8
    assert len(name.encode()) == 240
    shutil.copy(CLIP, d / name)
    proc = run_cli("timeline", str(d / name), "--csv", str(tmp_path / (name + ".csv")), "--model", "fast")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / (name + ".csv")).is_file()
    out = tmp_path / "out"
    proc = run_cli("batch", str(d), "--out", str(out), "--model", "fast", "--quiet", "--plots")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([name + ".csv", name + ".csv.run.json", name + ".png", "summary.csv"])


def test_a_killed_runs_temporary_files_are_swept(tmp_path: Path) -> None:
    """A batch killed with SIGKILL leaves hidden temporary files; the next run removes them, but
    not those of a process that still runs (another batch writing to the same folder)."""
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(CLIP, d / "a.mp4")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [out / f".a.mp4.csv.{dead.pid}.k2j4_8ab.partial.csv", out / f".a.mp4.annotated.mp4.{dead.pid}.zz81qq0x.partial.mp4"]
    live = out / f".other.csv.{os.getpid()}.abcdefgh.partial.csv"
    for p in [*stale, live]:
        p.write_text("left by a killed run")
    proc = run_cli("batch", str(d), "--out", str(out), "--model", "fast", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in stale) and live.exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4.csv", "a.mp4.csv.run.json", "summary.csv"]


# --- 2. what the output container or codec cannot hold --------------------------------------------

AUDIO_CODECS = {"aac": "fltp", "mp3": "s16p", "pcm_s16le": "s16", "libopus": "s16", "flac": "s16", "ac3": "fltp", "alac": "s16p"}


def _clip_with_audio(path: Path, audio_codec: str, size: tuple[int, int] = (160, 120), frames: int = 12) -> Path:
    """A small Matroska clip (it holds every codec here) of moving noise with a tone; FFV1 video
    (lossless, any size, odd ones included)."""
    import av

    with av.open(str(path), "w") as o:
        v = o.add_stream("ffv1", rate=12)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv444p"
        a = o.add_stream(audio_codec, rate=48000)
        a.layout = "stereo"
        rng = np.random.default_rng(0)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), format="bgr24")
            f.pts = i
            f.time_base = Fraction(1, 12)
            for p in v.encode(f):
                o.mux(p)
        fmt = AUDIO_CODECS[audio_codec]
        n = 1024
        tone = (np.sin(np.arange(48000) * 2 * np.pi * 440 / 48000) * 0.3).astype(np.float32)
        for k in range(0, 48000, n):
            chunk = np.stack([tone[k : k + n]] * 2)
            if fmt.startswith("s16"):
                chunk = (chunk * 32767).astype(np.int16)
            data = chunk if fmt.endswith("p") else chunk.T.reshape(1, -1)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout="stereo")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                o.mux(p)
        for s in (v, a):
            for p in s.encode(None):
                o.mux(p)
    return path


@pytest.fixture(scope="module")
def audio_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    return {c: _clip_with_audio(d / f"{c}.mkv", c) for c in AUDIO_CODECS}


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv", ".avi"])
def test_every_container_takes_every_audio_codec(ext: str, audio_clips: dict[str, Path], tmp_path: Path) -> None:
    """The input's audio is copied where the container holds its codec, else transcoded to AAC
    (PCM into .mp4 raised "Invalid argument" before); the result always has the audio."""
    import av

    from fervideo.pipeline import Analyser, Options, process_video

    analyser = Analyser(Options(model="fast"))
    try:
        for codec, clip in audio_clips.items():
            out = tmp_path / f"{codec}{ext}"
            report = process_video(clip, analyser, annotated=out)
            with av.open(str(out)) as c:
                assert len(c.streams.video) == 1 and len(c.streams.audio) == 1, (codec, ext)
                got = c.streams.audio[0].codec_context.name
                assert sum(1 for _ in c.decode(c.streams.audio[0])) > 10, (codec, ext)
            source = av.open(str(clip)).streams.audio[0].codec_context.name
            if got != source:
                assert got == "aac" and any("transcoded to AAC" in w for w in report.warnings()), (codec, ext, report.warnings())
    finally:
        analyser.close()


def test_mp4v_odd_size_and_variable_rate_are_said(tmp_path: Path) -> None:
    from fervideo.video import open_writer

    frame = np.zeros((361, 641, 3), np.uint8)
    with open_writer(tmp_path / "odd.mp4", 641, 361, Fraction(30), codec="mp4v") as w:
        for i in range(5):
            w.write(frame, i / 30)
    assert any("641x361 written as 640x360" in n for n in w.notes), w.notes
    assert not any("constant frame rate" in n for n in w.notes)
    with open_writer(tmp_path / "vfr.mp4", 64, 64, Fraction(30), codec="mp4v") as w:
        for t in (0.0, 1 / 30, 2 / 30, 0.5, 0.6):  # a variable-rate input's times
            w.write(np.zeros((64, 64, 3), np.uint8), t)
    assert any("constant frame rate" in n and "frame 3 is at 0.500 s" in n for n in w.notes), w.notes


def test_odd_size_mp4v_annotate_warns_on_the_terminal(tmp_path: Path) -> None:
    src = _clip_with_audio(tmp_path / "odd.mkv", "aac", size=(641, 361), frames=5)
    proc = run_cli("annotate", str(src), "--output", str(tmp_path / "a.mp4"), "--codec", "mp4v", "--model", "fast")
    assert proc.returncode == 0, proc.stderr
    assert "641x361 written as 640x360" in proc.stderr


# --- 3. damaged data in mid-stream ---------------------------------------------------------------


def test_decoding_goes_on_past_damaged_data(tmp_path: Path) -> None:
    """Garbage in the middle of an H.264 .mp4: the reader used to stop at the first failed read."""
    from fervideo.pipeline import Analyser, Options, process_video
    from fervideo.video import FrameReader

    damaged = tmp_path / "damaged.mp4"
    shutil.copy(CLIP, damaged)
    size = damaged.stat().st_size
    whole = list(FrameReader(CLIP))
    with open(damaged, "r+b") as f:
        f.seek(size // 3)
        f.write(np.random.default_rng(1).integers(0, 256, size // 20, dtype=np.uint8).tobytes())
    reader = FrameReader(damaged)
    frames = [(i, t) for i, t, _ in reader]
    assert len(frames) < len(whole)
    assert frames[-1][0] >= len(whole) - 3, "stopped at the damage instead of decoding past it"
    assert reader.frames_lost > 0
    # The frames that came out keep their numbers and times; the lost ones are the gaps.
    times = {i: t for i, t, _ in whole}
    assert all(abs(times[i] - t) < 1e-6 for i, t in frames)
    assert len(frames) + reader.frames_lost >= len(whole) - 2
    analyser = Analyser(Options(model="fast"))
    try:
        report = process_video(damaged, analyser, timeline=tmp_path / "t.csv")
    finally:
        analyser.close()
    warning = next(w for w in report.warnings() if "damaged data" in w)
    assert f"{reader.frames_lost} frames could not be decoded" in warning and "frames " in warning and str(damaged) in warning
    import pandas as pd

    rows = pd.read_csv(tmp_path / "t.csv")
    assert rows["frame"].max() >= len(whole) - 3  # the timeline does not end early


# --- 4. batch outputs that would land on the batch's own files ---------------------------------------


def test_a_video_named_summary_does_not_overwrite_the_summary(tmp_path: Path) -> None:
    import pandas as pd

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(CLIP, d / "summary")  # no extension: found by its bytes
    shutil.copy(SAMPLES / "two_astronauts.mp4", d / "b.mp4")
    out = tmp_path / "out"
    proc = run_cli("batch", str(d), "--out", str(out), "--model", "fast", "--quiet", "--plots")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(Path(p).name for p in summary["input"]) == ["b.mp4", "summary"]
    row = summary[summary["input"].str.endswith("summary")].iloc[0]
    assert row["status"] == "ok" and "summary~2.csv" in row["message"]
    timeline = pd.read_csv(out / "summary~2.csv")
    assert "emotion" in " ".join(timeline.columns) and len(timeline) > 0
    assert (out / "summary~2.csv.run.json").is_file() and (out / "summary~2.png").is_file()
    # A second run finds the renamed outputs up to date.
    proc = run_cli("batch", str(d), "--out", str(out), "--model", "fast", "--quiet", "--plots")
    assert proc.returncode == 0, proc.stderr
    again = pd.read_csv(out / "summary.csv")
    assert again["message"].str.contains("up to date").all(), again["message"].tolist()
