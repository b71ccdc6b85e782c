"""Which files of a folder are videos, and where each one's outputs go.

Known video extensions, plus any other file whose first bytes look like a video container
(MP4/MOV ``ftyp``, AVI ``RIFF``, Matroska/WebM, MPEG-TS/PS, FLV, ASF). A README or a photo beside
the clips is skipped silently; a ``.mp4`` that is really text is an error row later.
"""

from __future__ import annotations

from pathlib import Path

from fervideo.batch.options import BatchOptions
from fervideo.video import VIDEO_EXTENSIONS

_MAGIC = (
    (4, b"ftyp"),  # MP4 / MOV / 3GP
    (0, b"RIFF"),  # AVI
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"\x00\x00\x01\xba"),  # MPEG-PS
    (0, b"FLV"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
)


def looks_like_video(path: Path) -> bool:
    """Known extension, or container magic bytes in the header (MPEG-TS: sync byte every 188)."""
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    if any(head[o : o + len(m)] == m for o, m in _MAGIC):
        return True
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47


def find_videos(directory: Path, recursive: bool, exclude: Path | None = None) -> list[Path]:
    """The videos under ``directory`` in a stable order, leaving out ``exclude`` (the output folder)."""
    pattern = "**/*" if recursive else "*"
    out = []
    for p in sorted(directory.glob(pattern)):
        if not p.is_file() or p.name.startswith("."):
            continue
        if exclude is not None and exclude in p.resolve().parents:
            continue
        if looks_like_video(p):
            out.append(p)
    return out


def outputs_for(video: Path, directory: Path, out: Path, bo: BatchOptions) -> dict[str, Path]:
    """Output paths of one input, mirroring its place under ``directory`` inside ``out``."""
    rel = video.relative_to(directory)
    base = out / rel.parent / rel.name
    paths = {"timeline": base.with_name(f"{rel.name}.{bo.fmt}")}
    if bo.annotate:
        paths["annotated"] = base.with_name(f"{rel.name}.annotated.mp4")
    if bo.plots:
        paths["plot"] = base.with_name(f"{rel.name}.png")
    return paths


def nested_video_folders(directory: Path, out: Path) -> list[Path]:
    """Sub-folders holding videos, for the hint a non-recursive run gives (they are not analysed)."""
    return [
        p for p in sorted(directory.iterdir()) if p.is_dir() and not p.name.startswith(".") and p.resolve() != out.resolve() and find_videos(p, True)
    ]
