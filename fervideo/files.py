"""Files the tool reads and writes: input checks, output checks, and atomic outputs.

Every output is written under a temporary name beside its target and renamed when complete, so an
error, Ctrl-C or SIGTERM never leaves a partial file under the final name (and a killed process's
leftovers can be found and removed). Used by every stage that writes (outputs, training, batch).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fervideo.errors import InputError, OutputError, VideoOpenError


def check_input_file(path: str | Path) -> Path:
    """Fail early, with the reason a user can act on, before any decoder sees the file."""
    p = Path(path)
    if not p.exists():
        if p.is_symlink():
            try:
                p.resolve(strict=True)
            except RuntimeError:  # Python < 3.13 raises this for a loop
                raise InputError(p, "symbolic link loop") from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise InputError(p, "symbolic link loop") from None
            raise InputError(p, f"broken symbolic link (points to {os.readlink(p)}, which does not exist)")
        raise InputError(p, "no such file")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a video file (use 'fervideo batch' for folders)")
    if p.stat().st_size == 0:
        raise VideoOpenError(p, "file is empty")
    if not os.access(p, os.R_OK):
        raise InputError(p, "file is not readable (permission denied)")
    return p


def sha256_of(path: str | Path) -> str:
    """Files are identified by content, not name: model cards (the data), batch resume (the models)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# What the file system can say when an output is written, as the one line a user reads. Every
# writer (timeline, annotated video, plot, summary, run record, training files) goes through
# atomic_output, so this is the one place these errors become OutputError (exit 5).
OUTPUT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long for this file system",
    errno.EIO: "input/output error on the device",
    errno.EFBIG: "file too large for this file system (or over the process's file-size limit)",
}
NAME_MAX = 255  # bytes in one path component on Linux, macOS and Windows file systems alike


def output_error(target: str | Path, e: OSError) -> OutputError | None:
    """The one-line :class:`OutputError` for an OS error on an output, or None if ``e`` is not one
    a user can fix by freeing space, changing permissions or choosing another place or name."""
    reason = OUTPUT_ERRNOS.get(e.errno or -1)
    if reason is None:
        return None
    if e.errno is not None and e.strerror and e.strerror != os.strerror(e.errno):
        reason += f" ({e.strerror})"  # the writer's own words (OpenCV's unfinished file)
    return OutputError(target, f"cannot be written: {reason}")


_PARTIAL = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>\d+)\.[A-Za-z0-9_]{8}\.partial")


def _temp_stem(name: str, reserved: int) -> str:
    """``name`` cut (at a character boundary) so that a temporary name with ``reserved`` more
    bytes still fits in NAME_MAX: a legal 240-byte output name must not fail on its temporary name."""
    room = NAME_MAX - reserved
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= room:
        return name
    return raw[: max(1, room)].decode("utf-8", "ignore")


def _temp_prefix(target: Path, suffix: str) -> str:
    # '.' + stem + '.' + pid + '.' + 8 random characters (mkstemp) + '.partial' + suffix
    pid = str(os.getpid())
    reserved = 1 + 1 + len(pid) + 1 + 8 + len((".partial" + suffix).encode("utf-8", "surrogateescape"))
    return f".{_temp_stem(target.name, reserved)}.{pid}."


@contextmanager
def atomic_output(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary name starts with '.', holds the writing process's id (so a later batch can tell
    a killed run's leftovers from a live run's files, :func:`sweep_partials`) and ends with
    '.partial' plus the real extension (so writers that pick a format from the extension still
    work). An interrupted or failed run leaves no file under the final name, and the temporary file
    is removed. OS errors on the output (disk full, read-only, name too long: :data:`OUTPUT_ERRNOS`)
    come out as one :class:`OutputError` naming ``target``.
    """
    target = Path(target)
    suffix = suffix if suffix is not None else target.suffix
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(parent, f"cannot create output folder ({e.strerror})") from None
    with _as_output_error(target):
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target, suffix), suffix=".partial" + suffix, dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _as_output_error(target):
            yield tmp
            # mkstemp creates 0600 files; finished outputs get the usual permissions (0666 & ~umask).
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _as_output_error(target: Path) -> Iterator[None]:
    """Re-raise an OS error on ``target`` that :func:`output_error` knows as that OutputError."""
    try:
        yield
    except OSError as e:
        err = output_error(target, e)
        if err is None:
            raise
        raise err from e


def partials_of(target: str | Path) -> list[Path]:
    """The temporary files :func:`atomic_output` made for ``target`` (any process's)."""
    target = Path(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    out = []
    for name in names:
        m = _PARTIAL.match(name)
        if m is None:
            continue
        stem = m.group("stem")
        # A long name's temporary file holds a cut of it (_temp_stem): a prefix, filling NAME_MAX.
        cut = stem != "" and target.name.startswith(stem) and len(name.encode("utf-8", "surrogateescape")) >= NAME_MAX - 8
        if stem == target.name or cut:
            out.append(target.parent / name)
    return out


def remove_partials(target: str | Path) -> None:
    """Remove temporary files :func:`atomic_output` left for ``target`` when its process was killed
    (SIGKILL, out-of-memory) before its own clean-up could run; batch calls it for a crashed worker."""
    for tmp in partials_of(target):
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or a number no process has): leave its files alone
    return True


def sweep_partials(folder: str | Path) -> int:
    """Remove, anywhere under ``folder``, the temporary files of processes that no longer run (a
    batch killed with SIGKILL leaves them); returns how many. A live run's files (another batch
    writing to the same folder) are kept: their process id is in the name."""
    removed = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            m = _PARTIAL.match(name)
            if m and not _alive(int(m.group("pid"))):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except OSError:
                    pass
    return removed


def check_output_path(output: str | Path, inputs: list[Path] | tuple[Path, ...] = ()) -> Path:
    """Refuse outputs that would overwrite an input or cannot be written, before any work starts."""
    out = Path(output)
    if any(out.resolve() == inp.resolve() for inp in inputs):
        raise OutputError(out, "output path is the input file; choose another name")
    if out.is_dir():
        raise OutputError(out, "output path is a directory; give a file name")
    parent = out.parent
    probe_dir = parent
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(probe_dir, "is a file, so the output folder cannot be created there")
    if not os.access(probe_dir, os.W_OK):
        raise OutputError(parent, "output folder cannot be written (permission denied)")
    return out
