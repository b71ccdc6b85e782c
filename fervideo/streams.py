"""The threads between the stages: a reader thread that decodes ahead into a bounded queue, and a
writer thread that draws and encodes the annotated video from another.

OpenCV decode, TFLite and FFmpeg encode release the GIL, so the stages overlap on separate cores.
Both threads hand their errors to the main thread, which re-raises them: a failure in either is the
caller's exception, never a hang or a silent stop. Queues hold at most ~48 MB of frames each, so
memory stays flat in the video's length.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.frames import Face
from fervideo.options import Options
from fervideo.outputs import draw_faces
from fervideo.video import FrameReader, VideoWriter

_END = object()
QUEUE_BYTES = 48 * 1024 * 1024


def open_reader(path: str | Path) -> FrameReader:
    """The reader as the pipeline uses it: up to 720p FFmpeg decodes on one thread, because the
    detector and classifier threads need the other core more than decoding does (see FrameReader)."""
    reader = FrameReader(path)
    if reader.info.width * reader.info.height <= 1280 * 720:
        reader.decode_threads = 1
    return reader


def frame_source(reader: FrameReader, o: Options, stop: threading.Event) -> tuple[Iterable[tuple[int, float, np.ndarray]], int]:
    """The reader's frames (from a reader thread when ``o.threaded``) and the queue length to use:
    queues hold at most ~48 MB of frames each, 16 frames at 720p, 2 at 4K."""
    frame_bytes = max(1, reader.info.width * reader.info.height * 3)
    queue_len = max(2, min(o.queue_size, QUEUE_BYTES // frame_bytes))
    return (threaded(reader, queue_len, stop) if o.threaded else reader), queue_len


def threaded(source: Iterable[Any], maxsize: int, stop: threading.Event) -> Iterator[Any]:
    """Run ``source`` in a reader thread feeding a bounded queue; re-raise its errors here."""
    q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    errors: list[BaseException] = []

    def put(item: Any) -> bool:
        """Block until there is room, unless the consumer has stopped; False if it has."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - forwarded to the consumer and re-raised there
            errors.append(e)
        finally:
            put(_END)

    t = threading.Thread(target=produce, name="fervideo-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            yield item
    finally:
        stop.set()
        t.join(timeout=5)
    if errors:
        raise errors[0]


class WriterThread:
    """Draws and encodes annotated frames off the main thread, through a bounded queue."""

    def __init__(self, writer: VideoWriter, maxsize: int, smoothed: bool) -> None:
        self.writer, self.smoothed = writer, smoothed
        self.q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="fervideo-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is not None:
                continue
            try:
                image, faces, time_s = item
                self.writer.write(draw_faces(image, faces, self.smoothed), time_s)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                self.error = e

    def put(self, image: np.ndarray, faces: list[Face], time_s: float) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((image, faces, time_s))

    def finish(self) -> None:
        self.q.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error
