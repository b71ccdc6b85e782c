"""End-to-end fidelity: labelled faces put into real frames, run through the real chain.

The model card's accuracy is measured on FER2013's curated 48x48 crops, but a user's video goes
through detector -> crop -> CNN, and on real frames that chain lost 7.5 to 15 points (issue 21).
This module measures the chain on faces whose label and exact framing are known: each FER2013 face
is upscaled to a target size, optionally rolled, and composited with a feathered border (so the
detector sees a face, not a pasted square) into a face-free frame of a real clip. The pipeline's own
detector and crop (:meth:`fervideo.pipeline.Analyser.detect_faces` and :meth:`~fervideo.pipeline.Analyser.crop`,
what ``analyse_image`` and the video loop call) then find and cut the face, and every tier's
classifier scores both that crop and the original 48x48 face.

Used by ``benchmarks/e2e_fidelity.py`` (the tables), ``scripts/fit_crop.py`` (the detectors' crop
maps, fitted from where the true square lies relative to each box) and a test. Choices are made on
PublicTest; PrivateTest is for reporting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fervideo.frames import Face

FRAME_SIZE = (640, 360)  # the shared clips' size: what a 40-80 px face means to the detector
SIZE_BINS: dict[str, tuple[int, int]] = {"40-80": (40, 80), "80-160": (80, 160), ">=160": (160, 240)}
ROLLS = (0.0, -10.0, 10.0, -20.0, 20.0)
FEATHER = 0.06  # the border ramp, as a fraction of the face's side
CropFn = Callable[[np.ndarray, Face], np.ndarray]


@dataclass(frozen=True)
class Case:
    """One composited face: which FER2013 face, how large (px), rolled how far (degrees, positive:
    clockwise as shown), on which background frame, centred where."""

    face: int
    size: int
    roll: float
    background: int
    cx: float
    cy: float
    size_bin: str


@dataclass
class Found:
    """What the chain made of one case: the detection matched to it (None: missed) and its crop
    under each crop variant (the pipeline's own, and any others being compared)."""

    case: Case
    face: Face | None
    crops: dict[str, np.ndarray]


def background_frames(videos: Sequence[Path], n: int, size: tuple[int, int] = FRAME_SIZE) -> list[np.ndarray]:
    """``n`` frames spread evenly over ``videos`` (clips without faces), resized to ``size``."""
    from fervideo.video import FrameReader

    per = -(-n // len(videos))
    out: list[np.ndarray] = []
    for v in videos:
        frames = [f for _, _, f in FrameReader(v)]
        for i in np.linspace(0, len(frames) - 1, per).round().astype(int):
            out.append(cv2.resize(frames[i], size, interpolation=cv2.INTER_AREA))
    return out[:n]


def make_cases(
    n_faces: int, n_backgrounds: int, sizes: Iterable[str] = SIZE_BINS, rolls: Iterable[float] = ROLLS, seed: int = 0, frame_size: tuple[int, int] = FRAME_SIZE
) -> list[Case]:
    """The same ``n_faces`` faces (indices 0..n-1 of the chosen split) in every size bin x roll cell,
    each at a random size within the bin, on a random background, at a random place that holds the
    whole rolled face."""
    rng = np.random.default_rng(seed)
    w, h = frame_size
    cases = []
    for bin_name in sizes:
        lo, hi = SIZE_BINS[bin_name]
        for roll in rolls:
            for i in range(n_faces):
                size = int(rng.integers(lo, hi))
                reach = size * (1 + 2 * FEATHER) * (abs(np.cos(np.radians(roll))) + abs(np.sin(np.radians(roll)))) / 2 + 2
                cx = float(rng.uniform(reach, w - reach))
                cy = float(rng.uniform(reach, h - reach))
                cases.append(Case(i, size, roll, int(rng.integers(n_backgrounds)), cx, cy, bin_name))
    return cases


def composite(background: np.ndarray, face: np.ndarray, case: Case, feather: float = FEATHER) -> np.ndarray:
    """``face`` (48x48 gray) upscaled to ``case.size``, rolled by ``case.roll`` and blended into a
    copy of ``background`` centred at ``(case.cx, case.cy)``.

    The face's own square is opaque, so a crop of exactly that square sees exactly the face; the
    soft border lies outside it: the face's edge pixels, replicated over ``feather`` of the side,
    fade into the background, so the detector sees a face, not a pasted square.
    """
    s = case.size
    up = cv2.resize(face, (s, s), interpolation=cv2.INTER_CUBIC)
    ramp = max(1, int(round(feather * s)))
    up = cv2.copyMakeBorder(up, ramp, ramp, ramp, ramp, cv2.BORDER_REPLICATE).astype(np.float32)
    n = s + 2 * ramp
    d = np.minimum(np.arange(n) + 0.5, n - 0.5 - np.arange(n))
    edge = np.clip(d / ramp, 0.0, 1.0).astype(np.float32)
    alpha = np.minimum(edge[:, None], edge[None, :])
    centre = (n / 2, n / 2)
    # A positive roll turns the face clockwise as shown; getRotationMatrix2D turns counter-clockwise.
    m = cv2.getRotationMatrix2D(centre, -case.roll, 1.0)
    m[0, 2] += case.cx - centre[0]
    m[1, 2] += case.cy - centre[1]
    h, w = background.shape[:2]
    face_w = cv2.warpAffine(up, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask_w = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[:, :, None]
    out = background.astype(np.float32) * (1 - mask_w) + face_w[:, :, None] * mask_w
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def match(faces: list[Face], case: Case) -> Face | None:
    """The detection that is this case's face: centre within a third of the side of the true
    centre, size within 0.4-1.6x of the side; the nearest if several."""
    best, best_d = None, case.size / 3
    for f in faces:
        d = float(np.hypot(f.x + f.w / 2 - case.cx, f.y + f.h / 2 - case.cy))
        if d <= best_d and 0.4 * case.size <= max(f.w, f.h) <= 1.6 * case.size:
            best, best_d = f, d
    return best


def run_chain(
    analyser: object, faces48: np.ndarray, backgrounds: list[np.ndarray], cases: Iterable[Case], variants: dict[str, CropFn] | None = None
) -> Iterator[Found]:
    """Each case through ``analyser``'s detector and crop, exactly as a frame of a video goes
    (``variants``: other crops of the same detection, by name, to compare with the pipeline's)."""
    for case in cases:
        frame = composite(backgrounds[case.background], faces48[case.face], case)
        hit = match(analyser.detect_faces(frame), case)  # type: ignore[attr-defined]
        crops = {}
        if hit is not None:
            crops["pipeline"] = analyser.crop(frame, hit)  # type: ignore[attr-defined]
            for name, fn in (variants or {}).items():
                crops[name] = fn(frame, hit)
        yield Found(case, hit, crops)


@dataclass
class Cell:
    """Figures for one group of cases (a size bin x roll, for one detector and tier)."""

    cases: int = 0
    detected: int = 0
    e2e_correct: int = 0  # the pipeline's crop, on detected faces
    curated_correct: int = 0  # the original 48x48 face, on the same detected faces
    curated_all: int = 0  # the original face, on every case (detected or not)

    @property
    def detection_rate(self) -> float:
        return self.detected / self.cases if self.cases else float("nan")

    @property
    def e2e(self) -> float:
        return self.e2e_correct / self.detected if self.detected else float("nan")

    @property
    def curated(self) -> float:
        return self.curated_correct / self.detected if self.detected else float("nan")

    @property
    def ratio(self) -> float:
        return self.e2e / self.curated if self.detected and self.curated_correct else float("nan")


def score(found: list[Found], labels: np.ndarray, crop_pred: np.ndarray, curated_pred: np.ndarray) -> dict[tuple[str, float], Cell]:
    """Group ``found`` by (size bin, roll); ``crop_pred`` holds the predicted class of each detected
    case's crop in order, ``curated_pred`` the predicted class of every face index."""
    cells: dict[tuple[str, float], Cell] = {}
    k = 0
    for f in found:
        c = cells.setdefault((f.case.size_bin, f.case.roll), Cell())
        c.cases += 1
        truth = int(labels[f.case.face])
        c.curated_all += int(curated_pred[f.case.face] == truth)
        if f.face is None:
            continue
        c.detected += 1
        c.e2e_correct += int(crop_pred[k] == truth)
        c.curated_correct += int(curated_pred[f.case.face] == truth)
        k += 1
    return cells


def pooled(cells: dict[tuple[str, float], Cell], size_bin: str, rolls: Iterable[float]) -> Cell:
    """One cell summing ``rolls`` (e.g. -20 and +20) of a size bin."""
    out = Cell()
    for r in rolls:
        c = cells.get((size_bin, r))
        if c is None:
            continue
        out.cases += c.cases
        out.detected += c.detected
        out.e2e_correct += c.e2e_correct
        out.curated_correct += c.curated_correct
        out.curated_all += c.curated_all
    return out
