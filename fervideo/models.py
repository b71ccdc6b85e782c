"""Where the shipped models live, from a checkout and from an installed wheel, and the tier names.

In a checkout the files are in the top-level ``models/`` folder. The wheel maps that folder to the
package ``fervideo._models`` (see ``pyproject.toml``), so ``pip install .`` carries it too. The
environment variable ``FERVIDEO_MODEL`` overrides the default.

Two tiers ship, chosen with ``--model fast|accurate`` (or a path): ``fast`` is the 461k-parameter
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
# Tier name -> (TFLite file the tool runs, Keras file of the same network).
TIERS = {"fast": (DEFAULT_MODEL, DEFAULT_KERAS), "accurate": (ACCURATE_MODEL, ACCURATE_KERAS)}


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
    """The TFLite model the tool runs unless ``--model`` says otherwise."""
    env = os.environ.get("FERVIDEO_MODEL")
    if env:
        return Path(env)
    return models_dir() / DEFAULT_MODEL


def resolve_model(spec: str | Path | None) -> Path:
    """The model file for ``--model``: a tier name (``fast``, ``accurate``), a path, or None (default).

    A path that happens to be named like a tier (``./fast``) wins when it exists, so a user's own
    file is never shadowed by a shipped one.
    """
    if spec is None or spec == "":
        return default_model_path()
    name = str(spec)
    if name in TIERS and not Path(name).exists():
        return models_dir() / TIERS[name][0]
    return Path(spec)
