"""Still images: the same Analyser (detector and classifier) as video, one table row per face.

The library returns rows and errors; printing them is the CLI's job.
"""

from __future__ import annotations

import csv as csv_mod
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fervideo.errors import EXIT_OK, EXIT_SOME_FAILED, InputError, check_interrupted
from fervideo.files import atomic_output
from fervideo.labels import EMOTIONS
from fervideo.outputs import draw_faces
from fervideo.pipeline import Analyser, Options
from fervideo.video import looks_like_video

COLUMNS = ["image", "face_id", "x", "y", "w", "h", "det_score", "emotion", "confidence", *EMOTIONS]


@dataclass
class ImageResults:
    """Rows in :data:`COLUMNS` order (an image without a face has one row with empty face fields)
    and the inputs that could not be read."""

    rows: list[list[str]] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.errors else EXIT_OK


def analyse_images(images: list[Path], options: Options, csv_path: Path | None = None, annotate_dir: Path | None = None) -> ImageResults:
    """Faces of each image; unreadable images are collected as errors, never fatal."""
    analyser = Analyser(options)
    out = ImageResults()
    for img_path in images:
        check_interrupted()
        try:
            image = _read(img_path)
        except InputError as e:
            out.errors.append(e)
            continue
        result = analyser.analyse_image(image)
        for f in result.faces:
            assert f.probs is not None
            top = int(np.argmax(f.probs))
            box = [str(v) for v in (f.face_id, f.x, f.y, f.w, f.h)]
            out.rows.append([str(img_path), *box, f"{f.score:.4f}", EMOTIONS[top], f"{f.probs[top]:.4f}", *[f"{v:.4f}" for v in f.probs]])
        if not result.faces:
            out.rows.append([str(img_path)] + [""] * (len(COLUMNS) - 1))
        if annotate_dir is not None:
            target = Path(annotate_dir) / f"{img_path.stem}.annotated.png"
            with atomic_output(target) as tmp:
                cv2.imwrite(str(tmp), draw_faces(image.copy(), result.faces))
    if csv_path is not None:
        with atomic_output(csv_path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv_mod.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            w.writerows(out.rows)
    return out


def _read(path: Path) -> np.ndarray:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an image file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        if looks_like_video(path):
            raise InputError(path, "is a video, not a still image; use 'fervideo annotate' or 'fervideo timeline'")
        raise InputError(path, "not an image OpenCV can read")
    return image


def format_table(rows: list[list[str]]) -> str:
    """The rows as an aligned text table (short column names, box as x,y,wxh)."""
    short = ["image", "face", "box", "emotion", "conf", *[e[:4] for e in EMOTIONS]]
    table = [short]
    for r in rows:
        box = f"{r[2]},{r[3]},{r[4]}x{r[5]}" if r[1] else "no face"
        table.append([Path(r[0]).name, r[1], box, r[7], r[8], *r[9:]])
    widths = [max(len(row[i]) for row in table) for i in range(len(short))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)
