"""Read frames with their container timestamps, probe videos, and write annotated video.

Reading uses OpenCV: it decodes 720p at ~700 fps here and applies rotation metadata, so frames come
out in the orientation a player shows. Timestamps come from the stream (``CAP_PROP_POS_MSEC``), not
``index / fps``, so variable-frame-rate files get true times. The container's frame count is only
a hint: the reader counts what actually decodes.

Writing prefers PyAV (its wheel bundles FFmpeg with libx264: H.264 that every player opens, and the
input's audio copied packet for packet); without PyAV it falls back to OpenCV's ``mp4v``.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fervideo.errors import OutputError, VideoOpenError
from fervideo.files import check_input_file
from fervideo.frames import VideoInfo

# Reads that may fail in a row inside a stream before it counts as ended: a damaged stretch fails
# about one read per damaged packet (60 KB of garbage in an H.264 .mp4: ~30), while at the real end
# a failed read costs microseconds.
DAMAGED_READS = 300
DAMAGE_REORDER = 16  # frames after a damaged stretch whose timestamp gaps count as lost frames

VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp"}


# Container magic bytes (offset, bytes): how a video with no known extension is recognised.
_MAGIC = (
    (4, b"ftyp"),  # MP4 / MOV / 3GP
    (0, b"RIFF"),  # AVI
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"\x00\x00\x01\xba"),  # MPEG-PS
    (0, b"FLV"),
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
)


def looks_like_video(path: Path) -> bool:
    """Known extension, or container magic bytes in the header (MPEG-TS: sync byte every 188)."""
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(400)
    except OSError:
        return False
    return video_header(head)


def video_header(head: bytes) -> bool:
    """Whether a file's first bytes are a video container's (batch reads them for files without a known extension)."""
    if any(head[o : o + len(m)] == m for o, m in _MAGIC):
        return True
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47


def open_capture(source: str | int, params: list[int] | None = None) -> cv2.VideoCapture:
    """``cv2.VideoCapture`` with FFmpeg's own log lines ("moov atom not found") kept off stderr:
    they would break the one-line error contract, and the tool reports such problems itself.
    OpenCV reads the setting when it opens its first file, so it is set here, not at import (an
    application importing fervideo keeps its environment until it actually opens a video)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if params is not None:
        return cv2.VideoCapture(source, cv2.CAP_ANY, params)
    return cv2.VideoCapture(source)


def _fps_fraction(value: float | Fraction | None) -> Fraction:
    if value is None:
        return Fraction(0)
    if isinstance(value, Fraction):
        return value
    if not np.isfinite(value) or value <= 0:
        return Fraction(0)
    # 29.97 -> 30000/1001, 23.976 -> 24000/1001, 25 -> 25
    return Fraction(value).limit_denominator(1001)


def probe(path: str | Path, count_frames: bool = False) -> VideoInfo:
    """Describe a video as the tool will read it (size after rotation, exact fps, streams)."""
    p = check_input_file(path)
    cap = open_capture(str(p))
    try:
        if not cap.isOpened():
            raise VideoOpenError(p, "not a video OpenCV can open (unknown container or codec)")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoOpenError(p, "no frame could be decoded (not a video, or corrupt)")
        height, width = frame.shape[:2]
        info = VideoInfo(
            path=str(p),
            width=width,
            height=height,
            fps=_fps_fraction(cap.get(cv2.CAP_PROP_FPS)),
            frame_count_container=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
            rotation=int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360,
        )
        if count_frames:
            n = 1
            while cap.grab():
                n += 1
            info.frame_count_decoded = n
    finally:
        cap.release()
    _probe_av(p, info)
    if info.container.endswith("_pipe") or info.container == "image2":
        raise VideoOpenError(p, f"is a still image ({info.container.removesuffix('_pipe')}), not a video; use 'fervideo image'")
    return info


def _probe_av(p: Path, info: VideoInfo) -> None:
    try:
        import av
    except ImportError:  # pragma: no cover - PyAV is a dependency; OpenCV's view still stands
        return
    try:
        with av.open(str(p)) as c:
            info.container = c.format.name
            v = c.streams.video[0] if c.streams.video else None
            if v is not None:
                info.codec = v.codec_context.name
                rate = v.average_rate or v.guessed_rate
                if rate:
                    info.fps = Fraction(rate.numerator, rate.denominator)
            if c.duration:
                info.duration_s = c.duration / 1_000_000
            info.has_audio = bool(c.streams.audio)
    except (av.FFmpegError, IndexError, ValueError):
        pass


