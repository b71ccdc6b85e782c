"""The ``vgg_lite`` network in PyTorch: batched GPU inference and the GPU training engine.

Why PyTorch and not onnxruntime-gpu: the GPU machines we train on carry PyTorch (and no package
registry), so one optional dependency serves both GPU training (``fervideo train --engine torch``)
and GPU inference (``--device gpu``); onnxruntime-gpu would add a second CUDA stack and an ONNX
export step for inference alone. Keras 3 on the torch backend was measured at 530 ms a training
step on an H100, ~60x slower than this plain module.

The module mirrors :func:`fervideo.emotions.architectures.vgg_lite` layer for layer (same
normalisation, 3x3 convolutions without bias, batch norm with Keras' epsilon 1e-3, 2x2 max pooling,
global average pooling, dense softmax), so weights move both ways without loss:
:func:`load_keras_weights` reads a saved ``.keras`` file with h5py (no TensorFlow needed) and
:func:`keras_weights` gives the list ``keras.Model.set_weights`` takes. Tests check the two
frameworks agree to 1e-4 in float32.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.errors import MissingExtraError, ModelError
from fervideo.labels import EMOTIONS

BN_EPS = 1e-3  # Keras' BatchNormalization default (PyTorch's is 1e-5)


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError(None, "the GPU path needs PyTorch: pip install 'fervideo[gpu]' (or use --device cpu)") from None
    return torch


def build_vgg_lite(width: int, dropout: float = 0.4) -> Any:
    """``vgg_lite(width)`` as a ``torch.nn.Module``: raw pixels (N, 1, 48, 48) 0-255 in, logits out."""
    torch = import_torch()
    nn = torch.nn

    class VggLite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            c_in, c = 1, width
            for _ in range(4):
                for _ in range(2):
                    layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01), nn.ReLU(inplace=True)]
                    c_in = c
                layers.append(nn.MaxPool2d(2))
                c *= 2
            self.width = width
            self.features = nn.Sequential(*layers)
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(c_in, len(EMOTIONS))

        def forward(self, x: Any) -> Any:
            x = x / 127.5 - 1.0  # the Keras model's Rescaling(1/127.5, offset=-1)
            x = self.features(x).mean(dim=(2, 3))
            return self.fc(self.dropout(x))

    return VggLite()


def _keras_archive(path: Path) -> tuple[dict, Any]:
    try:
        z = zipfile.ZipFile(path)
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as e:
        raise ModelError(path, f"not a Keras 3 .keras file ({e})") from None
    try:
        import h5py
    except ImportError:
        raise MissingExtraError(None, "reading .keras weights without TensorFlow needs h5py: pip install 'fervideo[gpu]'") from None
    return config, h5py.File(io.BytesIO(weights), "r")


def load_keras_weights(path: str | Path) -> Any:
    """A ``vgg_lite`` module carrying the weights of a saved ``.keras`` model (read with h5py)."""
    torch = import_torch()
    path = Path(path)
    config, h5 = _keras_archive(path)
    name = config.get("config", {}).get("name", "")
    m = re.fullmatch(r"vgg_lite_w(\d+)", name)
    if not m:
        raise ModelError(path, f"the GPU path runs vgg_lite models; this is {name!r} (use --device cpu)")
    layers = h5["layers"]

    def ordered(prefix: str) -> list[str]:
        names = [k for k in layers if k == prefix or re.fullmatch(prefix + r"_\d+", k)]
        return sorted(names, key=lambda k: int(k.rsplit("_", 1)[1]) if k != prefix else 0)

    convs, bns = ordered("conv2d"), ordered("batch_normalization")
    net = build_vgg_lite(int(m.group(1)))
    t_convs = [x for x in net.features if isinstance(x, torch.nn.Conv2d)]
    t_bns = [x for x in net.features if isinstance(x, torch.nn.BatchNorm2d)]
    if len(convs) != len(t_convs) or len(bns) != len(t_bns):
        raise ModelError(path, "layer count does not match vgg_lite")
    with torch.no_grad():
        for k, conv in zip(convs, t_convs):
            conv.weight.copy_(torch.from_numpy(np.asarray(layers[k]["vars"]["0"]).transpose(3, 2, 0, 1).copy()))
        for k, bn in zip(bns, t_bns):
            v = layers[k]["vars"]
            for dst, i in ((bn.weight, "0"), (bn.bias, "1"), (bn.running_mean, "2"), (bn.running_var, "3")):
                dst.copy_(torch.from_numpy(np.asarray(v[i])))
        dense = layers["dense"]["vars"]
        net.fc.weight.copy_(torch.from_numpy(np.asarray(dense["0"]).T.copy()))
        net.fc.bias.copy_(torch.from_numpy(np.asarray(dense["1"])))
    return net.eval()


def keras_weights(net: Any) -> list[np.ndarray]:
    """The module's weights in the order ``vgg_lite(width).get_weights()`` lists them."""
    torch = import_torch()
    out: list[np.ndarray] = []
    for layer in net.features:
        if isinstance(layer, torch.nn.Conv2d):
            out.append(layer.weight.detach().cpu().numpy().transpose(2, 3, 1, 0))
        elif isinstance(layer, torch.nn.BatchNorm2d):
            out += [t.detach().cpu().numpy() for t in (layer.weight, layer.bias, layer.running_mean, layer.running_var)]
    out += [net.fc.weight.detach().cpu().numpy().T, net.fc.bias.detach().cpu().numpy()]
    return [np.ascontiguousarray(w, dtype=np.float32) for w in out]


def cuda_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device (False, not an error, otherwise)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class TorchClassifier:
    """7-class probabilities for 48x48 crops through the PyTorch module on ``device`` ("cuda" or
    "cpu": the CPU runs the same code path, which is how CPU-only CI tests it).

    Large batches: a GPU is fed thousands of faces per call (the pipeline gathers faces from many
    frames), which is where it beats the CPU; float32 throughout so results match TFLite to ~1e-5.
    """

    def __init__(self, keras_path: str | Path, device: str = "cuda", batch_size: int = 1024, tta: str = "off") -> None:
        from fervideo.emotions.classifier import TTA_MODES

        torch = import_torch()
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}, not {tta!r}")
        self.torch, self.device, self.tta = torch, device, tta
        self.batch_size = max(1, int(batch_size))
        self.path = Path(keras_path)
        self.net = load_keras_weights(keras_path).to(device)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities (n, 7) float32 for uint8 crops (n, 48, 48) or (n, 48, 48, 1)."""
        from fervideo.emotions.classifier import INPUT_SIZE, tta_views

        crops = np.asarray(crops)
        n = len(crops)
        if n == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        crops = crops.reshape(n, INPUT_SIZE, INPUT_SIZE)
        views = tta_views(crops, self.tta) if self.tta != "off" else crops
        probs = self._run(views)
        return probs.reshape(-1, n, len(EMOTIONS)).mean(axis=0, dtype=np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                t = torch.from_numpy(np.ascontiguousarray(x[i : i + self.batch_size])).to(self.device, non_blocking=True)
                logits = self.net(t.float().unsqueeze(1))
                out.append(torch.softmax(logits, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
