"""The emotion CNNs in Keras: ``vgg_lite`` built from its spec (:mod:`.specs`), and the two
architectures only Keras trains (``resnet_lite``, ``mini_xception``), defined here.

Kept apart from inference (:mod:`fervideo.emotions.classifier`) so that running the tool never
imports Keras or TensorFlow: the shipped model is executed through TFLite. Every architecture takes
raw grayscale pixels 0-255 shaped ``(N, 48, 48, 1)`` and returns 7 softmax probabilities, so all
normalisation travels inside the saved file and no caller can get it wrong.
"""

from __future__ import annotations

from typing import Any

from fervideo.emotions.specs import ARCHITECTURES, BN_EPS, INPUT_SHAPE, ArchSpec, parse_arch, vgg_lite_layers
from fervideo.labels import EMOTIONS

__all__ = ["ARCHITECTURES", "build", "import_keras", "mini_xception", "resnet_lite", "vgg_lite"]


def import_keras() -> Any:
    """Import Keras (TensorFlow under it) with the C++ start-up banner (oneDNN, CUDA probing) kept
    off stderr, so a training or evaluation error is not buried under lines that are not ours."""
    from fervideo.runtime import quiet_stderr

    try:
        with quiet_stderr():
            import keras
    except ImportError as e:
        from fervideo.errors import MissingExtraError

        raise MissingExtraError(
            None, f"training, export and .keras models need TensorFlow (Keras 3), which is not installed ({e}): pip install 'fervideo[train]'"
        ) from None
    return keras


def _conv_bn(x: Any, filters: int, kernel: int = 3, strides: int = 1, act: bool = True) -> Any:
    layers = import_keras().layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    if act:
        x = layers.Activation("relu")(x)
    return x


def _res_block(x: Any, filters: int, strides: int = 1) -> Any:
    """Pre-activation-free basic residual block (ResNet v1): two 3x3 convs and a shortcut."""
    layers = import_keras().layers
    shortcut = x
    y = _conv_bn(x, filters, 3, strides)
    y = _conv_bn(y, filters, 3, 1, act=False)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv_bn(shortcut, filters, 1, strides, act=False)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu")(y)


def _head(x: Any, dropout: float) -> Any:
    layers = import_keras().layers
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    # float32 softmax even under a mixed-precision policy, so probabilities sum to 1 exactly enough.
    return layers.Dense(len(EMOTIONS), activation="softmax", dtype="float32", name="probs")(x)


def _normalise(inp: Any) -> Any:
    return import_keras().layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inp)


def resnet_lite(width: int = 32, blocks: tuple[int, ...] = (1, 2, 2), dropout: float = 0.3) -> Any:
    """A small ResNet for 48x48 faces.

    FER2013 accuracy per FLOP is best with residual stages that spend most compute at 24x24 and
    below: the stem sees 48x48 once, then three stages of basic blocks at 24, 12 and 6 pixels.
    """
    keras = import_keras()
    inp = keras.Input(INPUT_SHAPE, name="pixels")
    x = _normalise(inp)
    x = _conv_bn(x, width, 3)
    x = _conv_bn(x, width, 3, strides=2)  # 24x24
    filters = width * 2
    for stage, n in enumerate(blocks):
        for i in range(n):
            strides = 2 if (stage > 0 and i == 0) else 1
            x = _res_block(x, filters, strides)
        filters *= 2
    out = _head(x, dropout)
    return keras.Model(inp, out, name=f"resnet_lite_w{width}")


def mini_xception(dropout: float = 0.0) -> Any:
    """The mini-Xception of Arriaga et al. (2017), the architecture of the ``fer`` package (~60k params)."""
    keras = import_keras()
    layers = keras.layers
    inp = keras.Input(INPUT_SHAPE, name="pixels")
    x = _normalise(inp)
    x = _conv_bn(x, 8, 3)
    x = _conv_bn(x, 8, 3)
    for filters in (16, 32, 64, 128):
        residual = _conv_bn(x, filters, 1, strides=2, act=False)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.Add()([x, residual])
    out = _head(x, dropout)
    return keras.Model(inp, out, name="mini_xception")


def vgg_lite(spec: ArchSpec | int = 20) -> Any:
    """``vgg_lite`` (:func:`fervideo.emotions.specs.vgg_lite_layers`, where it is defined) as a Keras
    model, each layer named as the spec names it."""
    keras = import_keras()
    layers = keras.layers
    spec = spec if isinstance(spec, ArchSpec) else ArchSpec("vgg_lite", spec)
    inp = keras.Input(INPUT_SHAPE, name="pixels")
    x = _normalise(inp)
    for layer in vgg_lite_layers(spec):
        n = layer.name
        if layer.kind == "conv":
            x = layers.Conv2D(layer.units, 3, padding="same", use_bias=False, name=n)(x)
        elif layer.kind == "bn":
            x = layers.BatchNormalization(epsilon=BN_EPS, name=n)(x)
        elif layer.kind == "relu":
            x = layers.Activation("relu", name=n)(x)
        elif layer.kind == "pool":
            x = layers.MaxPooling2D(2, name=n)(x)
        elif layer.kind == "gap":
            x = layers.GlobalAveragePooling2D(name=n)(x)
        elif layer.kind == "dropout":
            x = layers.Dropout(layer.rate, name=n)(x)
        else:  # float32 softmax even under a mixed-precision policy, so probabilities sum to 1 exactly enough
            x = layers.Dense(layer.units, activation="softmax", dtype="float32", name=n)(x)
    return keras.Model(inp, x, name=spec.name)


def build(name: str) -> Any:
    """An untrained model by registry name (or a model's own name, ``vgg_lite_w48``): see
    :func:`fervideo.emotions.specs.parse_arch`."""
    spec = parse_arch(name)
    if spec.family == "vgg_lite":
        return vgg_lite(spec)
    if spec.family == "resnet_lite":
        return resnet_lite(spec.width, spec.blocks, spec.dropout)
    return mini_xception(spec.dropout)
