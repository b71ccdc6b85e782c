"""Stable face ids across frames, and per-id temporal smoothing of probabilities.

The tracker matches each frame's boxes to live tracks greedily by IoU, with a fallback on centre
distance relative to face size (a fast head turn can drop IoU to zero while the face is plainly the
same). A track survives ``max_missing_s`` seconds without a match, which carries ids through short
occlusions (a hand over the face). After that it is kept as *lost* for ``reid_s`` seconds more: a
face that appears where a lost face was (centre within one face size, size within 1.5x) gets the
lost face's id back. Without that, one person who looked away twice got three ids (a user's clip
with three people had six). A face that returns elsewhere or later gets a new id. Ids count up
from 0 in order of first appearance, so re-runs give the same ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fervideo.frames import Face
from fervideo.geometry import iou_matrix


@dataclass
class _Track:
    face_id: int
    box: np.ndarray  # x1, y1, x2, y2
    last_seen_s: float
    score: float
    landmarks: np.ndarray | None = None  # at the last detection, carried with the box


class IoUTracker:
    """Greedy IoU / centre-distance tracker; call :meth:`update` once per analysed frame in order."""

    def __init__(
        self, iou_threshold: float = 0.2, max_center_shift: float = 0.6, max_missing_s: float = 1.0, reid_s: float = 4.0, reid_shift: float = 1.0
    ) -> None:
        self.iou_threshold = iou_threshold
        self.max_center_shift = max_center_shift
        self.max_missing_s = max_missing_s
        self.reid_s = reid_s
        self.reid_shift = reid_shift
        self.tracks: list[_Track] = []
        self.lost: list[_Track] = []
        self.next_id = 0
        self.last_update_s = float("-inf")

    def update(self, faces: list[Face], time_s: float) -> list[Face]:
        """Assign ``face_id`` to each face in place; returns the faces sorted by id."""
        live = [t for t in self.tracks if time_s - t.last_seen_s <= self.max_missing_s]
        self.lost += [t for t in self.tracks if time_s - t.last_seen_s > self.max_missing_s]
        self.lost = [t for t in self.lost if time_s - t.last_seen_s <= self.reid_s]
        self.tracks = live
        self.last_update_s = time_s
        if faces:
            boxes = np.array([[f.x, f.y, f.x + f.w, f.y + f.h] for f in faces], float)
            matched = self._match(boxes)
            for i, f in enumerate(faces):
                track = matched.get(i)
                if track is None:
                    track = self._reidentify(boxes[i])
                if track is None:
                    track = _Track(self.next_id, boxes[i], time_s, f.score)
                    self.next_id += 1
                    self.tracks.append(track)
                track.box, track.last_seen_s, track.score, track.landmarks = boxes[i], time_s, f.score, f.landmarks
                f.face_id = track.face_id
        return sorted(faces, key=lambda f: f.face_id)

    def _match(self, boxes: np.ndarray) -> dict[int, _Track]:
        if not self.tracks:
            return {}
        tboxes = np.array([t.box for t in self.tracks])
        iou = iou_matrix(boxes, tboxes)
        c_det = (boxes[:, :2] + boxes[:, 2:]) / 2
        c_trk = (tboxes[:, :2] + tboxes[:, 2:]) / 2
        size = np.maximum((tboxes[:, 2] - tboxes[:, 0]), (tboxes[:, 3] - tboxes[:, 1]))
        shift = np.linalg.norm(c_det[:, None] - c_trk[None], axis=2) / np.maximum(size[None], 1.0)
        # One score: IoU where boxes overlap enough, otherwise a small credit for nearby centres.
        score = np.where(iou >= self.iou_threshold, 1.0 + iou, np.where(shift <= self.max_center_shift, 1.0 - shift, 0.0))
        out: dict[int, _Track] = {}
        used_d: set[int] = set()
        used_t: set[int] = set()
        for flat in np.argsort(-score, axis=None, kind="stable"):
            d, t = divmod(int(flat), score.shape[1])
            if score[d, t] <= 0:
                break
            if d in used_d or t in used_t:
                continue
            used_d.add(d)
            used_t.add(t)
            out[d] = self.tracks[t]
        return out

    def _reidentify(self, box: np.ndarray) -> _Track | None:
        """The lost track closest to ``box`` (centre within ``reid_shift`` face sizes, size within
        1.5x), moved back to the live tracks; None if no lost face fits."""
        best, best_shift = None, self.reid_shift
        size = max(box[2] - box[0], box[3] - box[1], 1.0)
        for t in self.lost:
            t_size = max(t.box[2] - t.box[0], t.box[3] - t.box[1], 1.0)
            if not (1 / 1.5 <= size / t_size <= 1.5):
                continue
            shift = float(np.linalg.norm((box[:2] + box[2:]) / 2 - (t.box[:2] + t.box[2:]) / 2)) / t_size
            if shift <= best_shift:
                best, best_shift = t, shift
        if best is not None:
            self.lost.remove(best)
            self.tracks.append(best)
        return best

    def predicted_faces(self, time_s: float) -> list[Face]:
        """Boxes found at the last detection, carried to a frame where detection is skipped (``--detect-every``).

        Only tracks matched at that last detection are carried: a face the detector no longer saw
        must not be invented on the frames after it.
        """
        out = []
        for t in self.tracks:
            if t.last_seen_s == self.last_update_s:
                x1, y1, x2, y2 = (int(round(v)) for v in t.box)
                out.append(Face(x1, y1, x2 - x1, y2 - y1, t.score, t.face_id, landmarks=t.landmarks))
        return out


class EmaSmoother:
    """Exponential moving average of probabilities per face id, with a time constant in seconds.

    The weight of a new frame is ``1 - exp(-dt / tau)`` with ``dt`` the real time since that id was
    last seen, so the smoothing means the same at 25 or 60 fps and over variable frame rates.
    """

    def __init__(self, tau_s: float) -> None:
        self.tau_s = tau_s
        self.state: dict[int, tuple[float, np.ndarray]] = {}

    def update(self, face_id: int, time_s: float, probs: np.ndarray) -> np.ndarray:
        prev = self.state.get(face_id)
        if prev is None or self.tau_s <= 0:
            value = probs.astype(np.float32)
        else:
            t0, p0 = prev
            alpha = 1.0 - math.exp(-max(time_s - t0, 0.0) / self.tau_s)
            value = (p0 + alpha * (probs - p0)).astype(np.float32)
        self.state[face_id] = (time_s, value)
        return value
