"""Where a batch's files live: a local folder, or an fsspec URL (``s3://bucket/prefix``, ``gs://``...).

Inputs given by URL are downloaded one at a time to the worker's staging folder (:func:`fetched`).

A cluster's workers rarely share a disk, but they can all reach a bucket. With a URL as ``--out``
each worker writes a file's outputs into a local staging folder as usual (the writers need real
files: FFmpeg, Parquet, matplotlib), then uploads each one under a temporary ``.partial`` name and
moves it onto its final name, so a reader of the bucket never sees half an output (the same rule as
:func:`fervideo.files.atomic_output` on disk). The resume record (``<name>.run.json``) is uploaded
last, so its presence still means the outputs are complete, and ``summary.csv`` is re-uploaded after
every file. Credentials and options come the usual fsspec way (environment, e.g. ``AWS_PROFILE``,
or ``FSSPEC_S3_*`` variables), so nothing secret passes through the command line or the workers'
arguments.

A target is a :class:`~pathlib.Path` (a local folder: the old code path, unchanged) or a ``str``
URL; the functions here take either, so the rest of the batch does not branch.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fervideo.errors import MissingExtraError, OutputError, UsageError
from fervideo.files import atomic_output
from fervideo.files import remove_partials as remove_local_partials

Target = Path | str  # a local path, or an fsspec URL
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
STAGE_PREFIX = "fervideo-stage-"
# Object stores have no folders, and s3fs's makedirs creates a *bucket*: a typo in --out must be
# an error, not a new bucket. Folders are made only on stores that have them (file, sftp, hdfs...).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2", "memory"})


def is_url(target: Target) -> bool:
    return isinstance(target, str) and bool(_URL.match(target))


def as_target(given: str | Path) -> Target:
    """A folder as given on the command line: a URL stays a string (``Path`` would fold ``s3://``
    into ``s3:/``)."""
    text = str(given)
    return text.rstrip("/") if _URL.match(text) else Path(given)


def join(root: Target, rel: str) -> Target:
    """``root/rel``; ``rel`` uses ``/`` (a path relative to the input folder)."""
    return root / rel if isinstance(root, Path) else f"{root}/{rel}"


def with_suffix_added(target: Target, extra: str) -> Target:
    return target.with_name(target.name + extra) if isinstance(target, Path) else target + extra


def name_of(target: Target) -> str:
    return target.name if isinstance(target, Path) else target.rsplit("/", 1)[-1]


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of ``url``, or one line saying what to install or fix."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise MissingExtraError(None, f"{url}: folders given as URLs need fsspec: pip install 'fervideo[remote]'") from None
    try:
        return url_to_fs(url)
    except ImportError as e:  # e.g. "Install s3fs to access S3"
        raise MissingExtraError(None, f"{url}: {e}") from None
    except ValueError as e:  # "Protocol not known: x"
        raise UsageError(None, f"{url}: {e} (a local folder, or an fsspec URL such as s3://bucket/prefix)") from None


def local_root(root: Target) -> Path | None:
    """The folder on this machine behind ``root`` (``file://`` URLs too), for leaving it out of the
    input search; None for remote stores."""
    if isinstance(root, Path):
        return root.resolve()
    fs, path = filesystem(root)
    return Path(path).resolve() if "file" in _protocols(fs) else None


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


def _makedirs(fs: Any, path: str) -> None:
    if path and not OBJECT_STORES.intersection(_protocols(fs)):
        fs.makedirs(path, exist_ok=True)


def prepare(root: Target) -> None:
    """Create the output folder and prove it can be written, before any work starts (a wrong bucket
    or missing credentials is one line now, not an error row per file after hours of work)."""
    if isinstance(root, Path):
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(root, f"cannot create output folder ({e.strerror})") from None
        if not os.access(root, os.W_OK):
            raise OutputError(root, "output folder cannot be written (permission denied)")
        return
    fs, path = filesystem(root)
    probe = f"{path}/.fervideo-write-test-{uuid.uuid4().hex[:8]}"
    try:
        _makedirs(fs, path)
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except (OSError, PermissionError, ValueError) as e:
        raise OutputError(root, f"cannot write there ({type(e).__name__}: {e})") from None


def modified(target: Target) -> float | None:
    """Last-modified time (seconds since the epoch), or None when it does not exist."""
    if isinstance(target, Path):
        try:
            return target.stat().st_mtime
        except OSError:
            return None
    fs, path = filesystem(target)
    if not fs.exists(path):
        return None
    try:
        return fs.modified(path).timestamp()
    except (NotImplementedError, OSError, AttributeError):
        return float("inf")  # a store that keeps no times: the run.json record decides alone


def modified_times(*roots: Target) -> Callable[[Target], float | None]:
    """:func:`modified` for every file under ``roots`` (the inputs' and the outputs' folders), from
    one listing per URL: asking per file costs two requests each, minutes of them before any work on
    a bucket of thousands of files. Local files are stat'ed (cheap). A store whose listing keeps no
    times gives ``inf`` (the run records decide alone)."""
    times: dict[str, float] = {}
    for root in roots:
        if is_url(root):
            fs, path = filesystem(str(root))
            try:
                infos = fs.find(path, detail=True)
            except FileNotFoundError:
                infos = {}
            times.update((name, _time_of(info)) for name, info in infos.items())

    def lookup(target: Target) -> float | None:
        return times.get(filesystem(str(target))[1]) if is_url(target) else modified(target)

    return lookup


def _time_of(info: dict[str, Any]) -> float:
    """Last-modified time from an fsspec listing entry; its key differs by store."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        v = info.get(key)
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, datetime.datetime):
            return (v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc)).timestamp()
        if isinstance(v, str):
            try:
                return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return float("inf")


