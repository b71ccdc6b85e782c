"""Real-time view of a camera, stream or file (the seeds' webcam mode), or rows on stdout headless."""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Iterator

import cv2
import numpy as np

from fervideo.errors import EXIT_OK, InputError, UsageError, check_interrupted
from fervideo.outputs import BASE_COLUMNS, SMOOTH_COLUMNS, draw_faces, frame_rows
from fervideo.pipeline import Analyzer, Options
from fervideo.video import FrameReader


def _camera_frames(source: str, max_frames: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """Frames from a camera index or URL, timed by the stream when it can, else by the clock."""
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        raise InputError(source, "cannot open camera or stream")
    t0 = time.monotonic()
    i = 0
    try:
        while max_frames <= 0 or i < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            yield i, time.monotonic() - t0, frame
            i += 1
    finally:
        cap.release()


def run_live(source: str, options: Options, window: bool, max_frames: int = 0) -> int:
    """Analyse frames as they come, one classifier call per frame (latency over throughput)."""
    from pathlib import Path

    if Path(source).is_file():
        frames: Iterator[tuple[int, float, np.ndarray]] = iter(FrameReader(source))
    else:
        frames = _camera_frames(source, max_frames)
    analyzer = Analyzer(options)
    smoothing = options.smooth_s > 0
    writer = None
    if not window:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(BASE_COLUMNS + (SMOOTH_COLUMNS if smoothing else []))
    fps = 0.0
    last = time.perf_counter()
    n = 0
    for result in analyzer.analyse(frames, keep_images=window):
        check_interrupted()
        n += 1
        now = time.perf_counter()
        fps = 0.9 * fps + 0.1 * (1.0 / max(now - last, 1e-6)) if n > 1 else 0.0
        last = now
        if writer is not None:
            writer.writerows(frame_rows(result, smoothing))
        else:
            assert result.image is not None
            img = draw_faces(result.image, result.faces, smoothing)
            cv2.putText(img, f"{fps:.1f} fps", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2, cv2.LINE_AA)
            try:
                cv2.imshow("fervideo live (q to quit)", img)
                key = cv2.waitKey(1) & 0xFF
            except cv2.error:
                raise UsageError(None, "this OpenCV build has no GUI (headless); use --no-window, or install opencv-python") from None
            if key in (ord("q"), 27):
                break
        if max_frames > 0 and n >= max_frames:
            break
    if window:
        cv2.destroyAllWindows()
    print(f"fervideo live: {n} frames, {fps:.1f} fps", file=sys.stderr)
    return EXIT_OK
