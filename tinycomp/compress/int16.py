"""int16 activations where int8 is not enough: `tinycomp compress --int16 N`.

An activation tensor stored in int8 loses what its 256 levels cannot hold,
and no later layer gets it back. `to_mixed` keeps chosen tensors in int16:
the layer that writes one and every layer that reads it run in TFLite's
16x8 scheme (int16 activations, int8 weights, int64 bias: docs/arithmetic.md
18e), with QUANTIZE ops between them and the int8 rest of the model. TFLite
Micro runs such a mixed model, so the build stays bit-exact with it.

The int16 scale of a tensor keeps the int8 tensor's range with k times the
resolution: s16 = s / k, k = 32767 // max(|-128 - z|, |127 - z|) for its int8
scale s and zero point z (128 after a ReLU, 255 for z = 0; int16 is
symmetric, zero point 0). A QUANTIZE from int8 into that scale multiplies by
the integer k, which is exact, so the only change is finer rounding where
int16 is kept. Ops that keep their input's quantization (max and
average pooling, reshape) pass int16 through: their readers join the 16x8
part too, so the finer tensor reaches the next layer with weights.

`choose` measures: each candidate tensor is kept in int16 alone and the
model run in TFLite Micro; the N whose int16 lowers the output error against
the float model most are kept.
"""
from __future__ import annotations

import numpy as np

from tinycomp.errors import ModelError

from .int4 import INT8, INT32, WEIGHTED_OPS, new_buffer, op_kinds, tensor_name

INT16, INT64 = 7, 4
SAME_RANGE = ("MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE")
SIXTEEN_BY_EIGHT = WEIGHTED_OPS + SAME_RANGE + ("MEAN",)  # what a 16x8 part may hold (TFLM and tinycomp run them)


class _Graph:
    """The flatbuffer object model of a .tflite with the lookups the rewrite
    needs; who writes and reads each tensor is mapped once, before the rewrite
    changes any op."""

    def __init__(self, buf: bytes):
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils as fb

        self.schema, self.fb = schema, fb
        self.model = fb.read_model_from_bytearray(bytearray(buf))
        if len(self.model.subgraphs) != 1:
            raise ModelError("int16 activations: the model must have one subgraph")
        self.sub = self.model.subgraphs[0]
        self.kinds = op_kinds(self.model)
        self._writer, self._readers = {}, {}
        for op in self.sub.operators:
            for t in self.activations(op.outputs):
                self._writer[t] = op
            for t in self.activations(op.inputs):
                self._readers.setdefault(t, []).append(op)

    def kind(self, op) -> str:
        return self.kinds[op.opcodeIndex]

    def const(self, t: int) -> bool:
        b = self.model.buffers[self.sub.tensors[t].buffer]
        return b.data is not None and len(b.data) > 0

    def activations(self, ts) -> list[int]:
        return [t for t in (ts if ts is not None else ()) if t >= 0 and not self.const(t)]

    def producer(self, t: int):
        return self._writer.get(t)

    def readers(self, t: int) -> list:
        return self._readers.get(t, [])

    def is_output(self, t: int) -> bool:
        return t in list(self.sub.outputs)


