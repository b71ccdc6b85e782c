"""`fervideo batch --ray`: the same outputs as the local batch, from a local Ray cluster the test starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, SAMPLES, SHARED_VIDEOS, need_extra, need_shared_videos, run_cli
from media import sample_frames, write_video

need_extra("ray", "ray")
pytestmark = pytest.mark.slow

RAY_ENV = {"RAY_ADDRESS": "", "RAY_USAGE_STATS_ENABLED": "0"}


def _holder_of(name: str, exclude: set[int]) -> int | None:
    """Any process (Ray's workers are not our children) holding ``name``'s temporary outputs open."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in exclude or int(proc.name) == os.getpid():
            continue
        try:
            held = [os.readlink(f) for f in (proc / "fd").iterdir()]
        except OSError:
            continue
        if any(f".{name}." in h for h in held):
            return int(proc.name)
    return None


def _kill_one_worker(args: list[str], find: Callable[[set[int]], int | None]) -> tuple[int | None, int, str]:
    """Run a batch; SIGKILL the first Ray worker ``find`` names (given the pids to leave alone)."""
    env = {**os.environ, **RAY_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "fervideo", "batch", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = None
    deadline = time.time() + 300
    while proc.poll() is None and killed is None and time.time() < deadline:
        killed = find({proc.pid})
        if killed is not None:
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=600)
    return killed, proc.returncode, err


def _batch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **RAY_ENV}
    return subprocess.run([sys.executable, "-m", "fervideo", "batch", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


def _shared_clips_and_a_broken_file(tmp_path: Path, *names: str) -> Path:
    need_shared_videos()
    d = tmp_path / "in"
    d.mkdir()
    for name in names:
        (d / name).symlink_to(SHARED_VIDEOS / name)
    (d / "broken.mp4").write_text("not a video\n" * 30)
    return d


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_ray_batch_matches_local_batch_byte_for_byte(tmp_path: Path) -> None:
    d = _shared_clips_and_a_broken_file(tmp_path, "single_face.mp4", "face_noface.mov", "short_hamilton_clip.mp4")
    local, cluster = tmp_path / "local", tmp_path / "ray"
    run_cli("batch", str(d), "--out", str(local), "-q")
    proc = _batch(str(d), "--out", str(cluster), "-q", "--ray", "local")
    assert proc.returncode == 1, proc.stderr[-2000:]  # the broken file
    _same_files(local, cluster)
    s = pd.read_csv(cluster / "summary.csv", keep_default_na=False).set_index("input")
    assert s.loc[str(d / "broken.mp4"), "status"] == "error"
    assert (s.drop(index=str(d / "broken.mp4"))["status"] == "ok").all()
    # The same resume rules: a second run skips everything.
    proc = _batch(str(d), "--out", str(cluster), "-q", "--ray", "local")
    assert "3 file(s) up to date" in proc.stderr, proc.stderr[-2000:]


def test_ray_batch_with_urls_matches_local_batch(tmp_path: Path) -> None:
    """Cluster nodes rarely share a disk: the input folder and --out may be fsspec URLs (s3://...);
    file:// URLs run the same download and upload paths here. Every output kind, byte for byte."""
    pytest.importorskip("fsspec", reason="the remote extra is not installed: pip install '.[remote]'")
    local, remote = tmp_path / "local", tmp_path / "remote"
    run_cli("batch", str(SAMPLES), "--out", str(local), "-q", "--annotate", "--plots", check=True)
    proc = _batch(SAMPLES.as_uri(), "--out", remote.as_uri(), "-q", "--annotate", "--plots", "--ray", "local")
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = sorted(p.name for p in local.iterdir())
    assert len(names) == 9 and names == sorted(p.name for p in remote.iterdir())  # 4 per video + summary
    for name in names:
        if name != "summary.csv":  # which names the inputs as given: paths or URLs
            assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    summary = (remote / "summary.csv").read_text()
    assert summary.replace(SAMPLES.as_uri(), str(SAMPLES)) == (local / "summary.csv").read_text()


def test_ray_worker_killed_mid_file_is_requeued(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_video(d / "a_long.mp4", sample_frames(1500, size=(320, 180)))
    (d / "b.mp4").write_bytes((SAMPLES / "two_astronauts.mp4").read_bytes())
    out = tmp_path / "out"
    killed, rc, err = _kill_one_worker([str(d), "--out", str(out), "-q", "--annotate", "--ray", "local"], lambda skip: _holder_of("a_long.mp4", skip))
    assert killed is not None, "never caught a Ray worker on a_long.mp4"
    assert rc == 0, err[-2000:]
    s = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("input")
    assert (s["status"] == "ok").all()
    assert "re-run" in s.loc[str(d / "a_long.mp4"), "message"]
    assert int(s.loc[str(d / "a_long.mp4"), "frames"]) == 1500
    assert not [p.name for p in out.iterdir() if ".partial" in p.name]


def test_ray_chunks_give_the_local_batch_byte_for_byte(tmp_path: Path) -> None:
    """--chunk-s: long files split across the actors, ids and smoothing replayed in order; every
    output and the summary are the local batch's, and a second run skips every file."""
    d = _shared_clips_and_a_broken_file(tmp_path, "face.avi", "short_hamilton_clip.mp4", "face_noface.mov")
    local, cluster = tmp_path / "local", tmp_path / "ray"
    args = ("-q", "--plots", "--smooth", "0.5")
    run_cli("batch", str(d), "--out", str(local), *args)
    proc = _batch(str(d), "--out", str(cluster), *args, "--ray", "local", "--chunk-s", "6")
    assert proc.returncode == 1, proc.stderr[-2000:]  # the broken file
    assert "3 file(s) split into chunks of 6 s" in proc.stderr, proc.stderr[-2000:]
    _same_files(local, cluster)
    proc = _batch(str(d), "--out", str(cluster), *args, "--ray", "local", "--chunk-s", "6")
    assert "3 file(s) up to date" in proc.stderr, proc.stderr[-2000:]


def test_ray_worker_killed_mid_chunk_is_requeued(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    video = write_video(d / "a_long.mp4", sample_frames(1500, size=(320, 180)))  # 60 s: 3 chunks of 20 s
    local, cluster = tmp_path / "local", tmp_path / "ray"
    run_cli("batch", str(d), "--out", str(local), "-q", check=True)
    args = [str(d), "--out", str(cluster), "-q", "--ray", "local", "--chunk-s", "20"]
    killed, rc, err = _kill_one_worker(args, lambda skip: _reader_of(video.resolve(), skip))
    assert killed is not None, "never caught a Ray worker reading a_long.mp4"
    assert rc == 0, err[-2000:]
    s = pd.read_csv(cluster / "summary.csv", keep_default_na=False).set_index("input")
    assert "re-run" in s.loc[str(d / "a_long.mp4"), "message"]
    assert (cluster / "a_long.mp4.csv").read_bytes() == (local / "a_long.mp4.csv").read_bytes()


def _reader_of(path: Path, exclude: set[int]) -> int | None:
    """A process (not in ``exclude``, not this one) with ``path`` open: a Ray worker decoding it."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in exclude or int(proc.name) == os.getpid():
            continue
        try:
            if any(os.readlink(f) == str(path) for f in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None

