"""Real-time view of a camera, stream or file (the seeds' webcam mode), or rows on stdout headless.

The window: the install carries OpenCV's *headless* build (no GUI; the full ``opencv-python``
beside it clashes, both own ``cv2``), so the window is drawn with pygame (SDL 2), the ``live``
extra: ``pip install "fervideo[live]"``. An OpenCV build that does have a GUI is used when present.

A file plays at its own speed (frames shown at their timestamps) unless ``--fast``; a camera or
stream runs as fast as frames arrive.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from fervideo.errors import InputError, MissingExtraError, check_interrupted
from fervideo.outputs import BASE_COLUMNS, SMOOTH_COLUMNS, draw_faces, frame_rows
from fervideo.pipeline import Analyser, Options
from fervideo.video import FrameReader, open_capture

TITLE = "fervideo live (q to quit)"


def _camera_frames(source: str, max_frames: int) -> Iterator[tuple[int, float, np.ndarray]]:
    """Frames from a camera index or URL, timed by the clock."""
    cap = open_capture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        what = "camera" if source.isdigit() else "stream"
        raise InputError(source, f"cannot open {what}")
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


def open_source(source: str, max_frames: int = 0) -> tuple[Iterator[tuple[int, float, np.ndarray]], bool]:
    """Frames of ``source`` and whether it is a file (to be paced). A name that is neither a camera
    index, a URL nor an existing file is a missing file, not a camera that failed to open."""
    if source.isdigit():
        return _camera_frames(source, max_frames), False
    if "://" in source:
        return _camera_frames(source, max_frames), False
    if not Path(source).exists():
        raise InputError(source, "no such file (and not a camera index or stream URL)")
    return iter(FrameReader(source)), True


def paced(
    frames: Iterable[Any],
    time_of: Callable[[Any], float],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Any]:
    """Yield items no earlier than their timestamps say (relative to the first), so a file plays
    in real time; an item already late is yielded at once (playback never waits to catch up)."""
    start_clock = start_t = None
    for item in frames:
        t = time_of(item)
        if start_clock is None:
            start_clock, start_t = clock(), t
        else:
            wait = (t - start_t) - (clock() - start_clock)
            if wait > 0:
                sleep(wait)
        yield item


class _Window:
    """A window that shows BGR frames and reports a quit key: OpenCV's GUI where the build has
    one, else pygame. Raises MissingExtraError when neither can open."""

    def __init__(self) -> None:
        self._pg: Any = None
        try:
            cv2.namedWindow(TITLE)
            self._cv = True
            return
        except cv2.error:
            self._cv = False
        try:
            os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
            import pygame
        except ImportError:
            raise MissingExtraError(
                None, "the live window needs pygame (this OpenCV build has no GUI): pip install 'fervideo[live]', or use --no-window"
            ) from None
        try:
            pygame.display.init()
        except pygame.error as e:
            raise MissingExtraError(None, f"cannot open a window ({e}); use --no-window on a machine without a display") from None
        pygame.display.set_caption(TITLE)
        self._pg = pygame
        self._screen: Any = None

    def show(self, bgr: np.ndarray) -> bool:
        """Show a frame; False when the user asked to quit (q, Esc, closing the window)."""
        if self._cv:
            cv2.imshow(TITLE, bgr)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        pg = self._pg
        h, w = bgr.shape[:2]
        if self._screen is None or self._screen.get_size() != (w, h):
            self._screen = pg.display.set_mode((w, h))
        surface = pg.image.frombuffer(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tobytes(), (w, h), "RGB")
        self._screen.blit(surface, (0, 0))
        pg.display.flip()
        for event in pg.event.get():
            if event.type == pg.QUIT or (event.type == pg.KEYDOWN and event.key in (pg.K_q, pg.K_ESCAPE)):
                return False
        return True

    def close(self) -> None:
        if self._cv:
            cv2.destroyAllWindows()
        elif self._pg is not None:
            self._pg.display.quit()


@dataclass
class LiveResult:
    frames: int
    fps: float


def run_live(source: str, options: Options, show: bool, max_frames: int = 0, fast: bool = False, rows_out: IO[str] | None = None) -> LiveResult:
    """Analyse frames as they come, one classifier call per frame (latency over throughput:
    ``batch_frames`` 1, whatever ``options`` say). With ``show``, a window; without, timeline rows
    (the CSV contract) go to ``rows_out``."""
    frames, is_file = open_source(source, max_frames)
    if is_file and not fast:
        frames = paced(frames, lambda item: item[1])
    analyser = Analyser(dataclasses.replace(options, batch_frames=1, batch_size=8))
    view = _Window() if show else None
    smoothing = options.smoothing
    writer = None
    if view is None:
        writer = csv.writer(rows_out or sys.stdout, lineterminator="\n")
        writer.writerow(BASE_COLUMNS + (SMOOTH_COLUMNS if smoothing else []))
    fps = 0.0
    last = time.perf_counter()
    n = 0
    try:
        for result in analyser.analyse(frames, keep_images=view is not None):
            check_interrupted()
            n += 1
            now = time.perf_counter()
            fps = 0.9 * fps + 0.1 * (1.0 / max(now - last, 1e-6)) if n > 1 else 0.0
            last = now
            if writer is not None:
                writer.writerows(frame_rows(result, smoothing))
            else:
                assert result.image is not None and view is not None
                img = draw_faces(result.image, result.faces, smoothing)
                cv2.putText(img, f"{fps:.1f} fps", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 0), 2, cv2.LINE_AA)
                if not view.show(img):
                    break
            if max_frames > 0 and n >= max_frames:
                break
    finally:
        if view is not None:
            view.close()
    return LiveResult(n, fps)
