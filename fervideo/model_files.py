"""Where the shipped models live, from a checkout and from an installed wheel, and the tier names.

In a checkout the files are in the top-level ``models/`` folder. The wheel maps that folder to the
package ``fervideo._models`` (see ``pyproject.toml``), so ``pip install .`` carries it too. The
environment variable ``FERVIDEO_MODEL`` overrides the default.

Two tiers ship, chosen with ``--model fast|accurate`` (or a path), each in two precisions
(``--precision int8|float32``; default: accurate, int8): ``fast`` is the 461k-parameter
network trained on 2 CPU cores (~1,400 faces/s there), ``accurate`` the 10.5M-parameter
``vgg_lite_w96`` trained on a GPU (+5.6 points on PrivateTest at ~1/17 of the speed): see the model cards.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "fervideo_emotion.tflite"
DEFAULT_KERAS = "fervideo_emotion.keras"
ACCURATE_MODEL = "fervideo_emotion_accurate.tflite"
ACCURATE_KERAS = "fervideo_emotion_accurate.keras"
# Tier name -> (float TFLite file, Keras file of the same network). Each tier also has a
# full-integer int8 TFLite file (int8_name; made by scripts/make_int8.py, its own card README_int8.md).
# The wheel ships the TFLite files only (the GPU path runs the float file's graph); the .keras
# files are in the checkout, for training (--init, fine-tuning) and the model cards.
TIERS = {"fast": (DEFAULT_MODEL, DEFAULT_KERAS), "accurate": (ACCURATE_MODEL, ACCURATE_KERAS)}
# --precision: which of a tier's TFLite files the CPU runs. int8 is ~4x faster and a model of its own
# (its own measured accuracy, within 0.3 points of float32 on PrivateTest); float32 gives outputs
# equal to the GPU path's (which runs the same float file in PyTorch).
PRECISIONS = ("int8", "float32")
# What runs without --model/--precision, chosen by issue 23's rule: the accurate tier in int8 keeps
# `timeline` at >= 150 fps on the 640x360 single-face clip on 2 cores (185 fps measured, against
# 271 for fast int8) and is the more accurate tier end to end (benchmarks/README.md), so it is the default.
DEFAULT_TIER = "accurate"
DEFAULT_PRECISION = "int8"


def int8_name(tflite_name: str) -> str:
    """The int8 file of a tier's float32 ``.tflite`` name."""
    return tflite_name.removesuffix(".tflite") + "_int8.tflite"


def models_dir() -> Path:
    """The folder holding the shipped model files."""
    checkout = Path(__file__).resolve().parent.parent / "models"
    if (checkout / DEFAULT_MODEL).is_file():
        return checkout
    installed = Path(__file__).resolve().parent / "_models"
    if (installed / DEFAULT_MODEL).is_file():
        return installed
    return checkout


def default_model_path() -> Path:
    """The TFLite model the tool runs unless ``--model`` or ``--precision`` say otherwise."""
    env = os.environ.get("FERVIDEO_MODEL")
    if env:
        return Path(env)
    return resolve_model(DEFAULT_TIER, DEFAULT_PRECISION)


def resolve_model(spec: str | Path | None, precision: str = "float32") -> Path:
    """The model file for ``--model``: a tier name (``fast``, ``accurate``), a path, or None (the
    default tier, or ``FERVIDEO_MODEL``); ``precision`` picks a tier's int8 or float32 file (a path
    is taken as it is).

    A path that happens to be named like a tier (``./fast``) wins when it exists, so a user's own
    file is never shadowed by a shipped one.
    """
    if spec is None or spec == "":
        if os.environ.get("FERVIDEO_MODEL"):
            return default_model_path()
        spec = DEFAULT_TIER
    name = str(spec)
    if name in TIERS and not Path(name).exists():
        file = TIERS[name][0]
        return models_dir() / (int8_name(file) if precision == "int8" else file)
    return Path(spec)