def _int16_scale(tensor) -> float:
    """s / k, k the largest integer that keeps the int8 range within int16: the
    QUANTIZE into it multiplies by k, which is exact."""
    s, z = float(tensor.quantization.scale[0]), int(tensor.quantization.zeroPoint[0])
    return s / (32767 // max(abs(-128 - z), abs(127 - z)))


def _part(g: _Graph, t: int) -> list:
    """The ops that run 16x8 when tensor t stays int16: its writer and readers,
    and through a pooling or reshape among the readers, what reads its output.
    Raises ModelError naming what cannot run 16x8."""
    tensor = g.sub.tensors[t]
    if tensor.type != INT8:
        raise ModelError(f"tensor {tensor_name(tensor)!r} is not an int8 activation")
    if g.is_output(t) or g.producer(t) is None:
        raise ModelError(f"tensor {tensor_name(tensor)!r} is a model input or output: it keeps its type")
    part, kept = [g.producer(t)], [t]
    for u in kept:  # grows as pooling/reshape pass int16 on
        for op in g.readers(u):
            if any(op is p for p in part):
                continue
            part.append(op)
            out = g.activations(op.outputs)[0]
            if g.kind(op) in SAME_RANGE and not g.is_output(out):
                kept.append(out)
    for op in part:
        kind = g.kind(op)
        if kind not in SIXTEEN_BY_EIGHT:
            raise ModelError(f"tensor {tensor_name(tensor)!r} meets {kind} {tensor_name(g.sub.tensors[op.outputs[0]])!r}, "
                             f"which has no 16x8 form here (int16 parts hold {', '.join(SIXTEEN_BY_EIGHT)})")
        if kind in WEIGHTED_OPS and g.sub.tensors[op.inputs[1]].type != INT8:
            raise ModelError(f"{kind} {tensor_name(g.sub.tensors[op.outputs[0]])!r}: 16x8 needs int8 weights")
    return part


def candidates(buf: bytes) -> list[str]:
    """Names of the tensors that can stay int16, in graph order: those a layer
    computes (a pooling or reshape only passes its input's precision on)."""
    g = _Graph(buf)
    names = []
    for op in g.sub.operators:
        if g.kind(op) in SAME_RANGE:
            continue
        for t in g.activations(op.outputs):
            try:
                _part(g, t)
            except ModelError:
                continue
            names.append(tensor_name(g.sub.tensors[t]))
    return names


def to_mixed(buf: bytes, names: list[str]) -> bytes:
    """The .tflite with the named activation tensors kept in int16 (module doc)."""
    g = _Graph(buf)
    index = {tensor_name(t): i for i, t in enumerate(g.sub.tensors)}
    part = []
    for name in names:
        if name not in index:
            raise ModelError(f"no tensor named {name!r} in the model")
        part += [op for op in _part(g, index[name]) if not any(op is p for p in part)]
    inside = {id(op) for op in part}
    for op in part:  # first, while every input still has its int8 scale
        if g.kind(op) in WEIGHTED_OPS and len(op.inputs) > 2 and op.inputs[2] >= 0:
            _widen_bias(g, op)
    # the part's int8 tensors (a RESHAPE's computed int32 shape stays as it is):
    # int16 in place inside the part, an int16 twin where the int8 rest meets it
    int8 = {t for op in part for t in g.activations(op.inputs) + g.activations(op.outputs)
            if g.sub.tensors[t].type == INT8}
    twins: dict[int, int] = {}
    for t in sorted(int8):
        if (g.producer(t) is None or id(g.producer(t)) not in inside or g.is_output(t)
                or any(id(r) not in inside for r in g.readers(t))):
            twins[t] = _twin(g, t)
        else:
            _to_int16(g.sub.tensors[t])
    new_ops = []
    for op in g.sub.operators:
        if id(op) in inside:
            for t in g.activations(op.inputs):  # int8 in: QUANTIZE into the twin first
                if t in twins and not any(q.outputs[0] == twins[t] for q in new_ops):
                    new_ops.append(_quantize(g, t, twins[t]))
        new_ops.append(op)
        if id(op) in inside:
            for t in g.activations(op.outputs):
                if t in twins:  # int16 out: write the twin, QUANTIZE back for the int8 readers
                    new_ops.append(_quantize(g, twins[t], t))
        op.inputs = [twins.get(t, t) if id(op) in inside else t for t in op.inputs]
        op.outputs = [twins.get(t, t) if id(op) in inside else t for t in op.outputs]
    g.sub.operators = new_ops
    return bytes(g.fb.convert_object_to_bytearray(g.model))


def _to_int16(tensor) -> None:
    s16 = _int16_scale(tensor)
    tensor.type = INT16
    tensor.quantization.scale, tensor.quantization.zeroPoint = [s16], [0]


def _twin(g: _Graph, t: int) -> int:
    """An int16 copy of tensor t's description (shape, name + "/int16")."""
    import copy

    twin = copy.deepcopy(g.sub.tensors[t])
    twin.name = f"{tensor_name(twin)}/int16"
    _to_int16(twin)
    g.sub.tensors.append(twin)
    return len(g.sub.tensors) - 1


def _quantize(g: _Graph, src: int, dst: int):
    schema = g.schema
    if "QUANTIZE" not in g.kinds:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.QUANTIZE
        code.version = 1
        g.model.operatorCodes.append(code)
        g.kinds.append("QUANTIZE")
    op = schema.OperatorT()
    op.opcodeIndex = g.kinds.index("QUANTIZE")
    op.inputs, op.outputs = [src], [dst]
    return op


def _widen_bias(g: _Graph, op) -> None:
    """The int32 bias (scale s_in8 * s_w) as the int64 bias 16x8 reads (scale s_in16 * s_w)."""
    bias = g.sub.tensors[op.inputs[2]]
    if bias.type == INT64:
        return
    if bias.type != INT32:
        raise ModelError(f"bias {tensor_name(bias)!r} is neither int32 nor int64")
    x = g.sub.tensors[g.activations(op.inputs)[0]]
    s8, s16 = float(x.quantization.scale[0]), _int16_scale(x)
    b = np.asarray(g.model.buffers[bias.buffer].data, np.uint8).view("<i4").astype(np.float64)
    values = np.round(b * (s8 / s16)).astype("<i8")
    w_scales = np.asarray(g.sub.tensors[op.inputs[1]].quantization.scale, np.float64)
    bias.buffer, bias.type = new_buffer(g.model, g.schema, values.view(np.uint8)), INT64
    count = len(bias.quantization.scale)
    bias.quantization.scale = [float(s16 * s) for s in np.broadcast_to(w_scales, (count,))]


def int16_tensors(buf: bytes) -> list[str]:
    """Names of the model's int16 activation tensors."""
    g = _Graph(buf)
    return [tensor_name(g.sub.tensors[t]) for op in g.sub.operators for t in g.activations(op.outputs)
            if g.sub.tensors[t].type == INT16]


def choose(buf: bytes, x_int8: np.ndarray, reference: np.ndarray, n: int) -> tuple[list[str], list[dict]]:
    """The n candidate tensors whose int16 lowers the output error most, and a
    row per candidate: name, error with it int16 (mean squared error of the
    dequantized outputs against `reference`, the float model's outputs on the
    same samples), and the all-int8 error. x_int8: quantized inputs."""
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.reference.tflm import run

    graph = parse_tflite(buf)
    out = graph.tensor(graph.outputs[0])
    reference = np.asarray(reference, np.float64).reshape(len(x_int8), -1)

    def error(model: bytes) -> float:
        y, _ = run(model, x_int8)
        return float(np.mean(((y.astype(np.float64) - out.zero_point) * out.scale - reference) ** 2))

    base = error(buf)
    rows = [{"tensor": name, "error": error(to_mixed(buf, [name])), "int8_error": base} for name in candidates(buf)]
    ranked = sorted((r for r in rows if r["error"] < base), key=lambda r: r["error"])
    return [r["tensor"] for r in ranked[:n]], rows
