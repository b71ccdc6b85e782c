"""The ``vgg_lite`` network in PyTorch: batched GPU inference and the GPU training engine.

Why PyTorch and not onnxruntime-gpu: the GPU machines we train on carry PyTorch (and no package
registry), so one optional dependency serves both GPU training (``fervideo train --engine torch``)
and GPU inference (``--device gpu``); onnxruntime-gpu would add a second CUDA stack and an ONNX
export step for inference alone. Keras 3 on the torch backend was measured at 530 ms a training
step on an H100, ~60x slower than this plain module.

The network is not defined here: :func:`build_vgg_lite` walks the layer list of
:func:`fervideo.emotions.specs.vgg_lite_layers`, as the Keras build does, and names each submodule
as the spec names the layer, so weights move both ways by name without loss:
:func:`load_keras_weights` reads a saved ``.keras`` file with h5py (no TensorFlow needed) and
:func:`keras_weights` gives each Keras layer's ``set_weights`` list. Tests check the two
frameworks agree to 1e-4 in float32.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.emotions.specs import BN_EPS, ArchSpec, parse_arch, vgg_lite_layers
from fervideo.errors import MissingExtraError, ModelError, UsageError
from fervideo.labels import EMOTIONS


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingExtraError(None, "the GPU path needs PyTorch: pip install 'fervideo[gpu]' (or use --device cpu)") from None
    return torch


def build_vgg_lite(spec: ArchSpec | int) -> Any:
    """``vgg_lite`` (:func:`fervideo.emotions.specs.vgg_lite_layers`, where it is defined) as a
    ``torch.nn.Module``: raw pixels (N, 1, 48, 48) 0-255 in, logits out (the softmax is the loss's).
    Its submodules carry the spec's layer names, the names the Keras build gives its layers."""
    torch = import_torch()
    nn = torch.nn
    spec = spec if isinstance(spec, ArchSpec) else ArchSpec("vgg_lite", spec)
    listed = vgg_lite_layers(spec)

    class VggLite(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            body: dict[str, Any] = {}
            c_in = 1
            for layer in listed:
                if layer.kind == "conv":
                    body[layer.name] = nn.Conv2d(c_in, layer.units, 3, padding=1, bias=False)
                    c_in = layer.units
                elif layer.kind == "bn":
                    body[layer.name] = nn.BatchNorm2d(c_in, eps=BN_EPS, momentum=0.01)  # Keras' momentum 0.99
                elif layer.kind == "relu":
                    body[layer.name] = nn.ReLU(inplace=True)
                elif layer.kind == "pool":
                    body[layer.name] = nn.MaxPool2d(2)
            self.spec = spec
            self.features = nn.Sequential(OrderedDict(body))
            head = {layer.kind: layer for layer in listed}
            self.dropout = nn.Dropout(head["dropout"].rate)
            self.probs = nn.Linear(c_in, head["dense"].units)

        def forward(self, x: Any) -> Any:
            x = x / 127.5 - 1.0  # the Keras model's Rescaling(1/127.5, offset=-1)
            x = self.features(x).mean(dim=(2, 3))  # global average pooling
            return self.probs(self.dropout(x))

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


def keras_file_weights(path: str | Path) -> tuple[ArchSpec, dict[str, list[np.ndarray]]]:
    """A saved ``vgg_lite`` model's weights by the spec's layer names, read with h5py (no TensorFlow).

    Keras 3 files store a layer's weights under its class and rank (``conv2d_3``: the fourth
    Conv2D in the model's layer list), not its name; the file's config lists the layers in that
    order, which ties each name to its weights. Files saved before the layers had the spec's names
    (``conv2d_8``...) get them by kind and order (the i-th Conv2D is the spec's i-th conv).
    """
    path = Path(path)
    config, h5 = _keras_archive(path)
    try:
        spec = parse_arch(config.get("config", {}).get("name", ""))
    except UsageError:
        spec = None
    if spec is None or spec.family != "vgg_lite":
        raise ModelError(path, f"the GPU path runs vgg_lite models; this is {config.get('config', {}).get('name', '?')!r} (use --device cpu)")
    seen: dict[str, int] = {}
    stored: list[tuple[str, str, list[np.ndarray]]] = []  # (class, name, weights) in the file's layer order
    for layer in config["config"]["layers"]:
        cls = layer["class_name"]
        key = re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower().replace("2_d", "2d")
        j = seen.get(key, 0)
        seen[key] = j + 1
        group = h5["layers"].get(key if j == 0 else f"{key}_{j}")
        vars_ = group.get("vars") if group is not None else None
        stored.append((cls, layer["config"]["name"], [np.asarray(vars_[k]) for k in sorted(vars_, key=int)] if vars_ is not None else []))
    wanted = [layer for layer in vgg_lite_layers(spec) if layer.kind in ("conv", "bn", "dense")]
    by_name = {name: w for _, name, w in stored}
    if all(layer.name in by_name for layer in wanted):
        return spec, {layer.name: by_name[layer.name] for layer in wanted}
    kinds = {"conv": "Conv2D", "bn": "BatchNormalization", "dense": "Dense"}
    out: dict[str, list[np.ndarray]] = {}
    for kind, cls in kinds.items():
        mine = [layer.name for layer in wanted if layer.kind == kind]
        theirs = [w for c, _, w in stored if c == cls]
        if len(mine) != len(theirs):
            raise ModelError(path, f"layer count does not match {spec.name} ({len(theirs)} {cls} layers, expected {len(mine)})")
        out.update(zip(mine, theirs))
    return spec, out


def load_keras_weights(path: str | Path) -> Any:
    """A ``vgg_lite`` module carrying the weights of a saved ``.keras`` model, layer by layer name."""
    torch = import_torch()
    spec, weights = keras_file_weights(path)
    net = build_vgg_lite(spec)
    modules = dict(net.features.named_children()) | {"probs": net.probs}
    with torch.no_grad():
        for name, w in weights.items():
            m = modules[name]
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.from_numpy(w[0].transpose(3, 2, 0, 1).copy()))  # HWIO -> OIHW
            elif isinstance(m, torch.nn.BatchNorm2d):
                for dst, v in zip((m.weight, m.bias, m.running_mean, m.running_var), w):
                    dst.copy_(torch.from_numpy(v))
            else:
                m.weight.copy_(torch.from_numpy(w[0].T.copy()))
                m.bias.copy_(torch.from_numpy(w[1]))
    return net.eval()


def keras_weights(net: Any) -> dict[str, list[np.ndarray]]:
    """The module's weights by layer name, in Keras' layouts (what ``Layer.set_weights`` takes)."""
    torch = import_torch()
    out: dict[str, list[np.ndarray]] = {}
    for name, layer in net.features.named_children():
        if isinstance(layer, torch.nn.Conv2d):
            out[name] = [layer.weight.detach().cpu().numpy().transpose(2, 3, 1, 0)]
        elif isinstance(layer, torch.nn.BatchNorm2d):
            out[name] = [t.detach().cpu().numpy() for t in (layer.weight, layer.bias, layer.running_mean, layer.running_var)]
    out["probs"] = [net.probs.weight.detach().cpu().numpy().T, net.probs.bias.detach().cpu().numpy()]
    return {k: [np.ascontiguousarray(w, dtype=np.float32) for w in v] for k, v in out.items()}


def legacy_state_dict(net: Any, state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint (``last.pt``/``best.pt``) saved before the layers had names (``features.0``,
    ``fc``) in this module's names: the same tensors in the same order, shapes checked."""
    mine = net.state_dict()
    if set(state) == set(mine):
        return state
    if len(state) != len(mine) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(state.values(), mine.values())):
        raise ModelError(None, "checkpoint does not match this network's layers")
    return dict(zip(mine, state.values()))


def module_from_tflite(path: str | Path) -> Any:
    """A module that runs a float ``.tflite`` file's own graph (:mod:`.tflite_graph`) in PyTorch:
    raw pixels (N, 1, 48, 48) 0-255 in, probabilities out. The shipped tiers reach the GPU this way,
    so their weights ship once (in the TFLite file) and the GPU computes what the CPU float path
    does (~1e-6 apart), batch norm folded as the converter folded it.

    4-D activations are kept NCHW (PyTorch's layout) and the file's NHWC axes are mapped onto it.
    """
    from fervideo.emotions.tflite_graph import read_graph

    torch = import_torch()
    nn, F = torch.nn, torch.nn.functional
    graph = read_graph(path)
    nhwc_to_nchw = {0: 0, 1: 2, 2: 3, 3: 1}

    class TfliteModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.graph = graph
            weights = {}
            for op in graph.ops:
                if op.kind == "CONV_2D":
                    weights[str(op.inputs[1])] = torch.from_numpy(graph.consts[op.inputs[1]].transpose(0, 3, 1, 2).copy())  # OHWI -> OIHW
                elif op.kind == "FULLY_CONNECTED":
                    weights[str(op.inputs[1])] = torch.from_numpy(graph.consts[op.inputs[1]].copy())
                for i in op.inputs[1:]:
                    if i >= 0 and i in graph.consts and str(i) not in weights:
                        weights[str(i)] = torch.from_numpy(np.array(graph.consts[i]))
            self.weights = nn.ParameterDict({k: nn.Parameter(v, requires_grad=False) for k, v in weights.items() if v.is_floating_point()})
            self.ints = {k: v.numpy() for k, v in weights.items() if not v.is_floating_point()}

        def _const(self, i: int, like: Any) -> Any:
            w = self.weights[str(i)]
            if like.dim() == 4 and w.dim() == 1 and w.numel() > 1:
                return w.view(1, -1, 1, 1)  # a per-channel constant on an NCHW tensor
            return w

        def forward(self, x: Any) -> Any:
            values: dict[int, Any] = {graph.input: x}

            def arg(i: int, like: Any = None) -> Any:
                return values[i] if i in values else self._const(i, like if like is not None else values[graph.input])

            for op in graph.ops:
                a = values[op.inputs[0]] if op.inputs[0] in values else None
                o = op.options
                if op.kind in ("MUL", "ADD"):
                    lhs, rhs = arg(op.inputs[0]), arg(op.inputs[1], a)
                    y = lhs * rhs if op.kind == "MUL" else lhs + rhs
                elif op.kind == "CONV_2D":
                    w = self.weights[str(op.inputs[1])]
                    bias = self.weights[str(op.inputs[2])] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
                    a = _same_pad(F, a, w.shape[2:], o["stride"], o["dilation"], 0.0) if o["same"] else a
                    y = F.conv2d(a, w, bias, stride=o["stride"], dilation=o["dilation"])
                elif op.kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                    fill = float("-inf") if op.kind == "MAX_POOL_2D" else 0.0
                    a = _same_pad(F, a, o["size"], o["stride"], (1, 1), fill) if o["same"] else a
                    pool = F.max_pool2d if op.kind == "MAX_POOL_2D" else F.avg_pool2d
                    y = pool(a, o["size"], o["stride"])
                elif op.kind == "MEAN":
                    axes = [int(v) for v in np.atleast_1d(self.ints[str(op.inputs[1])])]
                    dims = [nhwc_to_nchw[d % 4] for d in axes] if a.dim() == 4 else axes
                    y = a.mean(dim=dims, keepdim=o["keep_dims"])
                elif op.kind == "FULLY_CONNECTED":
                    if a.dim() == 4:
                        a = a.permute(0, 2, 3, 1)  # flatten in the file's NHWC order
                    a = a.reshape(a.shape[0], -1)
                    bias = self.weights[str(op.inputs[2])] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
                    y = F.linear(a, self.weights[str(op.inputs[1])], bias)
                elif op.kind == "SOFTMAX":
                    y = torch.softmax(a * o["beta"], dim=-1)
                elif op.kind == "RESHAPE":
                    if a.dim() == 4:
                        a = a.permute(0, 2, 3, 1)
                    shape = list(graph.shapes[op.outputs[0]])
                    y = a.reshape([a.shape[0], *shape[1:]])
                    if y.dim() == 4:
                        y = y.permute(0, 3, 1, 2)
                else:  # RELU
                    y = a
                act = o.get("act") if op.kind != "RELU" else "relu"
                if act == "relu":
                    y = torch.relu(y)
                elif act == "relu6":
                    y = torch.clamp(y, 0.0, 6.0)
                values[op.outputs[0]] = y
            return values[graph.output]

    return TfliteModule().eval()


def _same_pad(F: Any, x: Any, kernel: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int], fill: float) -> Any:
    """TensorFlow's SAME padding (the extra pixel, if any, after), as an explicit pad."""
    pads = []
    for size, k, st, d in zip(x.shape[2:], kernel, stride, dilation):
        total = max((-(-int(size) // st) - 1) * st + (int(k) - 1) * d + 1 - int(size), 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=fill)


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

    large_batches = True  # torch-cpu too: it is the GPU's code path, run where no GPU is

    def __init__(self, model_path: str | Path, device: str = "cuda", batch_size: int = 1024, tta: str = "off") -> None:
        """``model_path``: a float ``.tflite`` (the tiers: its graph, :func:`module_from_tflite`)
        or a ``.keras`` file of a ``vgg_lite`` model (a user's own; read with h5py)."""
        from fervideo.emotions.tta import check_tta

        torch = import_torch()
        check_tta(tta)
        self.torch, self.device, self.tta = torch, device, tta
        self.batch_size = max(1, int(batch_size))
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(self.path, "emotion model file not found")
        self._probs = self.path.suffix != ".keras"  # a TFLite graph ends in its own softmax
        self.net = (module_from_tflite(self.path) if self._probs else load_keras_weights(self.path)).to(device)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities (n, 7) float32 for uint8 crops (n, 48, 48) or (n, 48, 48, 1)."""
        from fervideo.emotions.tta import INPUT_SIZE, tta_views

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
                y = self.net(t.float().unsqueeze(1))
                out.append((y if self._probs else torch.softmax(y, dim=1)).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