class FrameReader:
    """Iterate ``(index, time_s, bgr_frame)`` over every frame that decodes.

    A video that stops decoding early (truncated download) ends the iteration; ``truncated`` then
    says whether fewer frames came out than the container promised, so callers can warn.

    ``retrieve_every`` (default 1): only frames whose index is a multiple of it are converted to
    BGR images; the others are decoded (the codec needs them as references, and they carry the
    timestamps) but come out as ``None``. ``timeline --stride N`` uses it: skipping OpenCV's
    retrieve (colour conversion and copy) made decoding 1.4-1.55x faster at N=5 on the shared clips.

    ``start``/``stop`` (a chunk of a long file, see :func:`fervideo.chunks.analyse_chunk`): frames
    before ``start`` are decoded but not converted or yielded, and reading stops before ``stop``.
    Decoding from the first frame, not seeking, is what makes a chunk's frames and timestamps the
    ones a single pass sees (seeking is not frame-exact for every codec, and the timestamp
    fallbacks below carry state from frame to frame). ``reached_end`` tells whether the stream ended.
    """

    def __init__(self, path: str | Path, decode_threads: int | None = None) -> None:
        """``decode_threads``: FFmpeg decoder threads (None: FFmpeg's choice). The analysis pipeline
        asks for 1 at up to 720p, where one thread decodes 1,400-2,100 fps (ample) with ~25% less
        CPU per frame than frame-threading, and the cores are better spent on detection."""
        self.path = check_input_file(path)
        self.info = probe(self.path)
        self.frames_read = 0
        self.last_time_s = 0.0
        self.decode_threads = decode_threads
        self.retrieve_every = 1
        self.start = 0
        self.stop: int | None = None
        self.reached_end = False
        # Damaged stretches decoding went past: (first missing frame, how many, from s, to s).
        self.lost: list[tuple[int, int, float, float]] = []

    @property
    def frames_lost(self) -> int:
        return sum(n for _, n, _, _ in self.lost)

    @property
    def truncated(self) -> bool:
        """Fewer frames than the container promised *and* the stream stopped before its stated end.

        Containers miscount (``no_face.mp4`` claims 98 frames and holds 95; AVI headers written by
        capture tools are often off) while every frame to the end of the stream decodes; only a
        stream that stops well before the container's duration is called truncated.
        """
        return self.short_read() == "truncated"

    def short_read(self) -> str | None:
        """None (as promised), "miscount" (fewer frames, but decoded to the stated end) or "truncated"."""
        expected = self.info.frame_count_container
        if expected <= 0 or self.frames_read >= expected - 3:
            return None
        step = 1.0 / (self.info.fps_float or 30.0)
        duration = self.info.duration_s
        if duration is not None and self.last_time_s + 3 * step >= duration:
            return "miscount"
        return "truncated"

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        # The annotation says ndarray: only a caller that set retrieve_every > 1 sees None frames.
        cap = None
        if self.decode_threads:
            cap = open_capture(str(self.path), [cv2.CAP_PROP_N_THREADS, int(self.decode_threads)])
        if cap is None or not cap.isOpened():  # no thread setting, or a backend that refuses it
            cap = open_capture(str(self.path))
        if not cap.isOpened():
            raise VideoOpenError(self.path, "not a video OpenCV can open")
        fps = self.info.fps_float or 30.0
        last_t = -1.0
        index = 0
        after_damage = 0
        every = max(1, int(self.retrieve_every))
        try:
            while True:
                if self.stop is not None and index >= self.stop:
                    break
                wanted = index >= self.start and index % every == 0
                ok, frame = cap.read() if wanted else (cap.grab(), None)
                if not ok or (wanted and frame is None):
                    # A damaged packet fails one read and the stream goes on after it (players
                    # show the rest); only a run of failures with nothing after it is the end.
                    for _ in range(DAMAGED_READS):
                        ok = cap.grab()
                        if ok:
                            break
                    if not ok:
                        self.reached_end = True
                        break
                    after_damage = DAMAGE_REORDER
                    wanted = index >= self.start and index % every == 0
                    frame = None
                    if wanted:
                        ok, frame = cap.retrieve()
                        if not ok or frame is None:
                            continue
                if after_damage > 0:
                    # Frames lost to damage show as gaps in the timestamps of the frames after it
                    # (spread over a few frames: decoders reorder B-frames). Counted only there: a
                    # variable-rate stream has gaps of its own that lose nothing.
                    after_damage -= 1
                    t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                    lost = round((t - last_t) * fps) - 1 if np.isfinite(t) and last_t >= 0 else 0
                    if lost > 0:
                        self.lost.append((index, lost, last_t + 1.0 / fps, t - 1.0 / fps))
                        index += lost  # frames keep the source's numbers: the missing ones are a gap
                        if self.stop is not None and index >= self.stop:
                            break
                        if index >= self.start and index % every == 0 and frame is None:
                            ok, frame = cap.retrieve()
                            if not ok or frame is None:
                                continue
                        elif not (index >= self.start and index % every == 0):
                            frame = None
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if not np.isfinite(t) or t < 0 or (index > 0 and t == 0.0):
                    # Streams without timestamps (0 after the first frame): fall back to the nominal rate.
                    t = index / fps
                if t < last_t:
                    t = last_t
                last_t = t
                if index >= self.start:
                    yield index, t, frame
                index += 1
                self.frames_read = index
                self.last_time_s = t
        finally:
            cap.release()
        if index == 0:
            raise VideoOpenError(self.path, "no frame could be decoded (not a video, or corrupt)")


