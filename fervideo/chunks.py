"""A long file cut into chunks that run anywhere (``batch --ray --chunk-s``), merged into the
timeline a single pass writes.

Analysis splits into a per-frame half (detection, classification: frames are independent) and a
stateful half (tracker ids, smoothing). :func:`analyse_chunk` runs the first over frames
``[start, stop)`` and returns a small :class:`Chunk` (~100 bytes a face, no ids);
:func:`replay` runs the second over the chunks in file order, exactly as one pass runs it.
The classifier's output for a face does not depend on the other faces in its batch (checked: 0.0
difference), so batching differently changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fervideo.errors import UsageError
from fervideo.frames import Face, FrameResult
from fervideo.reports import ReadProblem, read_problems
from fervideo.streams import frame_source, open_reader

if TYPE_CHECKING:
    from fervideo.pipeline import Analyser


@dataclass
class Chunk:
    """Detections and probabilities of a run of analysed frames, without ids (plain lists and one
    array: what a chunk sends back over the network)."""

    index: list[int] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), np.float32))
    reached_end: bool = False
    problems: list[ReadProblem] = field(default_factory=list)  # what decoding found; only the chunk that reached the end knows

    def add_frame(self, index: int, time_s: float, faces: list[Face]) -> None:
        self.index.append(index)
        self.time_s.append(time_s)
        self.counts.append(len(faces))
        self.boxes.extend((f.x, f.y, f.w, f.h) for f in faces)
        self.scores.extend(f.score for f in faces)


def chunk_bounds(frame_count: int, fps: float, chunk_s: float) -> list[tuple[int, int | None]]:
    """Frame ranges of ``chunk_s`` seconds, the last one open-ended (the container's frame count is
    a guess: a chunk past the real end comes back empty, and the last one reads to the end)."""
    length = max(1, round(chunk_s * (fps or 30.0)))
    k = max(1, -(-frame_count // length))
    return [(i * length, (i + 1) * length if i < k - 1 else None) for i in range(k)]


def frames_to_chunk(analyser: Analyser, frames: Iterable[tuple[int, float, np.ndarray]], parallel: bool = False, max_pending: int | None = None) -> Chunk:
    """The per-frame half of :meth:`Analyser.analyse` over ``frames``. Needs ``detect_every == 1``
    (boxes carried between detections depend on the tracker)."""
    if analyser.options.detect_every != 1:
        raise UsageError(None, "chunked analysis needs --detect-every 1 (carried boxes depend on the tracker's state)")
    chunk = Chunk()
    crops: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    for d in analyser.detection.run(frames, parallel, max_pending or analyser.options.queue_size):
        if not d.analysed:
            continue
        faces = d.faces or []
        chunk.add_frame(d.index, d.time_s, faces)
        crops.extend(analyser.crop(d.image, f) for f in faces)
        if len(crops) >= analyser.flush_faces:
            probs.append(analyser.classifier.predict(np.stack(crops)))
            crops = []
    if crops:
        probs.append(analyser.classifier.predict(np.stack(crops)))
    chunk.probs = np.concatenate(probs) if probs else np.zeros((0, 7), np.float32)
    return chunk


def analyse_chunk(path: str | Path, analyser: Analyser, start: int, stop: int | None) -> Chunk:
    """Frames ``[start, stop)`` of a video through :func:`frames_to_chunk`; the frames before
    ``start`` are decoded (not analysed), so frames and timestamps are a single pass's."""
    o = analyser.options
    reader = open_reader(path)
    reader.retrieve_every = o.stride
    reader.start, reader.stop = start, stop
    stop_event = threading.Event()
    frames, queue_len = frame_source(reader, o, stop_event)
    try:
        chunk = frames_to_chunk(analyser, frames, parallel=o.threaded, max_pending=queue_len)
    finally:
        stop_event.set()
    chunk.reached_end = reader.reached_end
    if reader.reached_end:
        # The chunk that reads to the end decoded every frame before it too: it knows all the damage.
        chunk.problems = read_problems(reader)
    return chunk


def replay(analyser: Analyser, chunks: Iterable[Chunk]) -> Iterator[FrameResult]:
    """The stateful half of :meth:`Analyser.analyse` over chunks in file order: ids (tracker) and
    smoothing, exactly as one pass runs them (same order of frames and faces)."""
    tracker, smoother = analyser.new_state()
    for chunk in chunks:
        k = 0
        for index, time_s, n in zip(chunk.index, chunk.time_s, chunk.counts, strict=True):
            faces = []
            for j in range(k, k + n):
                x, y, w, h = chunk.boxes[j]
                faces.append(Face(x, y, w, h, chunk.scores[j], probs=chunk.probs[j]))
            k += n
            faces = tracker.update(faces, time_s)
            if smoother is not None:
                for f in faces:
                    f.smoothed = smoother.update(f.face_id, time_s, f.probs)  # type: ignore[arg-type]
            yield FrameResult(index, time_s, None, analysed=True, faces=faces)
