"""The detection stage: which frames get the detector, and running it on a thread pool.

TFLite interpreters are not thread-safe, so each detection thread gets its own detector (created
once per thread; the pool lives as long as the stage). Frames come back in order whatever the
threads' timing, so everything after this stage is deterministic.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from fervideo.faces import create_detector
from fervideo.frames import Face
from fervideo.options import Options


@dataclass
class Detected:
    """A decoded frame after the detection stage."""

    index: int
    time_s: float
    image: np.ndarray
    analysed: bool  # False: skipped by --stride
    faces: list[Face] | None  # None: not a detection frame (stride or --detect-every)


class DetectStage:
    """Per-thread detectors and the pool that runs them."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._local = threading.local()
        self._local.detector = self._new_detector()  # fail fast on a bad detector model
        self._pool: ThreadPoolExecutor | None = None

    def _new_detector(self) -> Any:
        o = self.options
        return create_detector(o.detector, o.detector_model, o.detect_size)

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        """Faces of at least ``min_face`` pixels, with this thread's detector."""
        det = getattr(self._local, "detector", None)
        if det is None:
            det = self._local.detector = self._new_detector()
        return [f for f in det.detect(image) if max(f.w, f.h) >= self.options.min_face]

    def run(self, frames: Iterable[tuple[int, float, np.ndarray]], parallel: bool, max_pending: int) -> Iterator[Detected]:
        """Decide per frame whether to analyse and detect (``--stride``, ``--detect-every``), and
        detect (in threads if ``parallel``, with at most ``max_pending`` frames in flight)."""
        o = self.options

        def plan() -> Iterator[tuple[int, float, np.ndarray, bool, bool]]:
            analysed_count = 0
            for index, time_s, image in frames:
                analysed = index % o.stride == 0
                detect = analysed and analysed_count % o.detect_every == 0
                analysed_count += analysed
                yield index, time_s, image, analysed, detect

        def job(item: tuple[int, float, np.ndarray, bool, bool]) -> Detected:
            index, time_s, image, analysed, detect = item
            return Detected(index, time_s, image, analysed, self.detect_faces(image) if detect else None)

        if not parallel or o.detect_threads <= 1:
            yield from map(job, plan())
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(o.detect_threads, thread_name_prefix="fervideo-detect")
        pending: deque[Future[Detected]] = deque()
        try:
            for item in plan():
                pending.append(self._pool.submit(job, item))
                if len(pending) >= max_pending:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
