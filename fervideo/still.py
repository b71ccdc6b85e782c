"""Still images: the same detector and classifier as video, one table row per face."""

from __future__ import annotations

import csv as csv_mod
import sys
from pathlib import Path

import cv2
import numpy as np

from fervideo.errors import EXIT_OK, EXIT_SOME_FAILED, InputError, check_interrupted
from fervideo.faces import crop_face
from fervideo.labels import EMOTIONS
from fervideo.outputs import draw_faces
from fervideo.pipeline import Analyzer, Options
from fervideo.video import atomic_output

COLUMNS = ["image", "face_id", "x", "y", "w", "h", "det_score", "emotion", "confidence", *EMOTIONS]


def analyse_images(images: list[Path], options: Options, csv_path: Path | None, annotate_dir: Path | None) -> int:
    """Print a table of faces for each image; unreadable images are reported and counted as failures."""
    analyzer = Analyzer(options)
    rows: list[list[str]] = []
    failed = 0
    for img_path in images:
        check_interrupted()
        try:
            image = _read(img_path)
        except InputError as e:
            print(f"fervideo: error: {e}", file=sys.stderr)
            failed += 1
            continue
        faces = analyzer.detect_faces(image)
        faces.sort(key=lambda f: (f.x, f.y))
        if faces:
            probs = analyzer.classifier.predict(np.stack([crop_face(image, f) for f in faces]))
            for i, (f, p) in enumerate(zip(faces, probs)):
                f.face_id, f.probs = i, p
        for f in faces:
            assert f.probs is not None
            top = int(np.argmax(f.probs))
            rows.append(
                [
                    str(img_path),
                    str(f.face_id),
                    str(f.x),
                    str(f.y),
                    str(f.w),
                    str(f.h),
                    f"{f.score:.4f}",
                    EMOTIONS[top],
                    f"{f.probs[top]:.4f}",
                    *[f"{v:.4f}" for v in f.probs],
                ]
            )
        if not faces:
            rows.append([str(img_path)] + [""] * (len(COLUMNS) - 1))
        if annotate_dir is not None:
            out = Path(annotate_dir) / f"{img_path.stem}.annotated.png"
            with atomic_output(out) as tmp:
                cv2.imwrite(str(tmp), draw_faces(image.copy(), faces))
    if rows:  # nothing readable: the error lines say it all, no empty table under them
        _print_table(rows)
    if csv_path is not None:
        with atomic_output(csv_path) as tmp, open(tmp, "w", newline="") as fh:
            w = csv_mod.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            w.writerows(rows)
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _read(path: Path) -> np.ndarray:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an image file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        from fervideo.batch import looks_like_video

        if looks_like_video(path):
            raise InputError(path, "is a video, not a still image; use 'fervideo annotate' or 'fervideo timeline'")
        raise InputError(path, "not an image OpenCV can read")
    return image


def _print_table(rows: list[list[str]]) -> None:
    short = ["image", "face", "box", "emotion", "conf", *[e[:4] for e in EMOTIONS]]
    table = [short]
    for r in rows:
        box = f"{r[2]},{r[3]},{r[4]}x{r[5]}" if r[1] else "no face"
        table.append([Path(r[0]).name, r[1], box, r[7], r[8], *r[9:]])
    widths = [max(len(row[i]) for row in table) for i in range(len(short))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
