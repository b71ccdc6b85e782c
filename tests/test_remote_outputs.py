"""``fervideo batch --out URL``: outputs through fsspec (s3://, gs://...), tested with ``file://``
URLs (a real run, worker processes included) and fsspec's in-memory store (the store functions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLES, one_line_error, run_cli
from media import broken_folder

pytest.importorskip("fsspec", reason="the remote extra is not installed: pip install '.[remote]'")
import fsspec

from fervideo.batch import store
from fervideo.batch.resume import resume_state, write_sidecar

EXIT_SOME_FAILED, EXIT_USAGE, EXIT_OUTPUT = 1, 2, 5


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _my_stages() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{store.STAGE_PREFIX}*")}


def test_batch_to_a_url_writes_what_a_local_batch_writes(tmp_path: Path) -> None:
    d = broken_folder(tmp_path)
    local, remote = tmp_path / "local", tmp_path / "remote"
    stages_before = _my_stages()
    args = ("-r", "--annotate", "--plots", "--quiet")
    a = run_cli("batch", str(d), "--out", str(local), *args)
    b = run_cli("batch", str(d), "--out", remote.as_uri() + "/", *args)
    assert a.returncode == b.returncode == EXIT_SOME_FAILED, b.stderr  # text.mp4, empty.avi
    # Byte for byte, sub-folders, run records and summary included; no temporary names.
    files = _files(remote)
    assert files == _files(local)
    assert sorted(files) == sorted(
        [
            "good.mp4.annotated.mp4",
            "good.mp4.csv",
            "good.mp4.csv.run.json",
            "good.mp4.png",
            "sub/good2.mp4.annotated.mp4",
            "sub/good2.mp4.csv",
            "sub/good2.mp4.csv.run.json",
            "sub/good2.mp4.png",
            "summary.csv",
        ]
    )
    assert f"{remote.as_uri()}/summary.csv: 2 ok, 2 failed of 4 videos" in b.stderr
    s = pd.read_csv(remote / "summary.csv", keep_default_na=False).set_index("input")
    assert s.loc[str(d / "text.mp4"), "status"] == "error"
    assert int(s.loc[str(d / "good.mp4"), "face_ids"]) == 2
    assert _my_stages() <= stages_before, "staging folders were left behind"
    # Resume reads the run records through the URL: nothing is redone, the summary is complete.
    mtime = (remote / "good.mp4.csv").stat().st_mtime_ns
    c = run_cli("batch", str(d), "--out", remote.as_uri(), *args)
    assert "2 file(s) up to date with the same options and model (skipped)" in c.stderr, c.stderr
    assert (remote / "good.mp4.csv").stat().st_mtime_ns == mtime
    s2 = pd.read_csv(remote / "summary.csv", keep_default_na=False).set_index("input")
    assert "up to date" in s2.loc[str(d / "good.mp4"), "message"]
    assert int(s2.loc[str(d / "good.mp4"), "face_ids"]) == 2
    # Other options redo the files.
    e = run_cli("batch", str(d), "--out", remote.as_uri(), *args, "--smooth", "0.5")
    assert "2 made with other options or another model (redone)" in e.stderr, e.stderr
    assert (remote / "good.mp4.csv").stat().st_mtime_ns != mtime


def test_bad_output_urls_are_one_line_before_any_work(tmp_path: Path) -> None:
    one_line_error(run_cli("batch", str(SAMPLES), "--out", "nosuch://bucket/x", "-q"), EXIT_USAGE, "nosuch://bucket/x: Protocol not known")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    url = blocker.as_uri() + "/out"
    one_line_error(run_cli("batch", str(SAMPLES), "--out", url, "-q"), EXIT_OUTPUT, url, "cannot write there")
    try:
        import s3fs  # noqa: F401
    except ImportError:  # the store's own package missing: say which one
        one_line_error(run_cli("batch", str(SAMPLES), "--out", "s3://bucket/prefix", "-q"), EXIT_USAGE, "s3://bucket/prefix", "s3fs")


def test_a_url_without_fsspec_says_what_to_install() -> None:
    """The remote extra is optional: without fsspec, a URL is one line naming the extra."""
    code = "import sys; sys.modules['fsspec'] = sys.modules['fsspec.core'] = None; sys.argv[0] = 'fervideo'; from fervideo.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "batch", str(SAMPLES), "--out", "s3://bucket/x", "-q"], capture_output=True, text=True, timeout=300)
    one_line_error(proc, EXIT_USAGE, "s3://bucket/x", "pip install 'fervideo[remote]'")


@pytest.fixture
def mem() -> Iterator[str]:
    """A fresh folder in fsspec's in-memory store: a filesystem with no local path behind it."""
    root = f"memory://fervideo-test-{os.getpid()}-{os.urandom(4).hex()}"
    yield root
    fs = fsspec.filesystem("memory")
    path = root.split("://", 1)[1]
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_store_outputs_appear_complete_or_not_at_all(mem: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = fsspec.filesystem("memory")
    store.prepare(mem)
    assert store.local_root(mem) is None
    target = store.join(mem, "a/b.csv")
    with store.publishing(target) as tmp:
        tmp.write_text("x,y\n1,2\n")
    assert store.read_text(target) == "x,y\n1,2\n"
    assert store.modified(target) is not None and store.modified(store.join(mem, "nope.csv")) is None
    with store.fetched(target) as local:
        assert local.read_text() == "x,y\n1,2\n"
    # A failed block publishes nothing.
    other = store.join(mem, "a/c.csv")
    with pytest.raises(RuntimeError), store.publishing(other) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert store.modified(other) is None
    # An upload that dies half way leaves no file under the final name and no temporary file.
    real_put = type(fs).put_file

    def half_put(self: object, lpath: str, rpath: str, **kw: object) -> None:
        fs.pipe_file(rpath, b"half")
        raise OSError("connection reset")

    monkeypatch.setattr(type(fs), "put_file", half_put)
    with pytest.raises(OSError), store.publishing(other) as tmp:
        tmp.write_text("x,y\n")
    monkeypatch.setattr(type(fs), "put_file", real_put)
    assert store.modified(other) is None
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(mem.split("://", 1)[1] + "/a", detail=False)] == ["b.csv"]
    # What a killed worker's upload left is found and removed by name.
    leftover = mem.split("://", 1)[1] + "/a/.c.csv.0123abcd.partial.csv"
    fs.pipe_file(leftover, b"half")
    store.remove_partials(other)
    assert not fs.exists(leftover) and fs.exists(mem.split("://", 1)[1] + "/a/b.csv")


