"""Run the stages over a video: decode -> detect -> track -> classify (batched) -> outputs.

Two drivers share one analysis core (:meth:`Analyzer.analyse`):

* the pipelined driver (default): a reader thread decodes into a bounded queue, the main thread
  does the stateful work (detection, tracking, batched classification, smoothing, CSV rows), and a
  writer thread draws and encodes the annotated video from a second bounded queue. OpenCV decode,
  TFLite and FFmpeg encode release the GIL, so the stages overlap on separate cores;
* the plain driver: the same loop in one thread, kept as the reference the pipelined one must
  match byte for byte (a test checks it).

A long file can also be cut into chunks (``batch --ray --chunk-s``): :func:`analyse_chunk` runs the
per-frame half (detection, classification) on one chunk anywhere, and :meth:`Analyzer.replay` runs
the stateful half (ids, smoothing) over the chunks in order, giving the single pass's timeline.

Memory is bounded by the queue sizes and one classification window, whatever the video length.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.emotions.classifier import check_device, make_classifier
from fervideo.emotions.tta import check_tta
from fervideo.errors import UsageError, check_interrupted
from fervideo.faces import CROP_MAPS, create_detector, crop_face
from fervideo.files import atomic_output
from fervideo.models import DEFAULT_PRECISION, PRECISIONS
from fervideo.outputs import TimelineWriter, draw_faces
from fervideo.tracking import EmaSmoother, IoUTracker
from fervideo.types import Face, FrameResult, VideoInfo
from fervideo.video import DAMAGE_REORDER, FrameReader, VideoWriter, open_writer

_END = object()
log = logging.getLogger(__name__)
QUEUE_BYTES = 48 * 1024 * 1024


@dataclass
class Options:
    """Analysis options shared by every command (CLI flags map one to one)."""

    detector: str = "blazeface"
    detector_model: str | None = None
    model: str | None = None
    batch_size: int = 32
    min_face: int = 20
    detect_every: int = 1
    stride: int = 1
    smooth_s: float = 0.0
    detect_size: int = 640
    threaded: bool = True
    queue_size: int = 16
    window: int = 8
    detect_threads: int = 2
    tta: str = "off"  # "off", "flip" or "full": see EmotionClassifier
    device: str = "cpu"  # "cpu" (TFLite), "gpu" (PyTorch + CUDA), "auto": see make_classifier
    align: bool = True  # roll each crop upright by the detector's eye landmarks (issue 21)
    precision: str = DEFAULT_PRECISION  # a tier's int8 or float32 TFLite file (CPU path): see fervideo.models.PRECISIONS

    def validate(self) -> None:
        for name in ("batch_size", "detect_every", "stride", "window", "queue_size", "detect_threads"):
            if getattr(self, name) < 1:
                raise UsageError(None, f"--{name.replace('_', '-')} must be at least 1")
        if not math.isfinite(self.smooth_s) or self.smooth_s < 0:
            raise UsageError(None, "--smooth must be 0 (off) or a positive number of seconds")
        check_tta(self.tta)
        check_device(self.device)
        if self.precision not in PRECISIONS:
            raise UsageError(None, f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.min_face < 0:
            raise UsageError(None, "--min-face must be 0 or more pixels")


@dataclass
class VideoReport:
    """What one run over one video produced, for the summary and the closing message."""

    info: VideoInfo
    frames: int = 0
    analysed_frames: int = 0
    frames_with_face: int = 0
    face_ids: set[int] = field(default_factory=set)
    faces_classified: int = 0
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)


class Analyzer:
    """Holds the loaded models; one per process, reused for every file of a batch.

    TFLite interpreters are not thread-safe, so each detection thread gets its own detector
    (created once per thread; the thread pool lives as long as the analyzer).
    """

    def __init__(self, options: Options) -> None:
        options.validate()
        self.options = options
        self._local = threading.local()
        self._local.detector = self._new_detector()  # fail fast on a bad detector model
        self.classifier = make_classifier(options.model, options.batch_size, options.tta, options.device, notice=log.info, precision=options.precision)
        # A GPU is fed faces from many frames per call: a classification window of 8 frames and
        # 32 faces suits the CPU, where per-face cost is flat in the batch size; on a GPU it is not.
        self.on_gpu = bool(getattr(self.classifier, "large_batches", False))
        self.window = max(options.window, 64) if self.on_gpu else options.window
        self.flush_faces = max(options.batch_size, 512) if self.on_gpu else options.batch_size
        self._pool: ThreadPoolExecutor | None = None
        self.crop_map = CROP_MAPS[options.detector]

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The model's 48x48 view of ``face``: the detector's fitted framing, rolled upright unless
        ``--no-align``."""
        return crop_face(image, face, self.crop_map, self.options.align)

    def _new_detector(self) -> Any:
        o = self.options
        return create_detector(o.detector, o.detector_model, o.detect_size)

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        """Faces of at least ``min_face`` pixels, with this thread's detector."""
        det = getattr(self._local, "detector", None)
        if det is None:
            det = self._local.detector = self._new_detector()
        return [f for f in det.detect(image) if max(f.w, f.h) >= self.options.min_face]

    def analyse_image(self, image: np.ndarray) -> FrameResult:
        """One still image through the same detector and classifier as video: faces numbered left
        to right (ids 0, 1, ...; no tracking across images), each with its probabilities."""
        faces = sorted(self.detect_faces(image), key=lambda f: (f.x, f.y))
        if faces:
            probs = self.classifier.predict(np.stack([self.crop(image, f) for f in faces]))
            for i, (f, p) in enumerate(zip(faces, probs)):
                f.face_id, f.probs = i, p
        return FrameResult(0, 0.0, image, analysed=True, faces=faces)

    def _detections(self, frames: Iterable[tuple[int, float, np.ndarray]], parallel: bool, max_pending: int) -> Iterator[_Detected]:
        """Decide per frame whether to analyse/detect, and run detection (in threads if ``parallel``,
        with at most ``max_pending`` frames in flight)."""
        o = self.options

        def plan() -> Iterator[tuple[int, float, np.ndarray, bool, bool]]:
            analysed_count = 0
            for index, time_s, image in frames:
                analysed = index % o.stride == 0
                detect = analysed and analysed_count % o.detect_every == 0
                analysed_count += analysed
                yield index, time_s, image, analysed, detect

        def job(item: tuple[int, float, np.ndarray, bool, bool]) -> _Detected:
            index, time_s, image, analysed, detect = item
            return _Detected(index, time_s, image, analysed, self.detect_faces(image) if detect else None)

        if not parallel or o.detect_threads <= 1:
            yield from map(job, plan())
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(o.detect_threads, thread_name_prefix="fervideo-detect")
        pending: deque[Future[_Detected]] = deque()
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

    def analyse(
        self,
        frames: Iterable[tuple[int, float, np.ndarray]],
        keep_images: bool = False,
        parallel: bool = False,
        max_pending: int | None = None,
    ) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per decoded frame, in order, with faces filled in.

        Frames skipped by ``stride`` come out with ``analysed=False`` and no faces (only the
        annotated video uses them). State (tracker, smoother) is per call: one video per call.
        Detection may run in threads (``parallel``); tracking, classification and smoothing run
        here, in frame order, so results do not depend on thread timing.
        """
        o = self.options
        tracker = IoUTracker()
        smoother = EmaSmoother(o.smooth_s) if o.smooth_s > 0 else None
        window: list[FrameResult] = []
        crops: list[np.ndarray] = []
        for d in self._detections(frames, parallel, max_pending or o.queue_size):
            result = FrameResult(d.index, d.time_s, d.image, analysed=d.analysed)
            if d.analysed:
                faces = tracker.update(d.faces, d.time_s) if d.faces is not None else tracker.predicted_faces(d.time_s)
                crops.extend(self.crop(d.image, f) for f in faces)
                result.faces = faces
            window.append(result)
            if len(window) >= self.window or len(crops) >= self.flush_faces:
                yield from self._flush(window, crops, smoother, keep_images)
                window, crops = [], []
        yield from self._flush(window, crops, smoother, keep_images)

    def _flush(self, window: list[FrameResult], crops: list[np.ndarray], smoother: EmaSmoother | None, keep_images: bool) -> Iterator[FrameResult]:
        probs = self.classifier.predict(np.stack(crops)) if crops else np.zeros((0, 7), np.float32)
        k = 0
        for result in window:
            for f in result.faces:
                f.probs = probs[k]
                k += 1
                if smoother is not None:
                    f.smoothed = smoother.update(f.face_id, result.time_s, f.probs)
            if not keep_images:
                result.image = None
            yield result

    def detected_and_classified(self, frames: Iterable[tuple[int, float, np.ndarray]], parallel: bool = False, max_pending: int | None = None) -> Chunk:
        """The per-frame half of :meth:`analyse` (detection and classification, no ids): frames are
        independent here, so a long file can be split into chunks that run anywhere and
        :meth:`replay` gives the timeline one pass gives. Needs ``detect_every == 1`` (carried boxes
        depend on the tracker). The classifier's output for a face does not depend on the other
        faces in its batch (checked: 0.0 difference), so batching differently changes nothing."""
        if self.options.detect_every != 1:
            raise UsageError(None, "chunked analysis needs --detect-every 1 (carried boxes depend on the tracker's state)")
        chunk = Chunk()
        crops: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        for d in self._detections(frames, parallel, max_pending or self.options.queue_size):
            if not d.analysed:
                continue
            faces = d.faces or []
            chunk.add_frame(d.index, d.time_s, faces)
            crops.extend(self.crop(d.image, f) for f in faces)
            if len(crops) >= self.flush_faces:
                probs.append(self.classifier.predict(np.stack(crops)))
                crops = []
        if crops:
            probs.append(self.classifier.predict(np.stack(crops)))
        chunk.probs = np.concatenate(probs) if probs else np.zeros((0, 7), np.float32)
        return chunk

    def replay(self, chunks: Iterable[Chunk]) -> Iterator[FrameResult]:
        """The stateful half of :meth:`analyse` over chunks in file order: ids (tracker) and
        smoothing, exactly as one pass runs them (same order of frames and faces)."""
        tracker = IoUTracker()
        smoother = EmaSmoother(self.options.smooth_s) if self.options.smooth_s > 0 else None
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

    def close(self) -> None:
        """Stop the detection threads (also done at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass
class _Detected:
    index: int
    time_s: float
    image: np.ndarray
    analysed: bool
    faces: list[Face] | None  # None: not a detection frame (stride or --detect-every)


@dataclass
class Chunk:
    """Detections and probabilities of a run of analysed frames, without ids: what a chunk of a long
    file sends back (plain lists and one array, small: ~100 bytes a face)."""

    index: list[int] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), np.float32))
    warning: str | None = None  # the short-read warning, from the chunk that reached the end
    reached_end: bool = False
    error: str | None = None  # the input's problem, as a batch row gives it

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


