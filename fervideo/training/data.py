"""Load FER2013 from any of the three layouts people actually have on disk.

* ``fer2013.npz`` (``images``, ``labels``, ``usage``), the project's shared copy;
* the original Kaggle ``fer2013.csv`` (``emotion``, ``pixels``, ``Usage`` columns);
* the Kaggle image-folder layout ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``, where ``test``
  files named ``PublicTest_*`` / ``PrivateTest_*`` keep the official split (other names in ``test``
  count as PublicTest so model selection still has data, and PrivateTest stays empty).

Every loader returns a :class:`FerData` with the same split codes, so training and evaluation never
care which layout they got.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fervideo.errors import DataFormatError
from fervideo.labels import EMOTIONS

SPLITS = {"train": 0, "public": 1, "private": 2}
_USAGE_NAMES = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
_IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class FerData:
    """All faces of one data source with their labels and split codes (0 train, 1 public, 2 private)."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) uint8 in EMOTIONS order
    usage: np.ndarray  # (N,) uint8 split code
    source: str
    layout: str
    rows: np.ndarray | None = None  # (N,) row of each face in the source file; kept by subset()
    votes: np.ndarray | None = None  # (N, 10) FER+ votes in FER+ column order, where the file has them (npz)

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.arange(len(self.labels))

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images shaped (n, 48, 48, 1) and labels of one split: 'train', 'public' or 'private'."""
        mask = self.usage == SPLITS[name]
        return self.images[mask][..., None], self.labels[mask]

    def split_votes(self, name: str) -> np.ndarray | None:
        """The FER+ votes (n, 10) of one split, in the order of :meth:`split`; None when the data has none."""
        return None if self.votes is None else self.votes[self.usage == SPLITS[name]]

    def subset(self, per_split: int, seed: int = 0) -> FerData:
        """A stratified-by-chance sample of at most ``per_split`` faces per split (for quick runs)."""
        rng = np.random.default_rng(seed)
        keep = []
        for code in SPLITS.values():
            idx = np.flatnonzero(self.usage == code)
            if len(idx) > per_split:
                idx = np.sort(rng.choice(idx, per_split, replace=False))
            keep.append(idx)
        k = np.concatenate(keep)
        votes = None if self.votes is None else self.votes[k]
        return FerData(self.images[k], self.labels[k], self.usage[k], self.source, self.layout, self.rows[k], votes)


def load(path: str | Path) -> FerData:
    """Detect the layout at ``path`` and load it; one :class:`DataFormatError` if it is none of them."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(p, "no such file or directory")
    if p.is_dir():
        return _load_folder(p)
    if p.suffix.lower() == ".npz":
        return _load_npz(p)
    if p.suffix.lower() == ".csv":
        return _load_csv(p)
    raise DataFormatError(p, "not a FER2013 npz, fer2013.csv or train/ + test/ image folder (see README, 'Training data')")


def _load_npz(p: Path) -> FerData:
    try:
        with np.load(p) as z:
            images, labels, usage = z["images"], z["labels"], z["usage"]
            votes = z["ferplus_votes"] if "ferplus_votes" in z.files else None
    except (OSError, ValueError, KeyError) as e:
        raise DataFormatError(p, f"not a FER2013 npz with images/labels/usage arrays ({e})") from None
    if images.ndim != 3 or images.shape[1:] != (48, 48):
        raise DataFormatError(p, f"images must be (N, 48, 48), got {images.shape}")
    if votes is not None and votes.shape != (len(labels), 10):
        raise DataFormatError(p, f"ferplus_votes must be (N, 10) in FER+ column order, got {votes.shape}")
    return FerData(images.astype(np.uint8), labels.astype(np.uint8), usage.astype(np.uint8), str(p), "npz", votes=votes)


def _load_csv(p: Path) -> FerData:
    images, labels, usage = [], [], []
    try:
        with open(p, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
            if missing:
                raise DataFormatError(p, f"fer2013.csv needs columns emotion, pixels, Usage; missing {sorted(missing)}")
            for line, row in enumerate(reader, start=2):
                px = np.array(row["pixels"].split(), dtype=np.uint8)
                if px.size != 48 * 48 or row["Usage"] not in _USAGE_NAMES:
                    raise DataFormatError(p, f"line {line}: expected 2304 pixels and a known Usage")
                images.append(px.reshape(48, 48))
                labels.append(int(row["emotion"]))
                usage.append(_USAGE_NAMES[row["Usage"]])
    except UnicodeDecodeError:
        raise DataFormatError(p, "not a text CSV file") from None
    if not images:
        raise DataFormatError(p, "fer2013.csv has no rows")
    return FerData(np.stack(images), np.array(labels, np.uint8), np.array(usage, np.uint8), str(p), "csv")


def _load_folder(p: Path) -> FerData:
    import cv2

    if not (p / "train").is_dir() or not (p / "test").is_dir():
        raise DataFormatError(p, "image-folder layout needs train/<class>/ and test/<class>/ folders")
    images, labels, usage = [], [], []
    for top in ("train", "test"):
        for class_dir in sorted((p / top).iterdir()):
            if not class_dir.is_dir():
                continue
            if class_dir.name.lower() not in EMOTIONS:
                raise DataFormatError(class_dir, f"unknown class folder; expected one of {', '.join(EMOTIONS)}")
            label = EMOTIONS.index(class_dir.name.lower())
            for f in sorted(class_dir.iterdir()):
                if f.suffix.lower() not in _IMAGE_EXTS:
                    continue
                img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
                if img is None:
                    raise DataFormatError(f, "cannot decode image")
                if img.shape != (48, 48):
                    img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
                images.append(img)
                labels.append(label)
                if top == "train":
                    usage.append(0)
                else:
                    usage.append(2 if f.name.startswith("PrivateTest") else 1)
    if not images:
        raise DataFormatError(p, "no images found under train/ and test/")
    return FerData(np.stack(images), np.array(labels, np.uint8), np.array(usage, np.uint8), str(p), "folder")
