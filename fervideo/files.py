"""Files the tool reads and writes: input checks, output checks, and atomic outputs.

Every output is written under a temporary name beside its target and renamed when complete, so an
error, Ctrl-C or SIGTERM never leaves a partial file under the final name (and a killed process's
leftovers can be found and removed). Used by every stage that writes (outputs, training, batch).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
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


@contextmanager
def atomic_output(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    The temporary name starts with '.' and ends with '.partial' plus the real extension (so
    writers that pick a format from the extension still work); an interrupted or failed run leaves
    no file under the final name, and the temporary file is removed.
    """
    target = Path(target)
    suffix = suffix if suffix is not None else target.suffix
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(parent, f"cannot create output folder ({e.strerror})") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial" + suffix, dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; finished outputs get the usual permissions (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)

def remove_partials(target: str | Path) -> None:
    """Remove temporary files :func:`atomic_output` left for ``target`` when its process was killed
    (SIGKILL, out-of-memory) before its own clean-up could run; batch calls it for a crashed worker."""
    target = Path(target)
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.partial*"):
        tmp.unlink(missing_ok=True)

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
