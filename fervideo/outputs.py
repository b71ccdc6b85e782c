"""Everything users keep: the timeline (CSV, Parquet, JSON Lines), annotated frames, plots, summaries.

The timeline contract (README, 'Timeline CSV'): one row per face per analysed frame and one row with
empty face fields for an analysed frame without a face, sorted by frame then face id, probabilities
rounded to 4 decimals. Files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from fervideo.errors import UsageError
from fervideo.labels import EMOTIONS, bgr
from fervideo.types import Face, FrameResult
from fervideo.video import atomic_output

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


class TimelineWriter:
    """Stream rows to ``path`` (CSV/JSONL directly; Parquet converted from a CSV at the end).

    Use as a context manager: the final name appears only when the block completes.
    """

    def __init__(self, path: str | Path, fmt: str = "csv", smoothing: bool = False) -> None:
        if fmt not in FORMATS:
            raise UsageError(None, f"--format must be one of {', '.join(FORMATS)}")
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
        try:
            if exc_type is None and self.fmt == "parquet":
                self._fh.close()  # type: ignore[union-attr]
                _csv_to_parquet(self._tmp)
        finally:
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


# ---------------------------------------------------------------- annotated frames


def draw_faces(frame: np.ndarray, faces: Iterable[Face], smoothed: bool = False) -> np.ndarray:
    """Draw box, id, top emotion with confidence and a 7-bar chart beside each face (in place)."""
    h_img, w_img = frame.shape[:2]
    scale = max(0.4, min(1.2, h_img / 720))
    thick = max(1, round(2 * scale))
    for f in faces:
        probs = f.smoothed if (smoothed and f.smoothed is not None) else f.probs
        if probs is None:
            continue
        top = int(np.argmax(probs))
        color = bgr(EMOTIONS[top])
        cv2.rectangle(frame, (f.x, f.y), (f.x + f.w, f.y + f.h), color, thick)
        label = f"#{f.face_id} {EMOTIONS[top]} {probs[top]:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, thick)
        ty = f.y - 4 if f.y - th - base - 4 >= 0 else f.y + f.h + th + 4
        cv2.rectangle(frame, (f.x, ty - th - base), (f.x + tw + 4, ty + base // 2), color, -1)
        cv2.putText(frame, label, (f.x + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), thick, cv2.LINE_AA)
        _draw_bars(frame, f, probs, scale, w_img, h_img)
    return frame


def _draw_bars(frame: np.ndarray, f: Face, probs: np.ndarray, scale: float, w_img: int, h_img: int) -> None:
    """A 7-bar probability chart on a dark panel beside the face, if the frame has room for it."""
    bar_h = max(11, round(14 * scale))
    label_w = max(34, round(44 * scale))
    chart_w = label_w + max(50, round(70 * scale))
    chart_h = bar_h * len(EMOTIONS) + 4
    x0 = f.x + f.w + 6
    if x0 + chart_w > w_img:
        x0 = f.x - chart_w - 6
    y0 = min(f.y, h_img - chart_h)
    if x0 < 0 or y0 < 0:
        return  # no room beside this face
    panel = frame[y0 : y0 + chart_h, x0 : x0 + chart_w]
    panel[:] = (panel * 0.35).astype(np.uint8)  # darken: readable on any background
    font = max(0.33, 0.4 * scale)
    for i, (name, p) in enumerate(zip(EMOTIONS, probs)):
        y = y0 + 2 + i * bar_h
        cv2.putText(frame, name[:5], (x0 + 2, y + bar_h - 3), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
        length = int(round((chart_w - label_w - 3) * float(p)))
        if length > 0:
            cv2.rectangle(frame, (x0 + label_w, y + 2), (x0 + label_w + length, y + bar_h - 2), bgr(name), -1)


# ---------------------------------------------------------------- plots


def plot_timeline(df: Any, out_png: str | Path, title: str = "", smoothed: bool = False) -> Path:
    """Emotion probabilities over time, one panel per face id (the 4 longest-seen), no-face frames shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fervideo.labels import EMOTION_COLORS

    cols = [f"{e}_smoothed" for e in EMOTIONS] if smoothed and "angry_smoothed" in df else list(EMOTIONS)
    faces = df.dropna(subset=["face_id"])
    ids = list(faces["face_id"].value_counts().index[:4]) if len(faces) else []
    n = max(1, len(ids))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.6 * n + 0.6), sharex=True, squeeze=False)
    times = df.groupby("frame")["time_s"].first()
    has_face = df.groupby("frame")["face_id"].apply(lambda s: s.notna().any())
    t_end = float(times.max()) if len(times) else 1.0
    for ax, fid in zip(axes[:, 0], ids or [None]):
        _shade_no_face(ax, times.to_numpy(), has_face.to_numpy())
        if fid is not None:
            sub = faces[faces["face_id"] == fid].sort_values("time_s")
            for e, c in zip(EMOTIONS, cols):
                ax.plot(sub["time_s"], sub[c], color=EMOTION_COLORS[e], lw=1.4, label=e)
            ax.set_title(f"face #{int(fid)}", fontsize=9, loc="left")
        else:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, max(t_end, 1e-3))
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    from matplotlib.patches import Patch

    handles.append(Patch(color="0.85", label="no face"))
    labels.append("no face")
    fig.legend(handles, labels, loc="upper center", ncol=8, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, y=0.995, fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(out_png)


def _shade_no_face(ax: Any, times: np.ndarray, has_face: np.ndarray) -> None:
    if len(times) == 0:
        return
    dt = np.diff(times, append=times[-1] + (np.median(np.diff(times)) if len(times) > 1 else 0.04))
    start = None
    for i, hf in enumerate(has_face):
        if not hf and start is None:
            start = times[i]
        if (hf or i == len(has_face) - 1) and start is not None:
            end = times[i] + (dt[i] if not hf else 0.0)
            ax.axvspan(start, end, color="0.85", lw=0)
            start = None


# ---------------------------------------------------------------- batch summary

SUMMARY_COLUMNS = [
    "input",
    "status",
    "message",
    "frames",
    "frames_with_face",
    "face_ids",
    "dominant_emotion",
    *[f"share_{e}" for e in EMOTIONS],
]


def summarise(df: Any) -> dict[str, Any]:
    """Per-video figures for the batch summary, from its timeline."""
    frames = int(df["frame"].nunique())
    faces = df.dropna(subset=["face_id"])
    out: dict[str, Any] = {
        "frames": frames,
        "frames_with_face": int(faces["frame"].nunique()),
        "face_ids": int(faces["face_id"].nunique()),
    }
    if len(faces):
        shares = faces["emotion"].value_counts(normalize=True)
        out["dominant_emotion"] = str(shares.index[0])
        for e in EMOTIONS:
            out[f"share_{e}"] = f"{float(shares.get(e, 0.0)):.4f}"
    else:
        out["dominant_emotion"] = ""
        for e in EMOTIONS:
            out[f"share_{e}"] = ""
    return out


def write_summary(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """``summary.csv``: one row per input, sorted by input path, written atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, SUMMARY_COLUMNS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: r["input"]):
            w.writerow({k: r.get(k, "") for k in SUMMARY_COLUMNS})
    return Path(path)