# Containers an annotated video can be written in, by extension (PyAV format names). H.264 goes in
# all of them; a name outside this list is refused rather than given MP4 bytes under another name.
ANNOTATED_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}


def check_annotated_path(output: str | Path) -> Path:
    """The annotated video's container follows its extension; refuse extensions we cannot honour."""
    out = Path(output)
    if out.suffix.lower() not in ANNOTATED_CONTAINERS:
        from fervideo.errors import UsageError

        raise UsageError(out, f"annotated video must end in one of {', '.join(ANNOTATED_CONTAINERS)} (the container follows the extension)")
    return out


def _has_audio(path: str | Path) -> bool:
    try:
        import av
    except ImportError:  # pragma: no cover - PyAV is a dependency
        return False
    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except (av.FFmpegError, OSError, ValueError):
        return False


def _can_copy_audio(av: Any, source: str | Path, fmt: str) -> bool:
    """Whether ``fmt`` takes the source's audio packets as they are: tried on a throwaway
    in-memory file with one packet (some pairs fail only when the header is written, mp4 with
    PCM; a fixed table would go stale with FFmpeg's versions)."""
    try:
        with av.open(str(source)) as src:
            audio = src.streams.audio[0]
            probe = av.open(io.BytesIO(), "w", format=fmt)
            try:
                stream = probe.add_stream_from_template(audio)
                for packet in src.demux(audio):
                    if packet.dts is None:
                        continue
                    packet.stream = stream
                    probe.mux(packet)
                    break
            finally:
                probe.close()
    except (av.FFmpegError, ValueError, IndexError):
        return False
    return True


class VideoWriter:
    """Write BGR frames with their timestamps: :class:`AvWriter` (H.264 + the input's audio, via
    PyAV) or :class:`Cv2Writer` (OpenCV's mp4v), chosen by :func:`open_writer`.

    Use as a context manager around :func:`atomic_output`'s temporary path; ``close`` finalises
    the container (and writes the audio) so the file is complete before the rename. ``notice`` is
    said before writing (what this writer leaves out); ``notes`` gathers what the finished file
    differs in from the input, found while writing (audio transcoded or dropped, a constant rate
    for a variable-rate input), for the caller to report after close.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction, codec: str) -> None:
        self.path = Path(path)
        self.width, self.height = width, height
        self.fps = fps if fps > 0 else Fraction(30)
        self.codec = codec
        self.frames_written = 0
        self.notice: str | None = None
        self.notes: list[str] = []

    def write(self, frame: np.ndarray, time_s: float) -> None:
        """Write one BGR frame shown at ``time_s`` seconds."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (it must be complete and valid after this)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Release resources without caring about a valid file (the caller deletes it)."""
        raise NotImplementedError

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_writer(
    path: str | Path,
    width: int,
    height: int,
    fps: Fraction,
    codec: str = "h264",
    audio_from: str | Path | None = None,
    time_base: Fraction | None = None,
) -> VideoWriter:
    """The writer for ``codec``: mp4v through OpenCV (video only), anything else through PyAV;
    without PyAV, OpenCV's mp4v with a notice."""
    if codec != "mp4v":
        try:
            import av  # noqa: F401
        except ImportError:
            w = Cv2Writer(path, width, height, fps)
            w.notice = "PyAV is not installed: writing MPEG-4 Part 2 (mp4v) with OpenCV, without audio"
            return w
        return AvWriter(path, width, height, fps, codec, audio_from, time_base)
    w = Cv2Writer(path, width, height, fps)
    if audio_from is not None and _has_audio(audio_from):
        w.notice = "--codec mp4v writes video only: the input's audio track is not copied (use the default h264 to keep it)"
    return w


