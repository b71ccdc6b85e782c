"""Batched emotion inference through TFLite (XNNPACK) on the CPU.

TFLite ran mini-Xception at ~9,000 faces/s on two cores against ~500-1,000 for ``model.predict``,
and ai-edge-litert imports in 0.1 s where TensorFlow takes ~4 s, so the tool never imports
TensorFlow to classify. A ``.keras`` file given with ``--model`` is still accepted (through Keras,
slower start) so a freshly trained model can be tried before export.

Batches are gathered across frames (one call per window of frames, not per face) and run through
interpreters sized by powers of two up to ``batch_size`` (a batch of 9 runs as 8 + 1, never
padded to 16).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

# Test-time augmentation lives in .tta; its names stay importable from here.
from fervideo.emotions.tta import INPUT_SIZE, TTA_MODES, check_tta, tta_views  # noqa: F401
from fervideo.errors import ModelError
from fervideo.labels import EMOTIONS
from fervideo.model_files import DEFAULT_PRECISION, resolve_model
from fervideo.runtime import make_interpreter


class Classifier(Protocol):
    """What the pipeline needs of a classifier (TFLite :class:`EmotionClassifier`, PyTorch
    :class:`~fervideo.emotions.torch_net.TorchClassifier`, or a user's own)."""

    # True where cost per face falls with the batch (a GPU): the pipeline then gathers faces from
    # many frames per call. The CPU's cost per face is flat in the batch size.
    large_batches: bool

    def predict(self, crops: np.ndarray) -> np.ndarray: ...


class EmotionClassifier:
    """7-class probabilities for 48x48 grayscale crops, many at a time."""

    large_batches = False

    def __init__(
        self, model_path: str | Path | None = None, batch_size: int = 32, num_threads: int | None = None, tta: str = "off", precision: str = DEFAULT_PRECISION
    ) -> None:
        """``tta``: test-time augmentation, one of :data:`TTA_MODES`. "flip" buys ~1.5 points on
        FER2013 PrivateTest for twice the classifier cost, "full" more for 18 times the cost (see
        the model card for both)."""
        check_tta(tta)
        self.tta = tta
        path = resolve_model(model_path, precision)
        if not path.is_file():
            raise ModelError(path, missing_model_message(model_path))
        self.path = path
        self.batch_size = max(1, int(batch_size))
        self._threads = num_threads or min(2, os.cpu_count() or 1)
        self._sized: dict[int, tuple[object, int, int]] = {}
        self._quantized = False
        if path.suffix == ".keras":
            self._keras = load_keras_model(path)
            return
        self._keras = None
        self._interpreter(_floor_power_of_two(self.batch_size))  # load and check the model now, not at the first face

    def _interpreter(self, size: int) -> tuple[object, int, int]:
        """An interpreter sized for ``size`` faces (one per power of two, created on first use).

        A face's probabilities do not depend on the batch it is computed in (XNNPACK computes each
        row alike; a test checks it), so a batch can be split into any sizes: see
        :func:`_power_of_two_parts`.
        """
        entry = self._sized.get(size)
        if entry is not None:
            return entry
        it = make_interpreter(self.path, self._threads)
        det = it.get_input_details()  # type: ignore[attr-defined]
        shape = list(det[0]["shape"])
        if len(shape) != 4 or shape[1:] != [INPUT_SIZE, INPUT_SIZE, 1]:
            raise ModelError(self.path, f"model input must be (N, 48, 48, 1), got {tuple(shape)}")
        out = it.get_output_details()[0]  # type: ignore[attr-defined]
        if list(out["shape"])[-1] != len(EMOTIONS):
            raise ModelError(self.path, f"model must output {len(EMOTIONS)} probabilities, got shape {tuple(out['shape'])}")
        it.resize_tensor_input(det[0]["index"], [size, INPUT_SIZE, INPUT_SIZE, 1])  # type: ignore[attr-defined]
        it.allocate_tensors()  # type: ignore[attr-defined]
        entry = (it, det[0]["index"], out["index"])
        self._quantized = any(d["dtype"] == np.int8 for d in it.get_tensor_details())  # type: ignore[attr-defined]
        self._sized[size] = entry
        return entry

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities (n, 7) float32 for uint8 crops (n, 48, 48) or (n, 48, 48, 1)."""
        crops = np.asarray(crops)
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        if self.tta != "off":
            # One pass over all views together (fuller batches), then the mean per face.
            views = tta_views(crops.reshape(n, INPUT_SIZE, INPUT_SIZE), self.tta)
            probs = self._run(views.reshape(-1, INPUT_SIZE, INPUT_SIZE, 1).astype(np.float32))
            return probs.reshape(-1, n, len(EMOTIONS)).mean(axis=0, dtype=np.float32)
        return self._run(crops.reshape(n, INPUT_SIZE, INPUT_SIZE, 1).astype(np.float32))

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if self._keras is not None:
            return np.asarray(self._keras(x, training=False), np.float32)
        out = np.empty((n, len(EMOTIONS)), np.float32)
        start = 0
        for size in _power_of_two_parts(n, self.batch_size):
            it, i_in, i_out = self._interpreter(size)
            it.set_tensor(i_in, x[start : start + size])  # type: ignore[attr-defined]
            it.invoke()  # type: ignore[attr-defined]
            out[start : start + size] = it.get_tensor(i_out)  # type: ignore[attr-defined]
            start += size
        if self._quantized:
            # An int8 model's softmax comes out in steps of 1/256, so a face's probabilities can sum
            # to 0.98-1.02; rescaled to a distribution (the top class is unchanged).
            out /= out.sum(axis=1, keepdims=True)
        return out


def _power_of_two_parts(n: int, largest: int) -> list[int]:
    """Split ``n`` faces into batches whose sizes are powers of two, none above ``largest``.

    XNNPACK's cost per face is flat in the batch size (0.63 ms at 1 face, 0.57 ms at 32, measured
    here), so padding a batch up to an interpreter's size is pure waste: 9 faces padded to 16 cost
    1.06 ms each. 9 = 8 + 1 costs nothing extra and needs at most log2(largest) + 1 interpreters.
    """
    cap = _floor_power_of_two(largest)
    parts = []
    while n > 0:
        size = min(cap, _floor_power_of_two(n))
        parts.append(size)
        n -= size
    return parts


def _floor_power_of_two(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def load_keras_model(path: str | Path) -> Any:
    """A saved emotion model through Keras, with the errors users can cause as one :class:`ModelError`."""
    try:
        from fervideo.emotions.architectures import import_keras

        model = import_keras().saving.load_model(path, compile=False)
    except (ValueError, OSError, TypeError) as e:
        raise ModelError(path, f"cannot load Keras model ({str(e).splitlines()[0]})") from None
    if tuple(model.input_shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 1):
        raise ModelError(path, f"model input must be (N, 48, 48, 1), got {model.input_shape}")
    return model


def check_device(device: str) -> None:
    """One check for ``--device``, used by the CLI's option validation and by direct library calls."""
    from fervideo.errors import UsageError

    if device not in DEVICES:
        raise UsageError(None, f"--device must be one of {', '.join(DEVICES)} (got {device!r})")


