"""Process a folder of videos: never die on one file, resume where an interrupted run stopped.

* Which files: known video extensions, plus any other file whose first bytes look like a video
  container (MP4/MOV ``ftyp``, AVI ``RIFF``, Matroska/WebM, MPEG-TS/PS, FLV, ASF). A README or a
  photo beside the clips is skipped silently; a ``.mp4`` that is really text is an error row.
* Resume: an input is skipped when all its outputs exist and are newer than it (``--overwrite``
  redoes it). Outputs are renamed into place only when complete, so existence means complete.
* ``summary.csv`` is rewritten (atomically) after every file, so it is right even after Ctrl-C.
* ``--jobs N`` runs files in N worker processes, each loading the models once; each file's outputs
  are written by one process, and the summary only by the parent, so rows never interleave.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fervideo.errors import EXIT_OK, EXIT_SOME_FAILED, FervideoError, InputError, OutputError
from fervideo.pipeline import Analyzer, Options, process_video
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


@dataclass
class BatchOptions:
    annotate: bool = False
    plots: bool = False
    recursive: bool = False
    overwrite: bool = False
    jobs: int = 1
    fmt: str = "csv"
    codec: str = "h264"
    quiet: bool = False


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
    rel = video.relative_to(directory)
    base = out / rel.parent / rel.name
    paths = {"timeline": base.with_name(f"{rel.name}.{bo.fmt}")}
    if bo.annotate:
        paths["annotated"] = base.with_name(f"{rel.name}.annotated.mp4")
    if bo.plots:
        paths["plot"] = base.with_name(f"{rel.name}.png")
    return paths


def _up_to_date(video: Path, outputs: dict[str, Path]) -> bool:
    mtime = video.stat().st_mtime
    return all(p.exists() and p.stat().st_mtime >= mtime for p in outputs.values())


_worker_analyzer: Analyzer | None = None


def _init_worker(options: Options) -> None:
    global _worker_analyzer
    _worker_analyzer = Analyzer(options)


def _process_one(video: Path, outputs: dict[str, Path], bo: BatchOptions, skip: bool) -> dict[str, Any]:
    """Process one file (in a worker or in-process) and return its summary row; never raises for input errors."""
    from fervideo.outputs import plot_timeline, read_timeline, summarise

    row: dict[str, Any] = {"input": str(video), "status": "ok", "message": ""}
    try:
        if skip:
            row["message"] = "up to date (skipped; --overwrite to redo)"
        else:
            assert _worker_analyzer is not None
            report = process_video(
                video,
                _worker_analyzer,
                timeline=outputs["timeline"],
                fmt=bo.fmt,
                annotated=outputs.get("annotated"),
                codec=bo.codec,
            )
            row["message"] = "; ".join(report.warnings)
        df = read_timeline(outputs["timeline"])
        row.update(summarise(df))
        if "plot" in outputs and not skip:
            plot_timeline(df, outputs["plot"], title=video.name, smoothed=_worker_analyzer.options.smooth_s > 0)  # type: ignore[union-attr]
    except FervideoError as e:
        row.update(status="error", message=e.problem)
    except (OSError, ValueError, RuntimeError) as e:  # a codec or file-system failure on one file
        row.update(status="error", message=f"{type(e).__name__}: {e}")
    return row


def run_batch(directory: Path, out: Path, options: Options, bo: BatchOptions) -> int:
    """Process every video under ``directory`` into ``out``; returns the exit code (0 or 1)."""
    from tqdm import tqdm

    from fervideo.outputs import write_summary

    directory = Path(directory)
    if not directory.exists():
        raise InputError(directory, "no such directory")
    if not directory.is_dir():
        raise InputError(directory, "is a file, expected a folder of videos (use 'fervideo timeline' for one file)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(out, f"cannot create output folder ({e.strerror})") from None
    if not os.access(out, os.W_OK):
        raise OutputError(out, "output folder cannot be written (permission denied)")
    videos = find_videos(directory, bo.recursive, exclude=out.resolve())
    if not videos:
        raise InputError(directory, "no video files found" + ("" if bo.recursive else " (try --recursive)"))
    options.validate()
    jobs_list = []
    for v in videos:
        outs = outputs_for(v, directory, out, bo)
        jobs_list.append((v, outs, (not bo.overwrite) and _up_to_date(v, outs)))
    rows: list[dict[str, Any]] = []
    summary = out / "summary.csv"
    bar = tqdm(total=len(jobs_list), desc="videos", unit="file", disable=bo.quiet, dynamic_ncols=True)
    try:
        if bo.jobs <= 1:
            _init_worker(options)
            for v, outs, skip in jobs_list:
                rows.append(_process_one(v, outs, bo, skip))
                write_summary(rows, summary)
                bar.update(1)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(bo.jobs, mp_context=ctx, initializer=_init_worker, initargs=(options,)) as pool:
                futures = [pool.submit(_process_one, v, outs, bo, skip) for v, outs, skip in jobs_list]
                for fut in cf.as_completed(futures):
                    rows.append(fut.result())
                    write_summary(rows, summary)
                    bar.update(1)
    finally:
        bar.close()
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        print(f"fervideo: error: {r['input']}: {r['message']}", file=sys.stderr)
    print(f"{summary}: {len(rows) - len(failed)} ok, {len(failed)} failed of {len(rows)} videos", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else EXIT_OK
