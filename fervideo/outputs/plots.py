"""Timeline plots: one panel per face id, gaps left as gaps, no-face frames shaded.

Drawn with matplotlib's object API (``Figure``), never pyplot, so a notebook user's backend is left
alone and no window opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fervideo.files import atomic_output
from fervideo.labels import EMOTIONS

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
