"""Generate test videos (broken, rotated, VFR, odd-sized, with audio) with PyAV, in the tests."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from conftest import SAMPLES


def broken_folder(tmp_path: Path) -> Path:
    """A batch input: two good clips (one in a sub-folder), a text file and an empty file named as
    videos, and a README that is no video."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "good.mp4").write_bytes((SAMPLES / "two_astronauts.mp4").read_bytes())
    (d / "sub" / "good2.mp4").write_bytes((SAMPLES / "astronaut_pan.mp4").read_bytes())
    (d / "text.mp4").write_text("not a video\n" * 20)
    (d / "empty.avi").write_bytes(b"")
    (d / "README.md").write_text("notes, not a video")
    return d


def sample_frames(n: int, size: tuple[int, int] | None = None, start: int = 0) -> list[np.ndarray]:
    """``n`` frames of the bundled astronaut clip (looped), optionally resized to (w, h)."""
    cap = cv2.VideoCapture(str(SAMPLES / "astronaut_pan.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    frames = frames[:60]  # the part with a face
    out = [frames[(start + i) % len(frames)] for i in range(n)]
    if size is not None:
        out = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in out]
    return out


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    fps: Fraction | int = 25,
    codec: str = "libx264",
    pts_ms: Sequence[int] | None = None,
    faststart: bool = False,
    audio_seconds: float = 0.0,
    fmt: str | None = None,
    pix_fmt: str | None = None,
) -> Path:
    """Encode BGR (or gray) frames; ``pts_ms`` gives variable frame timing; optional sine audio."""
    options = {"movflags": "+faststart"} if faststart else {}
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt, options=options) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = w, h
        s.pix_fmt = pix_fmt or ("yuv420p" if (w % 2 == 0 and h % 2 == 0) else "yuv444p")
        if pts_ms is not None:
            s.time_base = Fraction(1, 1000)
            s.codec_context.time_base = Fraction(1, 1000)
        a = None
        if audio_seconds > 0:
            a = c.add_stream("aac", rate=44100)
            a.layout = "mono"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="gray" if f.ndim == 2 else "bgr24")
            if pts_ms is not None:
                vf.pts = pts_ms[i]
                vf.time_base = Fraction(1, 1000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            n = int(44100 * audio_seconds)
            t = np.arange(n) / 44100
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            for start in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono")
                af.sample_rate = 44100
                af.pts = start
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


def set_mp4_rotation(path: Path, degrees: int) -> None:
    """Write a display matrix into the first video ``tkhd`` box (what phones do for portrait video)."""
    data = bytearray(path.read_bytes())
    i = data.find(b"tkhd")
    assert i > 0
    one, zero = 0x10000, 0
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    matrix = [cos * one, sin * one, zero, -sin * one, cos * one, zero, 0, 0, 0x40000000]
    data[i + 44 : i + 80] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]