def read_text(target: Target) -> str:
    if isinstance(target, Path):
        return target.read_text()
    fs, path = filesystem(target)
    with fs.open(path, "rt") as f:
        return f.read()


@contextlib.contextmanager
def _stage() -> Iterator[Path]:
    """A local staging folder, removed afterwards; named after this process, so a later worker can
    tell a dead one's leftovers (:func:`sweep_stages`)."""
    stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _sibling(path: str, name: str) -> str:
    """``name`` in the folder of ``path`` (store paths use ``/``)."""
    parent = path.rpartition("/")[0]
    return f"{parent}/{name}" if parent else name


def sweep_stages() -> None:
    """Remove staging folders of processes that no longer run (a worker killed mid-upload)."""
    for d in Path(tempfile.gettempdir()).glob(f"{STAGE_PREFIX}*"):
        try:
            pid = int(d.name[len(STAGE_PREFIX) :].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, PermissionError):  # not ours, or another user's live process
            continue


def upload(local: Path, target: str) -> None:
    """Copy ``local`` to ``target`` under a temporary name, then move it onto the final name."""
    fs, path = filesystem(target)
    name = path.rpartition("/")[2]
    tmp = _sibling(path, f".{name}.{uuid.uuid4().hex[:8]}.partial{Path(name).suffix}")
    _makedirs(fs, path.rpartition("/")[0])
    try:
        fs.put_file(str(local), tmp)
        if OBJECT_STORES.intersection(_protocols(fs)):
            fs.cp_file(tmp, path)  # a server-side copy: the object appears whole (mv would list first)
            fs.rm_file(tmp)
        else:
            fs.mv(tmp, path)  # a rename where the store has one
    except BaseException:
        with contextlib.suppress(OSError):
            if fs.exists(tmp):
                fs.rm_file(tmp)
        raise


@contextlib.contextmanager
def publishing(target: Target) -> Iterator[Path]:
    """Yield a local path to write; on success it appears at ``target`` complete or not at all."""
    if isinstance(target, Path):
        with atomic_output(target) as tmp:
            yield tmp
        return
    with _stage() as stage:
        local = stage / name_of(target)
        yield local
        upload(local, target)


@contextlib.contextmanager
def staged(outputs: dict[str, Target]) -> Iterator[dict[str, Path]]:
    """Local paths for one file's outputs; for URL targets, uploaded when the block succeeds.

    Local targets are passed through: their writers already write atomically beside the target.
    (A file's outputs all lie under one ``--out``, so they are all URLs or all paths.)
    """
    if not any(is_url(t) for t in outputs.values()):
        yield {k: Path(t) for k, t in outputs.items()}
        return
    with _stage() as stage:
        local = {k: stage / name_of(t) for k, t in outputs.items()}
        yield local
        for k, t in outputs.items():
            upload(local[k], str(t))


@contextlib.contextmanager
def fetched(target: Target) -> Iterator[Path]:
    """A local copy of ``target`` for reading (the target itself when it is local)."""
    if isinstance(target, Path):
        yield target
        return
    fs, path = filesystem(target)
    with _stage() as stage:
        local = stage / name_of(target)
        fs.get_file(path, str(local))
        yield local


def remove_partials(target: Target) -> None:
    """Remove what an upload or a local write left for ``target`` when its worker was killed."""
    if isinstance(target, Path):
        remove_local_partials(target)
        return
    fs, path = filesystem(target)
    try:
        leftovers = fs.glob(_sibling(path, f".{glob.escape(path.rpartition('/')[2])}.*.partial*"))
    except (OSError, ValueError):
        return
    for p in leftovers:
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.rm_file(p)

