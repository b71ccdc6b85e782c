"""Which files of a folder are videos, and where each one's outputs go.

Known video extensions, plus any other file whose first bytes look like a video container
(MP4/MOV ``ftyp``, AVI ``RIFF``, Matroska/WebM, MPEG-TS/PS, FLV, ASF). A README or a photo beside
the clips is skipped silently; a ``.mp4`` that is really text is an error row later. The folder may
be an fsspec URL (``s3://bucket/videos``): the same rules, over one listing of the bucket.
"""

from __future__ import annotations

from pathlib import Path

from fervideo.batch import store
from fervideo.batch.options import BatchOptions
from fervideo.batch.store import Target, join, name_of, with_suffix_added
from fervideo.video import VIDEO_EXTENSIONS, looks_like_video, video_header


def find_videos(directory: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """The videos under ``directory`` in a stable order, leaving out ``exclude`` (the output folder)."""
    pattern = "**/*" if recursive else "*"
    out = []
    for p in sorted(directory.glob(pattern)):
        if p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists():
            # A broken link or a link loop: an error row naming it (issue 25), not a silent skip.
            if exclude is None or (exclude not in p.parent.resolve().parents and p.parent.resolve() != exclude):
                out.append(p)
            continue
        if not p.is_file():
            continue
        if exclude is not None and exclude in p.resolve().parents:
            continue
        if looks_like_video(p):
            out.append(p)
    return out


def find_videos_at(url: str, recursive: bool, exclude: str | None = None) -> list[str]:
    """:func:`find_videos` for a folder given as a URL: one listing; only files with no known
    extension have their first bytes read."""
    fs, path = store.filesystem(url)
    if recursive:
        names = fs.find(path, detail=False)
    else:
        names = [e["name"] for e in fs.ls(path, detail=True) if e.get("type") == "file"]
    prefix = path.rstrip("/") + "/"
    out = []
    for name in sorted(names):
        rel = name[len(prefix) :] if name.startswith(prefix) else name.rsplit("/", 1)[-1]
        video = f"{url}/{rel}"
        if rel.rsplit("/", 1)[-1].startswith(".") or (exclude is not None and video.startswith(exclude + "/")):
            continue
        if Path(rel).suffix.lower() in VIDEO_EXTENSIONS:
            out.append(video)
            continue
        try:
            with fs.open(name, "rb") as f:
                head = f.read(400)
        except OSError:
            continue
        if video_header(head):
            out.append(video)
    return out


def outputs_for(video: Target, directory: Target, out: Target, bo: BatchOptions) -> dict[str, Target]:
    """Output targets of one input, mirroring its place under ``directory`` inside ``out``."""
    base = video.relative_to(directory).as_posix() if isinstance(video, Path) else str(video)[len(str(directory)) + 1 :]
    paths = {"timeline": join(out, f"{base}.{bo.fmt}")}
    if bo.annotate:
        paths["annotated"] = join(out, f"{base}.annotated.mp4")
    if bo.plots:
        paths["plot"] = join(out, f"{base}.png")
    return paths


def _outputs_with_record(outputs: dict[str, Target]) -> list[str]:
    """Every file the batch writes for one input, the run record included, as keys to compare
    (case-folded: on macOS and Windows 'Summary.csv' is 'summary.csv')."""
    return [str(t).casefold() for t in [*outputs.values(), with_suffix_added(outputs["timeline"], ".run.json")]]


def unclashed(outs: list[dict[str, Target]], reserved: list[Target]) -> list[dict[str, Target]]:
    """The inputs' output targets, renamed where one would land on a file the batch itself writes.

    A video named ``summary`` (no extension) has the timeline ``summary.csv``, which is the batch's
    summary; two inputs can also map onto each other's outputs (``a`` and ``a.csv`` with
    ``--annotate``...). The first input in order keeps its names; a later one gets ``~2``, ``~3``
    ... after its name (``summary~2.csv``), and the summary row says so. Deterministic, so a resumed
    run finds the same names.
    """
    taken = {str(r).casefold() for r in reserved}
    result = []
    for outputs in outs:
        chosen = outputs
        n = 1
        while any(k in taken for k in _outputs_with_record(chosen)):
            n += 1
            chosen = {kind: _with_tag(t, outputs["timeline"], n) for kind, t in outputs.items()}
        taken.update(_outputs_with_record(chosen))
        result.append(chosen)
    return result


def _with_tag(target: Target, timeline: Target, n: int) -> Target:
    """``target`` with ``~n`` after the input's name (the part every output of the input shares)."""
    name, tl = name_of(target), name_of(timeline)
    base = tl.rsplit(".", 1)[0]  # the timeline is <input name>.<format>
    renamed = f"{base}~{n}{name[len(base) :]}"
    if isinstance(target, Path):
        return target.with_name(renamed)
    return str(target)[: -len(name)] + renamed


def nested_video_folders(directory: Path, out: Path | None) -> list[Path]:
    """Sub-folders holding videos, for the hint a non-recursive run gives (they are not analysed);
    ``out``: the local output folder, if there is one, which is no input."""
    return [p for p in sorted(directory.iterdir()) if p.is_dir() and not p.name.startswith(".") and p.resolve() != out and find_videos(p, True)]
