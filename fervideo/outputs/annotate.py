"""Drawing on frames: box, id, top emotion and a 7-bar chart per face, readable at any size."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from fervideo.frames import Face
from fervideo.labels import EMOTIONS, bgr, text_color_on


def text_scale(width: int, height: int) -> float:
    """OpenCV font scale for labels on a frame: text ~1/30 of the short side, at least 12 px tall
    (readable at 640x360, where the old fixed scale drew 6 px digits that read 0.67 as 0.87)."""
    px = max(12.0, min(width, height) / 30)
    return px / 22.0  # FONT_HERSHEY_SIMPLEX capitals are ~22 px tall at scale 1


def bar_label(emotion: str, p: float) -> str:
    """The text beside a bar: the full class name and its probability."""
    return f"{emotion} {float(p):.2f}"


def draw_faces(frame: np.ndarray, faces: Iterable[Face], smoothed: bool = False) -> np.ndarray:
    """Draw box, id, top emotion with confidence and a 7-bar chart beside each face (in place)."""
    h_img, w_img = frame.shape[:2]
    font = text_scale(w_img, h_img)
    thick = max(1, round(2 * font))
    faces = list(faces)
    taken: list[tuple[int, int, int, int]] = [(f.x, f.y, f.w, f.h) for f in faces]  # charts avoid faces and each other
    for f in faces:
        probs = f.smoothed if (smoothed and f.smoothed is not None) else f.probs
        if probs is None:
            continue
        top = int(np.argmax(probs))
        color = bgr(EMOTIONS[top])
        cv2.rectangle(frame, (f.x, f.y), (f.x + f.w, f.y + f.h), color, thick)
        label = f"#{f.face_id} {EMOTIONS[top]} {probs[top]:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        ty = _label_baseline(f, tw, th, base, h_img, [r for r in taken if r != (f.x, f.y, f.w, f.h)])
        cv2.rectangle(frame, (f.x, ty - th - base), (f.x + tw + 4, ty + base // 2), color, -1)
        cv2.putText(frame, label, (f.x + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, font, text_color_on(color), thick, cv2.LINE_AA)
        _draw_bars(frame, f, probs, font, w_img, h_img, taken)
    return frame


def _label_baseline(f: Face, tw: int, th: int, base: int, h_img: int, others: list[tuple[int, int, int, int]]) -> int:
    """Where the label's text sits: above the box, else below it, else inside its top edge; the
    first of these that covers no other face (in a crowd a label over a neighbour hides that face)."""
    places = [f.y - 4, f.y + f.h + th + 4, f.y + th + base + 2]
    inside = [y for y in places if y - th - base >= 0 and y + base // 2 <= h_img]
    for y in inside:
        if not any(_overlap((f.x, y - th - base, tw + 4, th + base + base // 2), r) for r in others):
            return y
    return (inside or places)[0]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _draw_bars(frame: np.ndarray, f: Face, probs: np.ndarray, font: float, w_img: int, h_img: int, taken: list[tuple[int, int, int, int]]) -> None:
    """A 7-bar probability chart on a dark panel beside the face, where the frame has room for it
    that covers no other face and no other chart: full class names and the value on each bar, white
    on the darkened panel. In a crowd a face whose four places are all taken keeps its compact
    label only (box, id, top emotion): a panel over a neighbour hides the face a viewer checks."""
    small = font * 0.8
    thick = max(1, round(small * 1.5))
    (label_w, text_h), _ = cv2.getTextSize(bar_label("surprise", 1.0), cv2.FONT_HERSHEY_SIMPLEX, small, thick)
    bar_h = text_h + max(4, round(text_h * 0.5))
    bar_w = max(40, label_w)
    chart_w = label_w + bar_w + 12
    chart_h = bar_h * len(EMOTIONS) + 4
    y_side = max(0, min(f.y, h_img - chart_h))
    y_below = f.y + f.h + 6
    candidates = [(f.x + f.w + 6, y_side), (f.x - chart_w - 6, y_side), (f.x, y_below), (f.x + f.w - chart_w, y_below)]
    fits = [(x, y) for x, y in candidates if x >= 0 and y >= 0 and x + chart_w <= w_img and y + chart_h <= h_img]
    if not fits:
        return  # no room beside this face
    others = [r for r in taken if r != (f.x, f.y, f.w, f.h)]
    free = [(x, y) for x, y in fits if not any(_overlap((x, y, chart_w, chart_h), r) for r in others)]
    if not free:
        return  # every place would cover another face or chart
    x0, y0 = free[0]
    taken.append((x0, y0, chart_w, chart_h))
    panel = frame[y0 : y0 + chart_h, x0 : x0 + chart_w]
    panel[:] = (panel * 0.3).astype(np.uint8)  # darken: white text stays readable on any background
    for i, (name, p) in enumerate(zip(EMOTIONS, probs)):
        y = y0 + 2 + i * bar_h
        bx = x0 + label_w + 8
        length = int(round(bar_w * float(p)))
        if length > 0:
            cv2.rectangle(frame, (bx, y + 2), (bx + length, y + bar_h - 2), bgr(name), -1)
        baseline_y = y + bar_h - max(2, (bar_h - text_h) // 2)
        cv2.putText(frame, bar_label(name, p), (x0 + 3, baseline_y), cv2.FONT_HERSHEY_SIMPLEX, small, (255, 255, 255), thick, cv2.LINE_AA)