def test_resume_rules_hold_on_a_store_without_local_paths(mem: str, tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())
    os.utime(video, (1_000_000_000, 1_000_000_000))  # an old input: outputs written now are newer
    outputs = {"timeline": store.join(mem, "v.mp4.csv"), "plot": store.join(mem, "v.mp4.png")}
    settings = {"model_sha256": "abc", "smooth_s": 0.0}
    assert resume_state(video, outputs, settings) == "missing"
    with store.staged(outputs) as local:
        assert set(local) == {"timeline", "plot"} and all(isinstance(p, Path) for p in local.values())
        for p in local.values():
            p.write_text("done")
    assert resume_state(video, outputs, settings) == "changed"  # no run record yet
    write_sidecar(outputs, settings)
    assert json.loads(store.read_text(store.join(mem, "v.mp4.csv.run.json"))) == settings
    assert resume_state(video, outputs, settings) == "same"
    assert resume_state(video, outputs, {**settings, "smooth_s": 0.5}) == "changed"
    # The same answers from one listing of the folder (what a batch's plan uses for a URL).
    listed = store.modified_times(mem)
    assert resume_state(video, outputs, settings, listed) == "same"
    assert resume_state(video, {**outputs, "annotated": store.join(mem, "v.mp4.annotated.mp4")}, settings, listed) == "missing"
    assert abs(listed(outputs["plot"]) - store.modified(outputs["plot"])) < 1.0  # type: ignore[operator]
    os.utime(video)  # the input changed after its outputs were made
    assert resume_state(video, outputs, settings) == "missing"
    assert resume_state(video, outputs, settings, store.modified_times(mem)) == "missing"


def test_staging_folders_of_dead_workers_are_swept() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    stale = Path(tempfile.gettempdir()) / f"{store.STAGE_PREFIX}{proc.pid}-test"
    stale.mkdir()
    (stale / "x.csv").write_text("half")
    mine = Path(tempfile.mkdtemp(prefix=f"{store.STAGE_PREFIX}{os.getpid()}-"))
    try:
        store.sweep_stages()
        assert not stale.exists()
        assert mine.exists()  # a live process's staging folder is left alone
    finally:
        os.rmdir(mine)


