"""Run the stages over a video: decode -> detect -> track -> classify (batched) -> outputs.

:class:`Analyser` holds the loaded models and runs the analysis core (:meth:`Analyser.analyse`);
:func:`process_video` drives it over one file, in one of two ways:

* pipelined (default): a reader thread decodes into a bounded queue, the main thread does the
  stateful work (detection scheduling, tracking, batched classification, smoothing, timeline rows),
  and a writer thread draws and encodes the annotated video (:mod:`fervideo.streams`);
* plain (``--plain``): the same loop in one thread, kept as the reference the pipelined one must
  match byte for byte (a test checks it).

Detection runs in :mod:`fervideo.detect_stage` (its own thread pool); a long file can be cut into
chunks analysed anywhere and merged into this loop's timeline (:mod:`fervideo.chunks`). What the
run found besides rows (lost frames, a short stream) comes back as data in a
:class:`~fervideo.reports.VideoReport`. Memory is bounded by the queue sizes and one
classification batch, whatever the video length.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from fervideo.detect_stage import DetectStage
from fervideo.emotions.classifier import make_classifier
from fervideo.errors import check_interrupted
from fervideo.faces import CROP_MAPS, crop_face
from fervideo.files import atomic_output
from fervideo.frames import Face, FrameResult, VideoInfo
from fervideo.options import Options
from fervideo.outputs import TimelineWriter, draw_faces
from fervideo.reports import VideoReport, read_problems
from fervideo.streams import WriterThread, frame_source, open_reader
from fervideo.tracking import EmaSmoother, IoUTracker
from fervideo.video import FrameReader, VideoWriter, open_writer

__all__ = ["Analyser", "Options", "VideoReport", "process_video"]
log = logging.getLogger(__name__)


class Analyser:
    """Holds the loaded models (detectors, classifier); one per process, reused for every file of a batch."""

    def __init__(self, options: Options) -> None:
        options.validate()
        self.options = options
        self.detection = DetectStage(options)
        self.classifier = make_classifier(options.model, options.batch_size, options.tta, options.device, notice=log.info, precision=options.precision)
        # A GPU is fed faces from many frames per call: 8 frames and 32 faces per call suit the
        # CPU, where per-face cost is flat in the batch size; on a GPU it is not.
        self.on_gpu = bool(getattr(self.classifier, "large_batches", False))
        self.batch_frames = max(options.batch_frames, 64) if self.on_gpu else options.batch_frames
        self.flush_faces = max(options.batch_size, 512) if self.on_gpu else options.batch_size
        self.crop_map = CROP_MAPS[options.detector]

    def crop(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The model's 48x48 view of ``face``: the detector's fitted framing, rolled upright unless
        ``--no-align``."""
        return crop_face(image, face, self.crop_map, self.options.align)

    def detect_faces(self, image: np.ndarray) -> list[Face]:
        return self.detection.detect_faces(image)

    def new_state(self) -> tuple[IoUTracker, EmaSmoother | None]:
        """A fresh tracker and smoother: the per-video state (one video per call)."""
        return IoUTracker(), (EmaSmoother(self.options.smooth) if self.options.smoothing else None)

    def analyse_image(self, image: np.ndarray) -> FrameResult:
        """One still image through the same detector and classifier as video: faces numbered left
        to right (ids 0, 1, ...; no tracking across images), each with its probabilities."""
        faces = sorted(self.detect_faces(image), key=lambda f: (f.x, f.y))
        if faces:
            probs = self.classifier.predict(np.stack([self.crop(image, f) for f in faces]))
            for i, (f, p) in enumerate(zip(faces, probs)):
                f.face_id, f.probs = i, p
        return FrameResult(0, 0.0, image, analysed=True, faces=faces)

    def analyse(
        self,
        frames: Iterable[tuple[int, float, np.ndarray]],
        keep_images: bool = False,
        parallel: bool = False,
        max_pending: int | None = None,
    ) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per decoded frame, in order, with faces filled in.

        Frames skipped by ``stride`` come out with ``analysed=False`` and no faces (only the
        annotated video uses them). Detection may run in threads (``parallel``); tracking,
        classification and smoothing run here, in frame order, so results do not depend on
        thread timing.
        """
        tracker, smoother = self.new_state()
        pending: list[FrameResult] = []
        crops: list[np.ndarray] = []
        for d in self.detection.run(frames, parallel, max_pending or self.options.queue_size):
            result = FrameResult(d.index, d.time_s, d.image, analysed=d.analysed)
            if d.analysed:
                faces = tracker.update(d.faces, d.time_s) if d.faces is not None else tracker.predicted_faces(d.time_s)
                crops.extend(self.crop(d.image, f) for f in faces)
                result.faces = faces
            pending.append(result)
            if len(pending) >= self.batch_frames or len(crops) >= self.flush_faces:
                yield from self._classify(pending, crops, smoother, keep_images)
                pending, crops = [], []
        yield from self._classify(pending, crops, smoother, keep_images)

    def _classify(self, results: list[FrameResult], crops: list[np.ndarray], smoother: EmaSmoother | None, keep_images: bool) -> Iterator[FrameResult]:
        """Classify the gathered faces of ``results`` in one call and hand the frames on."""
        probs = self.classifier.predict(np.stack(crops)) if crops else np.zeros((0, 7), np.float32)
        k = 0
        for result in results:
            for f in result.faces:
                f.probs = probs[k]
                k += 1
                if smoother is not None:
                    f.smoothed = smoother.update(f.face_id, result.time_s, f.probs)
            if not keep_images:
                result.image = None
            yield result

    def close(self) -> None:
        """Stop the detection threads (also done at interpreter exit)."""
        self.detection.close()


def process_video(
    path: str | Path,
    analyser: Analyser,
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
    o = analyser.options
    reader = open_reader(path)
    if annotated is None:
        reader.retrieve_every = o.stride  # frames skipped by --stride are decoded, not converted
    if on_start is not None:
        on_start(reader.info)
    report = VideoReport(info=reader.info)
    smoothing = o.smoothing
    stop = threading.Event()
    frames, queue_len = frame_source(reader, o, stop)
    vw_notes: list[str] = []
    with _outputs(timeline, fmt, smoothing, annotated, reader, codec) as (tw, vw):
        if vw is not None:
            vw_notes = vw.notes  # filled while writing and at close (the block's end)
        writer_thread = WriterThread(vw, queue_len, smoothing) if (vw is not None and o.threaded) else None
        last_faces: list[Face] = []
        try:
            for result in analyser.analyse(frames, keep_images=vw is not None, parallel=o.threaded, max_pending=queue_len):
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
    report.output_notes = [f"{annotated}: {note}" for note in vw_notes]
    report.problems = read_problems(reader)
    return report


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
