"""What defines a training run (:class:`TrainConfig`, saved as ``state.json``) and its checks.

Checked here, before TensorFlow or PyTorch loads and before the run folder is touched, so a wrong
value is one line naming its flag (the fields are the ``fervideo train`` flags), whichever front
end built the config.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fervideo.emotions.specs import ARCHITECTURES, parse_arch
from fervideo.errors import ModelError, UsageError
from fervideo.training.ferplus import BALANCES, parse_targets

ENGINES = ("keras", "torch")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
ZOOM = (0.15, 0.1)  # the shipped tiers' scale augmentation: in, out (fractions of the side)


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``state.json`` so ``--resume`` needs no repetition."""

    data: str
    arch: str = "vgg_lite"
    engine: str = "keras"
    epochs: int = 60
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup_epochs: int = 2
    patience: int = 15
    limit: int | None = None
    seed: int = 1234
    precision: str = "auto"
    init: str | None = None
    teacher: str | None = None
    distill: float = 0.5
    teacher_tta: str = "flip"
    teacher_probs: str | None = None
    teacher_temperature: float = 1.0
    # Scale augmentation: each face zoomed in by up to zoom_in, out by up to zoom_out (fractions of
    # the side). The defaults are the shipped tiers' recipe; the pipeline's crop varies the framing
    # by ~12-15% (1.4826 MAD of the detectors' boxes against FER2013's squares, scripts/fit_crop.py),
    # so --zoom 0.25 covers about two spreads each way (issue 21).
    zoom_in: float = ZOOM[0]
    zoom_out: float = ZOOM[1]
    # What the run learns (issue 33): fer2013 (the labels, the intended expression), ferplus (the
    # FER+ vote distributions, what people see) or mix:W; and how classes are balanced: weights
    # (per-face loss weights from the targets in use), prior (targets divided by the square root
    # of their class share), both, or none.
    targets: str = "fer2013"
    balance: str = "weights"
    data_sha256: str = ""
    command: str = field(default_factory=lambda: " ".join(shlex.quote(a) for a in sys.argv))

    def validate(self) -> None:
        """Usage errors (exit 2) for values no run can use; a missing --init/--teacher model is a model error (exit 4)."""
        if self.arch not in ARCHITECTURES:
            raise UsageError(None, f"unknown --arch {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.engine not in ENGINES:
            raise UsageError(None, f"unknown --engine {self.engine!r}; choose keras or torch")
        if self.engine == "torch":
            if parse_arch(self.arch).family != "vgg_lite":
                raise UsageError(None, f"--engine torch trains the vgg_lite family (vgg_lite, vgg_lite_w32/w64/w96), not {self.arch!r}")
            if self.teacher is not None:
                raise UsageError(None, "--engine torch takes --teacher-probs, not --teacher")
            if (self.zoom_in, self.zoom_out) != ZOOM:
                raise UsageError(None, "--zoom is for --engine keras (the torch engine zooms 0.85-1.15)")
        parse_targets(self.targets)
        if self.balance not in BALANCES:
            raise UsageError(None, f"unknown --balance {self.balance!r}; choose one of {', '.join(BALANCES)}")
        if self.patience < 1:
            raise UsageError(None, "--patience must be at least 1")
        if self.precision not in PRECISIONS:
            raise UsageError(None, f"unknown --precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.epochs < 1:
            raise UsageError(None, "--epochs must be at least 1")
        if not 0.0 <= self.distill <= 1.0:
            raise UsageError(None, "--distill must be between 0 and 1")
        if self.teacher_tta not in ("flip", "full"):
            raise UsageError(None, "--teacher-tta must be flip or full")
        if self.warmup_epochs < 0:
            raise UsageError(None, "--warmup-epochs must be 0 or more")
        if self.teacher is not None and self.teacher_probs is not None:
            raise UsageError(None, "give --teacher or --teacher-probs, not both")
        if self.teacher_temperature <= 0:
            raise UsageError(None, "--teacher-temperature must be above 0")
        if not (0.0 <= self.zoom_in < 0.9 and 0.0 <= self.zoom_out < 0.9):
            raise UsageError(None, "--zoom must be between 0 and 0.9")
        if self.teacher_probs is not None and not Path(self.teacher_probs).is_file():
            raise UsageError(Path(self.teacher_probs), "--teacher-probs file not found")
        for flag, path in (("--init", self.init), ("--teacher", self.teacher)):
            if path is not None and not Path(path).is_file():
                raise ModelError(Path(path), f"{flag} model file not found")
