"""Build sample_videos/ from scikit-image's astronaut() photo (shipped in the scikit-image wheel).

The clips exercise what the tool must get right without any external footage:

* ``astronaut_pan.mp4`` (640x360, 30000/1001 fps, 90 frames): the astronaut's head moves and grows
  for 60 frames, then 30 frames of a faceless part of the photo (no face -> empty rows).
* ``two_astronauts.mp4`` (640x360, 25 fps, 50 frames): two copies of the portrait side by side,
  drifting apart, one mirrored (two stable face ids).

Run: ``python scripts/make_samples.py`` (needs the ``dev`` extra for scikit-image). Output is
deterministic for a given PyAV/libx264 build; the committed files are the reference.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

W, H = 640, 360


def _astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _background(t: float) -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    base = 60 + 40 * np.sin(x / 90 + t) + 30 * np.cos(y / 70 - t)
    return np.clip(np.dstack([base, base * 0.9 + 20, base * 0.8 + 30]), 0, 255).astype(np.uint8)


def _paste(canvas: np.ndarray, patch: np.ndarray, cx: int, cy: int) -> None:
    ph, pw = patch.shape[:2]
    x1, y1 = cx - pw // 2, cy - ph // 2
    sx1, sy1 = max(0, -x1), max(0, -y1)
    dx1, dy1 = max(0, x1), max(0, y1)
    dx2, dy2 = min(W, x1 + pw), min(H, y1 + ph)
    canvas[dy1:dy2, dx1:dx2] = patch[sy1 : sy1 + dy2 - dy1, sx1 : sx1 + dx2 - dx1]


def _write(path: Path, frames: list[np.ndarray], fps: Fraction) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "23", "preset": "medium", "threads": "1"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def make(out_dir: Path) -> list[Path]:
    img = _astronaut_bgr()
    portrait = img[0:300, 90:330]  # head and shoulders
    scenery = img[300:512, 0:512]  # suit and flag, no face
    frames = []
    for i in range(60):
        t = i / 59
        scale = 0.75 + 0.35 * t
        patch = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = _background(i / 10)
        _paste(canvas, patch, int(200 + 240 * t), int(190 - 10 * np.sin(6 * t)))
        frames.append(canvas)
    for i in range(30):
        canvas = _background((60 + i) / 10)
        patch = cv2.resize(scenery, (int(512 * 0.7), int(212 * 0.7)))
        _paste(canvas, patch, 320 + i, 200)
        frames.append(canvas)
    out_dir.mkdir(parents=True, exist_ok=True)
    a = out_dir / "astronaut_pan.mp4"
    _write(a, frames, Fraction(30000, 1001))

    frames = []
    small = cv2.resize(portrait, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    mirrored = small[:, ::-1]
    for i in range(50):
        canvas = _background(i / 8)
        _paste(canvas, small, 190 - i, 180)
        _paste(canvas, np.ascontiguousarray(mirrored), 450 + i, 190)
        frames.append(canvas)
    b = out_dir / "two_astronauts.mp4"
    _write(b, frames, Fraction(25))
    return [a, b]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "sample_videos")
    for p in make(ap.parse_args().out):
        print(p, p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
