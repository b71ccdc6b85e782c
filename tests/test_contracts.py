"""One contract, every implementation: each registered detector and each annotated-video writer.

PySceneDetect tests every video backend against one contract; here the registries are
``fervideo.faces.DETECTORS`` and the writer's containers x codecs.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import SAMPLES, YUNET, need_extra

from fervideo.faces import CROP_MAPS, DETECTORS, create_detector
from fervideo.frames import Face
from fervideo.video import ANNOTATED_CONTAINERS, AvWriter, Cv2Writer, FrameReader, open_writer


def _frame(index: int = 10) -> np.ndarray:
    cap = cv2.VideoCapture(str(SAMPLES / "two_astronauts.mp4"))
    for _ in range(index):
        cap.read()
    ok, frame = cap.read()
    assert ok
    return frame


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_contract(name: str) -> None:
    """Every registered detector: builds by name; on a close-up of one astronaut (a face of ~200 px,
    which the short-range model is made for too) finds that one face; boxes inside the frame and
    scores in [0, 1] on the two-face frame; nothing on a blank frame; the same frame, the same boxes."""
    model = None
    if name == "yunet":
        if YUNET is None:
            pytest.skip("YuNet needs an ONNX file; none in ../shared/models")
        model = YUNET
    if name == "yuface":
        need_extra("yuface", "yuface")
    det = create_detector(name, model)
    frame = _frame()
    close = cv2.resize(frame[60:300, 60:340], (560, 480), interpolation=cv2.INTER_LINEAR)
    found = [f for f in det.detect(close) if max(f.w, f.h) >= 60]
    assert len(found) == 1, (name, found)
    f0 = found[0]
    assert f0.x < 280 < f0.x + f0.w, f0  # the face, centre of the close-up's left half-ish
    h, w = frame.shape[:2]
    faces = det.detect(frame)
    assert all(isinstance(f, Face) for f in faces)
    for f in faces:
        assert 0 <= f.x and 0 <= f.y and f.x + f.w <= w and f.y + f.h <= h, f
        assert 0.0 <= f.score <= 1.0
    assert det.detect(np.full_like(frame, 128)) == []
    # Landmarks (right eye, left eye, nose, mouth) where the detector has them: inside the box, the
    # subject's right eye on the image's left, both eyes above the mouth; none for Haar.
    assert name in CROP_MAPS
    for f in [f0, *faces]:
        if name == "haar":
            assert f.landmarks is None
            continue
        assert f.landmarks is not None and f.landmarks.shape == (4, 2), f
        (rx, ry), (lx, ly), _, (_, my) = f.landmarks
        assert rx < lx and max(ry, ly) < my, f.landmarks
        assert (f.landmarks[:, 0] >= f.x - 0.1 * f.w).all() and (f.landmarks[:, 0] <= f.x + 1.1 * f.w).all(), (f, f.landmarks)
    again = det.detect(frame)
    assert [(f.x, f.y, f.w, f.h) for f in again] == [(f.x, f.y, f.w, f.h) for f in faces]


def test_unknown_detector_lists_the_registry() -> None:
    from fervideo.errors import ModelError

    with pytest.raises(ModelError) as e:
        create_detector("blazefase")
    for name in DETECTORS:
        assert name in str(e.value)


@pytest.mark.parametrize("codec", ["h264", "mp4v"])
@pytest.mark.parametrize("ext", list(ANNOTATED_CONTAINERS))
def test_writer_contract(ext: str, codec: str, tmp_path: Path) -> None:
    """Every container x codec the annotated writer offers: the frames written come back, same size
    and count, timestamps in order, and the picture survives (mean error small)."""
    if codec == "mp4v" and ext == ".mkv":
        pytest.skip("OpenCV's mp4v writer has no Matroska muxer")
    frames = [_frame(i) for i in range(12)]
    h, w = frames[0].shape[:2]
    out = tmp_path / f"o{ext}"
    from fractions import Fraction

    with open_writer(out, w, h, Fraction(25), codec=codec) as vw:
        assert isinstance(vw, AvWriter if codec == "h264" else Cv2Writer)
        for i, f in enumerate(frames):
            vw.write(f, i / 25)
    back = list(FrameReader(out))
    assert len(back) == len(frames), (ext, codec)
    assert back[0][2].shape == frames[0].shape
    times = [t for _, t, _ in back]
    assert times == sorted(times) and abs(times[-1] - 11 / 25) < 0.02, times
    err = np.abs(back[5][2].astype(int) - frames[5].astype(int)).mean()
    assert err < 6, (ext, codec, err)


@pytest.mark.parametrize(("h", "w"), [(360, 640), (480, 640), (640, 360), (1080, 1920), (100, 100)])
def test_retinaface_anchors_tile_the_network_output(h: int, w: int) -> None:
    """Our anchors (strides 8/16/32, two sizes a cell) line up one to one with the network's
    outputs at every input shape the detector feeds it, and the shipped file is the card's."""
    import hashlib

    from fervideo.faces import RETINAFACE, RetinaFace
    from fervideo.model_files import models_dir

    det = RetinaFace()
    frame = np.zeros((h, w, 3), np.uint8)
    assert det.detect(frame) == []
    ph, pw = det._shape
    rows = det.interpreter.get_tensor(det._out[2]).shape[1]
    assert len(det._anchors(ph, pw)) == rows
    card = (models_dir() / "README_retinaface.md").read_text()
    assert hashlib.sha256((models_dir() / RETINAFACE).read_bytes()).hexdigest() in card
