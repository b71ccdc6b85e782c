"""The analysis options every video command shares, named exactly like their CLI flags.

One dataclass, one ``validate()``: the CLI, the Python API (``analyse_video(video, stride=5)``)
and the batch workers all pass through it, so a value is checked in one place and an error names
the flag the user typed (``--smooth``), or, for the tuning fields that have no flag, the field.
Kept apart from :mod:`fervideo.pipeline` so that reading the options needs none of the stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fervideo.emotions.classifier import check_device
from fervideo.emotions.tta import check_tta
from fervideo.errors import UsageError
from fervideo.model_files import DEFAULT_PRECISION, PRECISIONS

# Fields without a CLI flag: how work is grouped, not what is computed (results do not depend on
# them; tests check the pipelined and plain paths and any batch split agree byte for byte).
TUNING_FIELDS = ("batch_frames", "queue_size", "detect_threads", "detect_size")


@dataclass
class Options:
    """Analysis options; each field is the flag of the same name (``min_face`` is ``--min-face``),
    except :data:`TUNING_FIELDS`."""

    detector: str = "blazeface"
    detector_model: str | None = None
    model: str | None = None
    device: str = "cpu"  # "cpu" (TFLite), "gpu" (PyTorch + CUDA), "auto", "torch-cpu": see make_classifier
    precision: str = DEFAULT_PRECISION  # a tier's int8 or float32 TFLite file (CPU path): see fervideo.model_files
    batch_size: int = 32  # faces per classifier call
    min_face: int = 20
    detect_every: int = 1
    stride: int = 1
    smooth: float = 0.0  # seconds (time constant of the per-face EMA; 0: off)
    tta: str = "off"  # "off", "flip" or "full": see fervideo.emotions.tta
    align: bool = True  # roll each crop upright by the detector's eye landmarks
    plain: bool = False  # one thread (the reference path the pipelined one must match)
    batch_frames: int = 8  # frames whose faces are gathered into one classifier call (at most)
    queue_size: int = 16  # frames in flight between the reader, analysis and writer threads (at most)
    detect_threads: int = 2
    detect_size: int = 640  # longest side the detector sees (retinaface, yunet, haar, yuface; BlazeFace has its own 192)

    def validate(self) -> None:
        for name in ("batch_size", "detect_every", "stride", *TUNING_FIELDS):
            if getattr(self, name) < 1:
                raise UsageError(None, f"{flag(name)} must be at least 1")
        if not math.isfinite(self.smooth) or self.smooth < 0:
            raise UsageError(None, "--smooth must be 0 (off) or a positive number of seconds")
        check_tta(self.tta)
        check_device(self.device)
        if self.precision not in PRECISIONS:
            raise UsageError(None, f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.min_face < 0:
            raise UsageError(None, "--min-face must be 0 or more pixels")

    @property
    def threaded(self) -> bool:
        return not self.plain

    @property
    def smoothing(self) -> bool:
        return self.smooth > 0


def flag(name: str) -> str:
    """How an error names field ``name``: its flag, or ``Options.name`` for a tuning field."""
    return f"Options.{name}" if name in TUNING_FIELDS else "--" + name.replace("_", "-")
