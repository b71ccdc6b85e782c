"""A float ``.tflite`` file read as a plain graph (ops, options, constant weights), without running it.

Why: the GPU path (:mod:`fervideo.emotions.torch_net`) runs a tier's own float TFLite file in
PyTorch, so each tier's weights ship once (issue 23: the wheel holds the TFLite files and no
``.keras`` copies), and the GPU's outputs are the CPU float path's, not a second model's. The file
is parsed with the flatbuffer schema that ai-edge-litert ships (``schema_py_generated``); the
network definition stays the one in :mod:`fervideo.emotions.architectures`: this reads whatever
graph the converter wrote (batch norm already folded into the convolutions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.errors import ModelError

# The ops a float classifier needs (what TensorFlow's converter makes of vgg_lite and kin). An int8
# file (QUANTIZE, integer tensors) is refused: the GPU path is float.
SUPPORTED = ("MUL", "ADD", "CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX", "DEQUANTIZE", "RESHAPE", "RELU")
ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}  # TFLite ActivationFunctionType
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


@dataclass
class Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """Ops in execution order; ``consts`` maps tensor index -> weights (float16 widened to float32)."""

    ops: list[Op]
    consts: dict[int, np.ndarray]
    shapes: dict[int, tuple[int, ...]]
    input: int
    output: int


def read_graph(path: str | Path) -> Graph:
    """Parse ``path``; a :class:`ModelError` naming the op if the file holds one the GPU path lacks."""
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    try:
        buf = path.read_bytes()
        model = schema.Model.GetRootAs(buf, 0)
        sub = model.Subgraphs(0)
    except (OSError, ValueError, IndexError) as e:
        raise ModelError(path, f"cannot read it as a TFLite model ({e})") from None
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    consts: dict[int, np.ndarray] = {}
    shapes: dict[int, tuple[int, ...]] = {}
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        shapes[i] = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = model.Buffers(t.Buffer())
        if data is not None and data.DataLength() > 0:
            dtype = _DTYPES.get(t.Type())
            if dtype is None:
                raise ModelError(path, "the GPU path runs float models; this file has integer weights (an int8 model?): give the tier's float file")
            consts[i] = np.frombuffer(data.DataAsNumpy().tobytes(), dtype).reshape(shapes[i])
    ops: list[Op] = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        if kind not in SUPPORTED:
            raise ModelError(path, f"the GPU path runs float models made of {', '.join(SUPPORTED)}; this one has {kind} (an int8 model?)")
        ops.append(Op(kind, [int(x) for x in op.InputsAsNumpy()], [int(x) for x in op.OutputsAsNumpy()], _options(schema, kind, op)))
    # float16 weights are stored once and widened by a DEQUANTIZE op: widen them here.
    kept = []
    for op in ops:
        if op.kind == "DEQUANTIZE" and op.inputs[0] in consts:
            consts[op.outputs[0]] = consts[op.inputs[0]].astype(np.float32)
        else:
            kept.append(op)
    consts = {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in consts.items()}
    return Graph(kept, consts, shapes, int(sub.Inputs(0)), int(sub.Outputs(0)))


def _options(schema: Any, kind: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}

    def load(cls: Any) -> Any:
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return o

    if kind == "CONV_2D":
        o = load(schema.Conv2DOptions)
        return {
            "same": o.Padding() == schema.Padding.SAME,
            "stride": (o.StrideH(), o.StrideW()),
            "dilation": (o.DilationHFactor(), o.DilationWFactor()),
            "act": _activation(o.FusedActivationFunction()),
        }
    if kind in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = load(schema.Pool2DOptions)
        return {
            "same": o.Padding() == schema.Padding.SAME,
            "stride": (o.StrideH(), o.StrideW()),
            "size": (o.FilterHeight(), o.FilterWidth()),
            "act": _activation(o.FusedActivationFunction()),
        }
    if kind == "FULLY_CONNECTED":
        return {"act": _activation(load(schema.FullyConnectedOptions).FusedActivationFunction())}
    if kind in ("ADD", "MUL"):
        cls = schema.AddOptions if kind == "ADD" else schema.MulOptions
        return {"act": _activation(load(cls).FusedActivationFunction())}
    if kind == "MEAN":
        return {"keep_dims": bool(load(schema.ReducerOptions).KeepDims())}
    if kind == "SOFTMAX":
        return {"beta": float(load(schema.SoftmaxOptions).Beta())}
    return {}


def _activation(code: int) -> str | None:
    if code not in ACTIVATIONS:
        raise ModelError(None, f"the GPU path does not support TFLite fused activation {code}")
    return ACTIVATIONS[code]