def missing_model_message(spec: str | Path | None) -> str:
    """What to say when ``--model`` names no file: a bare word (``fastest``) was most likely meant
    as a tier, so the line lists the tiers (issue 25)."""
    from fervideo.model_files import TIERS

    tiers = " or ".join(TIERS)
    if spec is not None and os.sep not in str(spec) and not Path(str(spec)).suffix:
        return f"emotion model file not found: --model takes a tier ({tiers}) or a .tflite/.keras path"
    return f"emotion model file not found (--model takes a tier, {tiers}, or a .tflite/.keras path)"


def _on_cpu(model: str | Path | None, batch_size: int, tta: str, precision: str, notice: Any) -> Classifier:
    return EmotionClassifier(model, batch_size=batch_size, tta=tta, precision=precision)


def _on_torch(model: str | Path | None, batch_size: int, tta: str, where: str) -> Classifier:
    """The GPU path runs a tier's float TFLite file (its graph, in PyTorch): the same weights as
    --precision float32 on the CPU, shipped once. int8 is a CPU model of its own."""
    from fervideo.emotions import torch_net

    return torch_net.TorchClassifier(resolve_model(model, "float32"), device=where, batch_size=max(batch_size, 1024), tta=tta)


def _on_gpu(model: str | Path | None, batch_size: int, tta: str, precision: str, notice: Any) -> Classifier:
    from fervideo.emotions import torch_net
    from fervideo.errors import UsageError

    if not torch_net.cuda_available():
        torch_net.import_torch()  # the missing-extra error first, if that is the reason
        raise UsageError(None, "--device gpu: PyTorch sees no CUDA GPU on this machine; use --device cpu or auto")
    return _on_torch(model, batch_size, tta, "cuda")


def _auto(model: str | Path | None, batch_size: int, tta: str, precision: str, notice: Any) -> Classifier:
    from fervideo.emotions import torch_net

    if torch_net.cuda_available():
        return _on_torch(model, batch_size, tta, "cuda")
    if notice is not None:
        notice("--device auto: no CUDA GPU usable here (PyTorch with CUDA needed: pip install 'fervideo[gpu]'); classifying on the CPU")
    return _on_cpu(model, batch_size, tta, precision, notice)


def _torch_cpu(model: str | Path | None, batch_size: int, tta: str, precision: str, notice: Any) -> Classifier:
    return _on_torch(model, batch_size, tta, "cpu")


# --device name -> the classifier it builds: TFLite on the CPU, PyTorch on a CUDA GPU, the GPU when
# one is usable else the CPU with one notice, or the GPU code path run on the CPU (how CPU-only
# machines test it).
DEVICES: dict[str, Callable[[str | Path | None, int, str, str, Any], Classifier]] = {
    "cpu": _on_cpu,
    "gpu": _on_gpu,
    "auto": _auto,
    "torch-cpu": _torch_cpu,
}


def make_classifier(
    model: str | Path | None, batch_size: int = 32, tta: str = "off", device: str = "cpu", notice: Any = None, precision: str = DEFAULT_PRECISION
) -> Classifier:
    """The classifier for ``--device`` (see :data:`DEVICES`); ``notice`` receives a fallback line."""
    check_device(device)
    return DEVICES[device](model, batch_size, tta, precision, notice)