def analyse_chunk(path: str | Path, analyzer: Analyzer, start: int, stop: int | None) -> Chunk:
    """Frames ``[start, stop)`` of a video through :meth:`Analyzer.detected_and_classified`; the
    frames before ``start`` are decoded (not analysed), so frames and timestamps are a single pass's."""
    o = analyzer.options
    reader = open_reader(path)
    reader.retrieve_every = o.stride
    reader.start, reader.stop = start, stop
    stop_event = threading.Event()
    frames, queue_len = _frame_source(reader, o, stop_event)
    try:
        chunk = analyzer.detected_and_classified(frames, parallel=o.threaded, max_pending=queue_len)
    finally:
        stop_event.set()
    chunk.reached_end = reader.reached_end
    if reader.reached_end:
        # The chunk that reads to the end decoded every frame before it too: it knows all the damage.
        found = [w for w in (damaged_warning(path, reader), short_read_warning(path, reader)) if w is not None]
        chunk.warning = "; ".join(found) or None
    return chunk


def _frame_source(reader: FrameReader, o: Options, stop: threading.Event) -> tuple[Iterable[tuple[int, float, np.ndarray]], int]:
    """The reader's frames (from a reader thread when ``o.threaded``) and the queue length to use:
    queues hold at most ~48 MB of frames each, 16 frames at 720p, 2 at 4K."""
    frame_bytes = max(1, reader.info.width * reader.info.height * 3)
    queue_len = max(2, min(o.queue_size, QUEUE_BYTES // frame_bytes))
    return (_threaded(reader, queue_len, stop) if o.threaded else reader), queue_len


def _threaded(source: Iterable[Any], maxsize: int, stop: threading.Event) -> Iterator[Any]:
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


class _WriterThread:
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


def open_reader(path: str | Path) -> FrameReader:
    """The reader as the pipeline uses it: up to 720p FFmpeg decodes on one thread, because the
    detector and classifier threads need the other core more than decoding does (see FrameReader)."""
    reader = FrameReader(path)
    if reader.info.width * reader.info.height <= 1280 * 720:
        reader.decode_threads = 1
    return reader


def process_video(
    path: str | Path,
    analyzer: Analyzer,
    timeline: str | Path | None = None,
    fmt: str = "csv",
    annotated: str | Path | None = None,
    codec: str = "h264",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[VideoInfo], None] | None = None,
) -> VideoReport:
    """Analyse one video, writing the timeline and/or annotated video atomically.

    Outputs appear under their final names only when everything succeeded; an error or an
    interrupt (Ctrl-C, SIGTERM raised as KeyboardInterrupt/SystemExit) leaves none behind.
    ``on_start`` receives the probed :class:`VideoInfo` before the first frame (e.g. to size a
    progress bar without probing the file a second time).
    """
    o = analyzer.options
    reader = open_reader(path)
    if annotated is None:
        reader.retrieve_every = o.stride  # frames skipped by --stride are decoded, not converted
    if on_start is not None:
        on_start(reader.info)
    report = VideoReport(info=reader.info)
    smoothing = o.smooth_s > 0
    stop = threading.Event()
    frames, queue_len = _frame_source(reader, o, stop)
    vw_notes: list[str] = []
    with _outputs(timeline, fmt, smoothing, annotated, reader, codec) as (tw, vw):
        if vw is not None:
            vw_notes = vw.notes  # filled while writing and at close (the block's end)
        writer_thread = _WriterThread(vw, queue_len, smoothing) if (vw is not None and o.threaded) else None
        last_faces: list[Face] = []
        try:
            for result in analyzer.analyse(frames, keep_images=vw is not None, parallel=o.threaded, max_pending=queue_len):
                check_interrupted()
                report.frames += 1
                if result.analysed:
                    report.analysed_frames += 1
                    last_faces = result.faces
                    if result.faces:
                        report.frames_with_face += 1
                        report.faces_classified += len(result.faces)
                        report.face_ids.update(f.face_id for f in result.faces)
                    if tw is not None:
                        tw.write(result)
                if vw is not None and result.image is not None:
                    if writer_thread is not None:
                        writer_thread.put(result.image, last_faces, result.time_s)
                    else:
                        vw.write(draw_faces(result.image, last_faces, smoothing), result.time_s)
                    result.image = None
                if progress is not None:
                    progress(1)
        finally:
            stop.set()
            if writer_thread is not None:
                writer_thread.finish()
    if vw_notes:
        report.warnings += [f"{annotated}: {note}" for note in vw_notes]
    damaged = damaged_warning(path, reader)
    if damaged is not None:
        report.warnings.append(damaged)
    warning = short_read_warning(path, reader)
    if warning is not None:
        report.truncated = reader.short_read() == "truncated"
        report.warnings.append(warning)
    return report


def damaged_warning(path: str | Path, reader: FrameReader) -> str | None:
    """What to tell the user when decoding went past damaged data: how many frames, which, when.

    A truncated file's last packet is cut too, and the decoder still hands out the frames it held:
    a stretch lost in the last few frames of a truncated file is the truncation (said by
    :func:`short_read_warning`), not damage decoding went past."""
    lost = reader.lost
    if reader.short_read() == "truncated":
        lost = [s for s in lost if s[0] + s[1] < reader.frames_read - DAMAGE_REORDER]
    if not lost:
        return None
    spans = ", ".join(f"frames {a}-{a + n - 1} ({t0:.2f}-{t1:.2f} s)" if n > 1 else f"frame {a} ({t0:.2f} s)" for a, n, t0, t1 in lost[:5])
    more = f" and {len(lost) - 5} more stretches" if len(lost) > 5 else ""
    return (
        f"{path}: damaged data: {sum(n for _, n, _, _ in lost)} frames could not be decoded and are missing from the outputs: {spans}{more}. "
        "Decoding went on after them, and frames keep the source's numbers, so the timeline shows the gap"
    )


def short_read_warning(path: str | Path, reader: FrameReader) -> str | None:
    """What to tell the user when a stream holds fewer frames than its container says."""
    short = reader.short_read()
    if short == "truncated":
        return (
            f"{path}: video ends early: {reader.frames_read - reader.frames_lost} frames decoded, container says "
            f"{reader.info.frame_count_container} (truncated or damaged file); outputs cover the decoded frames"
        )
    if short == "miscount":
        return (
            f"{path}: container says {reader.info.frame_count_container} frames but the stream holds {reader.frames_read - reader.frames_lost}, "
            "decoded to its end (the container's count is off; nothing is missing)"
        )
    return None


@contextmanager
def _outputs(
    timeline: str | Path | None, fmt: str, smoothing: bool, annotated: str | Path | None, reader: FrameReader, codec: str
) -> Iterator[tuple[TimelineWriter | None, VideoWriter | None]]:
    """Open the requested outputs under temporary names; they are renamed together on success."""
    with ExitStack() as stack:
        tw = stack.enter_context(TimelineWriter(timeline, fmt, smoothing)) if timeline is not None else None
        vw = None
        if annotated is not None:
            tmp = stack.enter_context(atomic_output(annotated))
            info = reader.info
            vw = stack.enter_context(open_writer(tmp, info.width, info.height, info.fps, codec=codec, audio_from=reader.path))
            if vw.notice:
                log.warning("%s", vw.notice)
        yield tw, vw