@pytest.fixture
def s3_env() -> Iterator[dict[str, str]]:
    """A local S3 server (moto) with a bucket "study", and the environment that points s3fs at it:
    the real s3:// code path (no folders; a move is a copy and a delete) without a network."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (dev extra)")
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (dev extra)")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="study")
    try:
        yield env
    finally:
        server.stop()


def test_batch_to_s3_writes_what_a_local_batch_writes(s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    d = broken_folder(tmp_path)
    local = tmp_path / "local"
    args = ("-r", "--annotate", "--plots", "--quiet", "--jobs", "2")
    run_cli("batch", str(d), "--out", str(local), *args)
    proc = run_cli("batch", str(d), "--out", "s3://study/run1", *args)
    assert proc.returncode == EXIT_SOME_FAILED, proc.stderr  # text.mp4, empty.avi
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    keys = sorted(fs.find("study/run1"))
    assert [k.removeprefix("study/run1/") for k in keys] == sorted(_files(local)), "missing outputs, or temporary objects left"
    for rel, data in _files(local).items():
        assert fs.cat_file(f"study/run1/{rel}") == data, rel
    again = run_cli("batch", str(d), "--out", "s3://study/run1", *args)
    assert "2 file(s) up to date with the same options and model (skipped)" in again.stderr, again.stderr
    # A bucket that does not exist is an error before any work, and is not created.
    one_line_error(run_cli("batch", str(d), "--out", "s3://no-such-bucket/run1", "-q"), EXIT_OUTPUT, "s3://no-such-bucket/run1", "cannot write there")
    assert not fs.exists("no-such-bucket")


def _summary(path: Path | bytes, prefix: str) -> pd.DataFrame:
    """summary.csv with the inputs made relative to ``prefix`` (a folder or a URL)."""
    import io

    s = pd.read_csv(io.BytesIO(path if isinstance(path, bytes) else path.read_bytes()), keep_default_na=False)
    s["input"] = [i.removeprefix(prefix) for i in s["input"]]
    return s.set_index("input").sort_index()


def test_batch_reads_inputs_from_a_url(tmp_path: Path) -> None:
    """Videos in a bucket: the same discovery rules (hidden files and non-videos skipped, magic
    bytes), each file downloaded to the worker, the same outputs; the summary names the URLs."""
    d = broken_folder(tmp_path)
    (d / "sub" / "noext").write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())  # found by its header
    (d / ".hidden.mp4").write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())
    local, remote = tmp_path / "local", tmp_path / "remote"
    args = ("-r", "--plots", "--quiet")
    run_cli("batch", str(d), "--out", str(local), *args)
    proc = run_cli("batch", d.as_uri(), "--out", remote.as_uri(), *args)
    assert proc.returncode == EXIT_SOME_FAILED, proc.stderr
    a, b = _files(local), _files(remote)
    assert a.pop("summary.csv") and b.pop("summary.csv")
    assert a == b and "sub/noext.csv" in b
    sa, sb = _summary(local / "summary.csv", f"{d}/"), _summary(remote / "summary.csv", f"{d.as_uri()}/")
    pd.testing.assert_frame_equal(sa, sb)
    assert sorted(sb.index) == ["empty.avi", "good.mp4", "sub/good2.mp4", "sub/noext", "text.mp4"]
    again = run_cli("batch", d.as_uri(), "--out", remote.as_uri(), *args)
    assert "3 file(s) up to date" in again.stderr, again.stderr
    # Not there, or a file: one line, exit 3.
    one_line_error(run_cli("batch", (tmp_path / "nope").as_uri(), "--out", str(tmp_path / "o"), "-q"), 3, "no such directory")
    one_line_error(run_cli("batch", (d / "good.mp4").as_uri(), "--out", str(tmp_path / "o"), "-q"), 3, "is a file")


def test_batch_from_s3_to_s3(s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    d = broken_folder(tmp_path)
    for p in d.rglob("*"):
        if p.is_file():
            fs.pipe_file(f"study/videos/{p.relative_to(d).as_posix()}", p.read_bytes())
    local = tmp_path / "local"
    args = ("-r", "--annotate", "--quiet", "--jobs", "2")
    run_cli("batch", str(d), "--out", str(local), *args)
    proc = run_cli("batch", "s3://study/videos", "--out", "s3://study/videos/results", *args)  # outputs inside the inputs' folder
    assert proc.returncode == EXIT_SOME_FAILED, proc.stderr
    expected = _files(local)
    summary = expected.pop("summary.csv")
    fs.invalidate_cache()
    got = {k.removeprefix("study/videos/results/"): fs.cat_file(k) for k in fs.find("study/videos/results")}
    got_summary = got.pop("summary.csv")
    assert got == expected
    pd.testing.assert_frame_equal(_summary(summary, f"{d}/"), _summary(got_summary, "s3://study/videos/"))
    again = run_cli("batch", "s3://study/videos", "--out", "s3://study/videos/results", *args)
    assert "2 file(s) up to date" in again.stderr, again.stderr
    assert "2 ok, 2 failed of 4 videos" in again.stderr, again.stderr  # the results under videos/ are no inputs
