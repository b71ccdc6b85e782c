"""The timeline: CSV, Parquet and JSON Lines with one contract.

One row per face per analysed frame and one row with empty face fields for an analysed frame
without a face, sorted by frame then face id, probabilities rounded to 4 decimals, so the same input
and options give a byte-identical file. Written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np

from fervideo.errors import MissingExtraError, UsageError
from fervideo.files import atomic_output
from fervideo.frames import FrameResult
from fervideo.labels import EMOTIONS

BASE_COLUMNS = ["frame", "time_s", "face_id", "x", "y", "w", "h", "det_score", "emotion", "confidence", *EMOTIONS]
SMOOTH_COLUMNS = ["emotion_smoothed", *[f"{e}_smoothed" for e in EMOTIONS]]
FORMATS = ("csv", "parquet", "jsonl")


def columns(smoothing: bool) -> list[str]:
    return BASE_COLUMNS + (SMOOTH_COLUMNS if smoothing else [])


def _f4(v: float) -> str:
    return f"{float(v):.4f}"


def frame_rows(result: FrameResult, smoothing: bool) -> list[list[str]]:
    """The timeline rows of one frame, as strings exactly as they go into the CSV."""
    head = [str(result.index), f"{result.time_s:.6f}"]
    n_extra = len(SMOOTH_COLUMNS) if smoothing else 0
    if not result.faces:
        return [head + [""] * (len(BASE_COLUMNS) - 2 + n_extra)]
    rows = []
    for f in sorted(result.faces, key=lambda f: f.face_id):
        probs = f.probs if f.probs is not None else np.zeros(len(EMOTIONS), np.float32)
        top = int(np.argmax(probs))
        row = head + [str(f.face_id), str(f.x), str(f.y), str(f.w), str(f.h), _f4(f.score), EMOTIONS[top], _f4(probs[top])]
        row += [_f4(p) for p in probs]
        if smoothing:
            sm = f.smoothed if f.smoothed is not None else probs
            row += [EMOTIONS[int(np.argmax(sm))]] + [_f4(p) for p in sm]
        rows.append(row)
    return rows


def check_format(fmt: str) -> None:
    """Refuse an unknown format, or Parquet without pyarrow (the parquet extra), before any work."""
    if fmt not in FORMATS:
        raise UsageError(None, f"--format must be one of {', '.join(FORMATS)}")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise MissingExtraError(None, "--format parquet needs pyarrow: pip install 'fervideo[parquet]'")


class TimelineWriter:
    """Stream rows to ``path`` (CSV/JSONL directly; Parquet converted from a CSV at the end).

    Use as a context manager: the final name appears only when the block completes.
    """

    def __init__(self, path: str | Path, fmt: str = "csv", smoothing: bool = False) -> None:
        check_format(fmt)
        self.path, self.fmt, self.smoothing = Path(path), fmt, smoothing
        self.columns = columns(smoothing)
        self._stack = ExitStack()
        self._fh: IO[str] | None = None
        self.rows = 0

    def __enter__(self) -> TimelineWriter:
        tmp = self._stack.enter_context(atomic_output(self.path, suffix=".csv" if self.fmt == "parquet" else None))
        self._tmp = tmp
        self._fh = self._stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
        if self.fmt != "jsonl":
            self._csv = csv.writer(self._fh, lineterminator="\n")
            self._csv.writerow(self.columns)
        return self

    def write(self, result: FrameResult) -> None:
        for row in frame_rows(result, self.smoothing):
            self.rows += 1
            if self.fmt == "jsonl":
                self._fh.write(json.dumps(_typed(dict(zip(self.columns, row)))) + "\n")  # type: ignore[union-attr]
            else:
                self._csv.writerow(row)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and self.fmt == "parquet":
            try:
                self._fh.close()  # type: ignore[union-attr]
                _csv_to_parquet(self._tmp)
            except BaseException as e:
                # The conversion failed (a full disk): the temporary file must see the error, not
                # a clean exit, or it would be renamed into place half written.
                if not self._stack.__exit__(type(e), e, e.__traceback__):
                    raise
                return
        self._stack.__exit__(exc_type, exc, tb)  # type: ignore[arg-type]


def _typed(d: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if v == "":
            out[k] = None
        elif k in ("frame", "face_id", "x", "y", "w", "h"):
            out[k] = int(v)
        elif k.startswith("emotion"):
            out[k] = v
        else:
            out[k] = float(v)
    return out


def _csv_to_parquet(tmp_csv: Path) -> None:
    """Rewrite the finished CSV in place as Parquet (same columns, nullable ints for face fields)."""

    df = read_timeline(tmp_csv)
    df.to_parquet(tmp_csv, index=False)


def read_timeline(path: str | Path) -> Any:
    """Load a timeline (any format) as a pandas DataFrame with nullable integer face fields."""
    import pandas as pd

    p = Path(path)
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    if p.suffix == ".jsonl":
        return pd.read_json(p, lines=True, dtype=False)
    df = pd.read_csv(p, dtype={"emotion": "string"})
    for c in ("face_id", "x", "y", "w", "h"):
        if c in df:
            df[c] = df[c].astype("Int64")
    return df
