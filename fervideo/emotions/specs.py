"""The emotion networks as data: one registry of architecture specs, one parser of their names, and
``vgg_lite``'s layers listed once with their names.

Two frameworks build these networks: Keras (:mod:`.architectures`: CPU training, export to TFLite)
and PyTorch (:mod:`.torch_net`: the GPU training engine). Neither defines a network of its own:
both walk :func:`vgg_lite_layers`, so the layer sequence, the sizes and the *names* exist in one
place, and weights move between the frameworks by layer name (``block2_conv1`` in Keras is
``block2_conv1`` in PyTorch), never by position. Importing this module imports no framework.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from fervideo.errors import UsageError
from fervideo.labels import EMOTIONS

INPUT_SHAPE = (48, 48, 1)
BN_EPS = 1e-3  # Keras' BatchNormalization default; the PyTorch build uses it too (PyTorch's own is 1e-5)
VGG_BLOCKS = 4  # conv-conv-pool blocks; 48 -> 3 pixels


@dataclass(frozen=True)
class ArchSpec:
    """What builds a network: its family and size. ``name`` is the model's own name inside a saved
    file (``vgg_lite_w20``), which is how a file tells which network it holds."""

    family: Literal["vgg_lite", "resnet_lite", "mini_xception"]
    width: int = 0
    blocks: tuple[int, ...] = ()
    dropout: float = 0.4

    @property
    def name(self) -> str:
        return "mini_xception" if self.family == "mini_xception" else f"{self.family}_w{self.width}"


ARCHITECTURES: dict[str, ArchSpec] = {
    # Default: width 20 runs ~1,700 faces/s through TFLite on 2 CPU cores (width 32: ~930, width
    # 24: ~1,300, measured here), and trains ~2x faster per epoch than width 32, so a fixed
    # CPU budget buys more epochs.
    "vgg_lite": ArchSpec("vgg_lite", 20),
    "vgg_lite_w32": ArchSpec("vgg_lite", 32),
    # The accurate tier's widths, trained on a GPU (shared/gpu/torch_train.py recipe): too slow to
    # train on 2 CPU cores, but the same code builds them so a GPU run can resume or fine-tune them.
    "vgg_lite_w64": ArchSpec("vgg_lite", 64),
    "vgg_lite_w96": ArchSpec("vgg_lite", 96),
    "resnet_lite": ArchSpec("resnet_lite", 32, (1, 2, 2), 0.3),
    "resnet_lite_wide": ArchSpec("resnet_lite", 48, (2, 2, 2), 0.3),
    "resnet_lite_small": ArchSpec("resnet_lite", 24, (1, 1, 1), 0.3),
    "mini_xception": ArchSpec("mini_xception", dropout=0.0),
}
_VGG_NAME = re.compile(r"vgg_lite_w(\d+)")


def parse_arch(name: str) -> ArchSpec:
    """The spec of a registry name (``--arch``), or of a model's own name inside a saved file
    (``vgg_lite_w20``, any width): the one place architecture names are read."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    m = _VGG_NAME.fullmatch(name)
    if m and int(m.group(1)) > 0:
        return ArchSpec("vgg_lite", int(m.group(1)))
    for spec in ARCHITECTURES.values():
        if spec.name == name:
            return spec
    raise UsageError(None, f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")


@dataclass(frozen=True)
class Layer:
    """One layer of a listed network: ``kind`` is conv (3x3, same padding, no bias), bn, relu,
    pool (2x2 max), gap (global average pooling), dropout or dense (softmax output)."""

    kind: Literal["conv", "bn", "relu", "pool", "gap", "dropout", "dense"]
    name: str
    units: int = 0  # conv: filters (in channels follow from the layer before); dense: outputs
    rate: float = 0.0  # dropout


def vgg_lite_layers(spec: ArchSpec) -> list[Layer]:
    """``vgg_lite``: after the input's rescaling to [-1, 1], four blocks of conv-bn-relu x2 and a
    2x2 max pool, doubling the width each block, then global average pooling, dropout and a
    7-way softmax. A plain VGG-style net close to the seeds' CNNs, and the shipped tiers' network."""
    if spec.family != "vgg_lite":
        raise UsageError(None, f"{spec.name} is not a vgg_lite network")
    layers: list[Layer] = []
    filters = spec.width
    for b in range(1, VGG_BLOCKS + 1):
        for i in (1, 2):
            layers += [Layer("conv", f"block{b}_conv{i}", filters), Layer("bn", f"block{b}_bn{i}"), Layer("relu", f"block{b}_relu{i}")]
        layers.append(Layer("pool", f"block{b}_pool"))
        filters *= 2
    return [*layers, Layer("gap", "pool"), Layer("dropout", "dropout", rate=spec.dropout), Layer("dense", "probs", len(EMOTIONS))]
