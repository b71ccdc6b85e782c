"""The batch summary: one row per input, from its timeline, rewritten atomically after every file."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from fervideo.files import atomic_output
from fervideo.labels import EMOTIONS

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
