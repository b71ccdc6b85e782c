"""Training and evaluation of the emotion CNN, kept apart from inference (nothing here is imported
by the video commands). :func:`run` is what ``fervideo train`` calls: check the config, train with
the chosen engine, export the best model to TFLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fervideo.training.config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "run"]


@dataclass
class TrainResult:
    best: Path  # best.keras (or best.pt: a torch run where Keras is not installed)
    tflite: Path | None  # the exported model.tflite; None when there is no Keras to export with


def run(config: TrainConfig, out: str | Path, resume: bool = False, epochs: int | None = None) -> TrainResult:
    """Train (or resume) into the run folder ``out`` with ``config.engine`` and export ``model.tflite``.

    Checked before TensorFlow or PyTorch loads and before the folder is touched. On resume the
    folder's saved config is the run's (its engine included); ``epochs`` may change its length.
    """
    out = Path(out)
    config.validate()
    if config.engine == "torch":
        from fervideo.training.torch_engine import train_torch

        best = train_torch(config, out, resume=resume, epochs=epochs)
        if best.suffix != ".keras":
            return TrainResult(best, None)
    else:
        from fervideo.training.train import train

        best = train(config, out, resume=resume, epochs=epochs)
    tflite = None
    if best.exists():
        from fervideo.training.export import export_tflite

        tflite = export_tflite(best, out / "model.tflite")
    return TrainResult(best, tflite)
