"""Where the shipped model lives, from a checkout and from an installed wheel.

In a checkout the files are in the top-level ``models/`` folder. The wheel maps that folder to the
package ``fervideo._models`` (see ``pyproject.toml``), so ``pip install .`` carries it too. The
environment variable ``FERVIDEO_MODEL`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "fervideo_emotion.tflite"
DEFAULT_KERAS = "fervideo_emotion.keras"


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