class AvWriter(VideoWriter):
    """H.264 (or another FFmpeg codec) through PyAV, the input's audio copied or transcoded."""

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: Fraction,
        codec: str = "h264",
        audio_from: str | Path | None = None,
        time_base: Fraction | None = None,
    ) -> None:
        import av

        super().__init__(path, width, height, fps, codec)
        self.audio_from = audio_from

        fmt = ANNOTATED_CONTAINERS.get(self.path.suffix.lower(), "mp4")
        self._container = av.open(str(self.path), mode="w", format=fmt)
        stream = self._container.add_stream(codec, rate=self.fps)
        stream.width = self.width
        stream.height = self.height
        # 4:2:0 chroma needs even sizes; odd ones (641x359) keep their exact size in 4:4:4.
        even = self.width % 2 == 0 and self.height % 2 == 0
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        # A fine time base keeps every input timestamp (variable frame rate included). AVI has no
        # timestamps, only a frame rate taken from the time base: there it must be 1/fps (a 1/90000
        # base made players see 600 fps and 1,440 frames for 72).
        if fmt == "avi":
            self._tb = Fraction(1) / self.fps
        else:
            self._tb = time_base or Fraction(1, 90000)
        stream.time_base = self._tb
        stream.codec_context.time_base = self._tb
        if codec in ("h264", "libx264"):
            stream.options = {"preset": "veryfast", "crf": "20"}
        self._stream = stream
        self._audio_in: Any = None
        self._audio_out: Any = None
        self._transcode = False
        if self.audio_from is not None:
            self._open_audio(av, fmt)
        self._av = av
        self._last_pts = -1

    def _open_audio(self, av: Any, fmt: str) -> None:
        """Copy the input's audio where the container can hold its codec; otherwise transcode it
        to AAC (MJPEG .avi with PCM into .mp4, Opus or FLAC into .mov, Opus or ALAC into .avi);
        if neither works, write no audio and say so. Never fails the video for its audio."""
        try:
            src = av.open(str(self.audio_from))
        except (av.FFmpegError, OSError, ValueError):
            return
        if not src.streams.audio:
            src.close()
            return
        audio = src.streams.audio[0]
        name = audio.codec_context.name
        try:
            if _can_copy_audio(av, self.audio_from, fmt):
                self._audio_out = self._container.add_stream_from_template(audio)
            else:
                self._audio_out = self._container.add_stream("aac", rate=audio.codec_context.sample_rate or 48000)
                self._audio_out.layout = "stereo" if (audio.codec_context.channels or 2) > 1 else "mono"
                self._transcode = True
                self.notes.append(f"the input's {name} audio cannot be stored in {self.path.suffix or fmt} as it is: transcoded to AAC")
            self._audio_in = src
        except (av.FFmpegError, ValueError) as e:
            src.close()
            self._audio_out = None
            self.notes.append(f"the input's {name} audio was left out (it cannot go in {self.path.suffix or fmt}: {e})")

    def _write_audio(self) -> None:
        av, src = self._av, self._audio_in
        stream = src.streams.audio[0]
        try:
            if not self._transcode:
                for packet in src.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.stream = self._audio_out
                    self._container.mux(packet)
                return
            out = self._audio_out
            resampler = av.AudioResampler(format="fltp", layout=out.layout.name, rate=out.rate)
            fifo = av.AudioFifo()
            samples = 0
            size = out.codec_context.frame_size or 1024

            def drain(final: bool) -> None:
                nonlocal samples
                while fifo.samples >= size or (final and fifo.samples):
                    frame = fifo.read(size) if fifo.samples >= size else fifo.read()
                    frame.pts = samples
                    samples += frame.samples
                    for packet in out.encode(frame):
                        self._container.mux(packet)

            for frame in src.decode(stream):
                frame.pts = None
                for resampled in resampler.resample(frame):
                    fifo.write(resampled)
                drain(False)
            for resampled in resampler.resample(None):
                fifo.write(resampled)
            drain(True)
            for packet in out.encode(None):
                self._container.mux(packet)
        except av.FFmpegError as e:
            self.notes.append(f"the input's audio stops early in the annotated video (damaged audio data: {e})")
        finally:
            src.close()

    def write(self, frame: np.ndarray, time_s: float) -> None:
        vf = self._av.VideoFrame.from_ndarray(frame, format="bgr24")
        pts = int(round(time_s / self._tb))
        if pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        vf.pts = pts
        vf.time_base = self._tb
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, then write the audio (copied packet for packet, or transcoded)."""
        if self._av is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        if self._audio_in is not None:
            self._write_audio()
            self._audio_in = None
        self._container.close()
        self._av = None

    def abort(self) -> None:
        try:
            if self._av is not None:
                if self._audio_in is not None:
                    self._audio_in.close()
                    self._audio_in = None
                self._container.close()
        except Exception:  # noqa: BLE001 - best effort on an error path; the file is discarded
            pass
        self._av = None


class Cv2Writer(VideoWriter):
    """OpenCV's MPEG-4 Part 2 (mp4v): video only, one constant frame rate, even sizes."""

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction) -> None:
        super().__init__(path, width, height, fps, "mp4v")
        self._first_time_s: float | None = None
        self._rate_noted = False
        # OpenCV's MPEG-4 encoder needs even sizes and silently drops an odd last row/column; drop
        # it here, knowingly, and say so (the h264 path keeps odd sizes exactly, in 4:4:4).
        self._cv_size = (self.width - self.width % 2, self.height - self.height % 2)
        if self._cv_size != (self.width, self.height):
            self.notes.append(
                f"--codec mp4v needs even frame sizes: {self.width}x{self.height} written as {self._cv_size[0]}x{self._cv_size[1]} "
                "(last column/row dropped), the default h264 keeps the size"
            )
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        # OpenCV logs each failed write on stderr ("Failed to write frame", 64 lines on a full disk);
        # the file is checked at close instead, and the user gets one line.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self._cv = cv2.VideoWriter(str(self.path), fourcc, float(self.fps), self._cv_size)
        if not self._cv.isOpened():
            raise OutputError(self.path, "OpenCV cannot open an mp4v writer here")

    def write(self, frame: np.ndarray, time_s: float) -> None:
        w, h = self._cv_size
        self._cv.write(frame[:h, :w] if (w, h) != (self.width, self.height) else frame)
        self._check_constant_rate(time_s)
        self.frames_written += 1

    def close(self) -> None:
        if self._cv is None:
            return
        self._cv.release()
        self._cv = None
        self._check_cv_file()

    def _check_constant_rate(self, time_s: float) -> None:
        """mp4v files have one frame rate: say so (once) when the input's frame times are off it by
        more than half a frame (a variable-rate input), since the annotated frames then no longer
        line up with the input's times."""
        if self._first_time_s is None:
            self._first_time_s = time_s
        if self._rate_noted:
            return
        expected = self._first_time_s + self.frames_written / float(self.fps)
        if abs(time_s - expected) > 0.5 / float(self.fps):
            self._rate_noted = True
            self.notes.append(
                f"--codec mp4v writes a constant frame rate ({float(self.fps):.3f} fps) and this input's frame times vary "
                f"(frame {self.frames_written} is at {time_s:.3f} s, not {expected:.3f} s): the annotated video does not keep "
                "the input's times, the default h264 keeps them"
            )

    def _check_cv_file(self) -> None:
        """OpenCV's writer reports no errors: a full disk leaves a file with no index and it says
        nothing. The file must open and hold the frames written, or it is an output error."""
        if self.frames_written == 0:
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
        finally:
            cap.release()
        if count < self.frames_written:
            raise OSError(errno.EIO, f"OpenCV's mp4v writer left an incomplete file ({count} of {self.frames_written} frames; is the disk full?)")

    def abort(self) -> None:
        try:
            if self._cv is not None:
                self._cv.release()
        except Exception:  # noqa: BLE001 - best effort on an error path; the file is discarded
            pass
        self._cv = None
