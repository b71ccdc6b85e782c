"""The data that flows through the pipeline: one :class:`FrameResult` per decoded frame.

Each stage fills in its part (video: index, time, image; faces: boxes; tracking: ids; emotions:
probabilities; smoothing: smoothed probabilities) and outputs only read them, so any stage can be
swapped or tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

LANDMARKS = ("right_eye", "left_eye", "nose", "mouth")


@dataclass
class Face:
    """One face in one frame; box in pixels of the frame as a player shows it."""

    x: int
    y: int
    w: int
    h: int
    score: float
    face_id: int = -1
    probs: np.ndarray | None = None  # (7,) float32, FER2013 order
    smoothed: np.ndarray | None = None
    # (4, 2) float32 frame pixels, in LANDMARKS order (the subject's right eye is on the image's
    # left); None where the detector gives none (Haar) or the box was carried (no detection).
    landmarks: np.ndarray | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


@dataclass
class FrameResult:
    """A decoded frame and everything the stages found in it."""

    index: int
    time_s: float
    image: np.ndarray | None  # BGR; dropped once no stage needs it
    faces: list[Face] = field(default_factory=list)
    analysed: bool = True


@dataclass
class VideoInfo:
    """What the tool sees of a video; ``fps`` is exact (29.97 is 30000/1001, never 29)."""

    path: str
    width: int
    height: int
    fps: Fraction
    frame_count_container: int
    container: str = ""
    codec: str = ""
    rotation: int = 0
    duration_s: float | None = None
    has_audio: bool = False
    frame_count_decoded: int | None = None

    @property
    def fps_float(self) -> float:
        return float(self.fps)
