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
from fervideo.labels import EMOTIONS, bgr, text_color_on
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


def text_scale(width: int, height: int) -> float:
    """OpenCV font scale for labels on a frame: text ~1/30 of the short side, at least 12 px tall
    (readable at 640x360, where the old fixed scale drew 6 px digits that read 0.67 as 0.87)."""
    px = max(12.0, min(width, height) / 30)
    return px / 22.0  # FONT_HERSHEY_SIMPLEX capitals are ~22 px tall at scale 1


def bar_label(emotion: str, p: float) -> str:
    """The text beside a bar: the full class name and its probability."""
    return f"{emotion} {float(p):.2f}"


def draw_faces(frame: np.ndarray, faces: Iterable[Face], smoothed: bool = False) -> np.ndarray:
    """Draw box, id, top emotion with confidence and a 7-bar chart beside each face (in place)."""
    h_img, w_img = frame.shape[:2]
    font = text_scale(w_img, h_img)
    thick = max(1, round(2 * font))
    faces = list(faces)
    taken: list[tuple[int, int, int, int]] = [(f.x, f.y, f.w, f.h) for f in faces]  # charts avoid faces and each other
    for f in faces:
        probs = f.smoothed if (smoothed and f.smoothed is not None) else f.probs
        if probs is None:
            continue
        top = int(np.argmax(probs))
        color = bgr(EMOTIONS[top])
        cv2.rectangle(frame, (f.x, f.y), (f.x + f.w, f.y + f.h), color, thick)
        label = f"#{f.face_id} {EMOTIONS[top]} {probs[top]:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        ty = f.y - 4 if f.y - th - base - 4 >= 0 else f.y + f.h + th + 4
        cv2.rectangle(frame, (f.x, ty - th - base), (f.x + tw + 4, ty + base // 2), color, -1)
        cv2.putText(frame, label, (f.x + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font, text_color_on(color), thick, cv2.LINE_AA)
        _draw_bars(frame, f, probs, font, w_img, h_img, taken)
    return frame


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _draw_bars(frame: np.ndarray, f: Face, probs: np.ndarray, font: float, w_img: int, h_img: int, taken: list[tuple[int, int, int, int]]) -> None:
    """A 7-bar probability chart on a dark panel beside the face, if the frame has room for it:
    full class names and the value on each bar, white on the darkened panel."""
    small = font * 0.8
    thick = max(1, round(small * 1.5))
    (label_w, text_h), _ = cv2.getTextSize(bar_label("surprise", 1.0), cv2.FONT_HERSHEY_SIMPLEX, small, thick)
    bar_h = text_h + max(4, round(text_h * 0.5))
    bar_w = max(40, label_w)
    chart_w = label_w + bar_w + 12
    chart_h = bar_h * len(EMOTIONS) + 4
    y_side = max(0, min(f.y, h_img - chart_h))
    y_below = f.y + f.h + 6
    candidates = [(f.x + f.w + 6, y_side), (f.x - chart_w - 6, y_side), (f.x, y_below), (f.x + f.w - chart_w, y_below)]
    fits = [(x, y) for x, y in candidates if x >= 0 and y >= 0 and x + chart_w <= w_img and y + chart_h <= h_img]
    if not fits:
        return  # no room beside this face
    others = [r for r in taken if r != (f.x, f.y, f.w, f.h)]
    free = [(x, y) for x, y in fits if not any(_overlap((x, y, chart_w, chart_h), r) for r in others)]
    x0, y0 = (free or fits)[0]
    taken.append((x0, y0, chart_w, chart_h))
    panel = frame[y0 : y0 + chart_h, x0 : x0 + chart_w]
    panel[:] = (panel * 0.3).astype(np.uint8)  # darken: white text stays readable on any background
    for i, (name, p) in enumerate(zip(EMOTIONS, probs)):
        y = y0 + 2 + i * bar_h
        bx = x0 + label_w + 8
        length = int(round(bar_w * float(p)))
        if length > 0:
            cv2.rectangle(frame, (bx, y + 2), (bx + length, y + bar_h - 2), bgr(name), -1)
        baseline_y = y + bar_h - max(2, (bar_h - text_h) // 2)
        cv2.putText(frame, bar_label(name, p), (x0 + 3, baseline_y), cv2.FONT_HERSHEY_SIMPLEX, small, (255, 255, 255), thick, cv2.LINE_AA)


# ---------------------------------------------------------------- plots


MAX_PANELS = 8


def plot_panels(df: Any, max_panels: int = MAX_PANELS) -> tuple[list[int], list[int]]:
    """The face ids that get a panel (in id order) and those left out.

    Every id gets a panel up to ``max_panels``; beyond that the ids with the most rows are shown
    and the rest are named in a note on the figure, never dropped silently.
    """
    faces = df.dropna(subset=["face_id"])
    if not len(faces):
        return [], []
    counts = faces["face_id"].astype(int).value_counts()
    # Most rows first, ties by id: deterministic.
    ranked = sorted(counts.index, key=lambda i: (-int(counts[i]), int(i)))
    shown = sorted(int(i) for i in ranked[:max_panels])
    hidden = sorted(int(i) for i in ranked[max_panels:])
    return shown, hidden


def face_series(df: Any, face_id: int, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of one face's ``column``, with NaN where the face was absent, so a plotted
    line breaks at a gap instead of bridging it. A gap: consecutive rows of the face further apart
    than 1.5 analysed-frame intervals and 0.25 s (a detection missed for a frame or two is not
    worth breaking the line for; a face that left the picture is)."""
    times = np.sort(df["time_s"].drop_duplicates().to_numpy(dtype=float))
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    sub = df[df["face_id"] == face_id].sort_values("time_s")
    t = sub["time_s"].to_numpy(dtype=float)
    v = sub[column].to_numpy(dtype=float)
    if len(t) < 2 or step <= 0:
        return t, v
    breaks = np.flatnonzero(np.diff(t) > max(1.5 * step, 0.25)) + 1
    return np.insert(t, breaks, np.nan), np.insert(v, breaks, np.nan)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit // 2 - 1] + "…" + text[-(limit // 2) :]


def plot_timeline(df: Any, out_png: str | Path, title: str = "", smoothed: bool = False, max_panels: int = MAX_PANELS) -> Path:
    """Emotion probabilities over time, one panel per face id in id order, no-face frames shaded.

    Lines break where the face was absent. More than ``max_panels`` ids: the ones seen longest are
    shown and a note names the others. The title (often a long file name) sits above the plots and
    the legend below them, so neither can cover the other.
    """
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch for notebook users
    from matplotlib.patches import Patch

    from fervideo.labels import EMOTION_COLORS

    cols = [f"{e}_smoothed" for e in EMOTIONS] if smoothed and "angry_smoothed" in df else list(EMOTIONS)
    ids, hidden = plot_panels(df, max_panels)
    n = max(1, len(ids))
    fig = Figure(figsize=(10, 2.2 * n + 1.4))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)
    times = df.groupby("frame")["time_s"].first()
    has_face = df.groupby("frame")["face_id"].apply(lambda s: s.notna().any())
    t_end = float(times.max()) if len(times) else 1.0
    for ax, fid in zip(axes[:, 0], ids or [None]):
        _shade_no_face(ax, times.to_numpy(), has_face.to_numpy())
        if fid is not None:
            for e, c in zip(EMOTIONS, cols):
                t, v = face_series(df, fid, c)
                ax.plot(t, v, color=EMOTION_COLORS[e], lw=1.4, label=e)
            rows = int((df["face_id"] == fid).sum())
            ax.set_title(f"face #{fid} ({rows} frames)", fontsize=9, loc="left")
        else:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, max(t_end, 1e-3))
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)")
    handles = [Patch(color=EMOTION_COLORS[e], label=e) for e in EMOTIONS] + [Patch(color="0.85", label="no face")]
    fig.legend(handles=handles, loc="lower center", ncol=8, fontsize=8, frameon=False)
    head = _short(title) if title else ""
    if hidden:
        note = f"{len(hidden)} more face id(s) not shown (fewest frames): " + ", ".join(f"#{i}" for i in hidden[:12]) + (" …" if len(hidden) > 12 else "")
        head = f"{head}\n{note}" if head else note
    if head:
        fig.suptitle(head, x=0.01, y=0.995, ha="left", va="top", fontsize=9)
    inch = fig.get_figheight()
    fig.tight_layout(rect=(0, 0.45 / inch, 1, 1 - (0.3 + 0.18 * head.count("\n")) / inch if head else 1))
    with atomic_output(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
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
