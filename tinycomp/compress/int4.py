"""INT4 weights in a converted INT8 .tflite: `tinycomp compress --weight-bits 4`.

TF 2.21's converter already writes packed INT4 filters for kernels that QAT
fake-quantized with num_bits=4 (qat.py: quant_kernel with bits=4), with op
versions LiteRT's interpreter lacks (DEPTHWISE_CONV_2D 7) and TFLM runs.
Without QAT it writes int8 filters; to_int4 rewrites the filters of the chosen CONV_2D, DEPTHWISE_CONV_2D and (per-tensor)
FULLY_CONNECTED layers as TFLite's packed INT4 tensors, as TFLite Micro reads
them (docs/arithmetic.md, section 18f), per output channel:

- the int8 values q of a channel whose weights QAT fake-quantized to the 16
  levels k * s (k in -8..7, qat.py: quant_kernel with bits=4) are
  round(k * 127 / kmax), kmax = max|k| (7 with QAT's bound / 7 scale, 8
  if -8 occurs, less if the channel uses fewer levels): k is recovered
  exactly, with the scale s = s8 * 127 / kmax;
- other channels (no QAT) are rounded to k = round(q * 7 / max|q|), scale
  s8 * max|q| / 7 (post-training INT4: a lossy step, measured by the
  caller's TFLM accuracy).

Each rewritten layer's int32 bias is rescaled to the new weight scale
(bias scale = input scale x weight scale, in float32 as the converter writes
it; the value rounded from the old one), since the kernels add it unscaled.
Tensors get buffers of their own (the converter shares identical buffers).
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from ..frontends.tflite import pack_int4

INT4, INT8, INT32 = 17, 9, 2
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def grid_values(q: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(k, kmax) when int8 values q are a 16-level grid scaled to +-127, else None."""
    top = int(np.abs(q).max(initial=0))
    if top == 0:
        return np.zeros_like(q), 7
    # 7: QAT's symmetric scale (bound / 7); 8: a -8 on the far side; fewer
    # levels: a channel whose weights use only part of the grid
    for kmax in (7, 8, 6, 5, 4, 3, 2, 1):
        k = np.round(q.astype(np.float64) * kmax / top)
        if k.min() >= -8 and k.max() <= 7 and np.array_equal(np.round(k * top / kmax), q):
            return k.astype(np.int8), kmax
    return None


def _channel_to_int4(q: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """INT4 values of one channel's int8 values, the factor its scale grows
    by, and whether they were exact (on a 16-level grid)."""
    top = int(np.abs(q).max(initial=0))
    if top == 0:
        return np.zeros_like(q, np.int8), 1.0, True
    exact = grid_values(q)
    if exact is not None:
        k, kmax = exact
        return k, top / kmax, True
    return np.clip(np.round(q.astype(np.float64) * 7 / top), -8, 7).astype(np.int8), top / 7, False


def int4_layers(buf: bytes) -> list[str]:
    """Output names of the layers whose filter is INT4."""
    return [name for name, kind in weighted_ops(buf) if kind == INT4]


def op_kinds(model) -> list[str]:
    """The builtin op name of each of a flatbuffer model's operator codes."""
    from ai_edge_litert import schema_py_generated as schema

    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [codes.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?") for c in model.operatorCodes]


def tensor_name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _weighted(model):
    """(op, kind, output name) of each CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED op, in execution order."""
    sub, kinds = model.subgraphs[0], op_kinds(model)
    for op in sub.operators:
        if kinds[op.opcodeIndex] in WEIGHTED_OPS:
            yield op, kinds[op.opcodeIndex], tensor_name(sub.tensors[op.outputs[0]])


def weighted_ops(buf: bytes) -> list[tuple[str, int]]:
    """(output name, filter tensor type) of each conv/depthwise/FC op, in order."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(buf))
    sub = model.subgraphs[0]
    return [(name, sub.tensors[op.inputs[1]].type) for op, _, name in _weighted(model)]


def layers_to_int4(buf: bytes, layer_names: list[str], chosen) -> tuple[bytes, list[tuple[str, bool]]]:
    """INT4 filters in the layers named in `chosen` (Keras names), the rest left
    as they are. `layer_names` are the model's conv/dense layers in order: a
    chain converts each to one conv/depthwise/FC op in the same order (the
    converter's tensor names do not keep Keras's names, the order does).
    Returns the .tflite and per chosen layer (in model order) whether its
    values were exact (already INT4 from the converter, or on QAT's grid)."""
    ops = weighted_ops(buf)
    if len(ops) != len(layer_names):
        raise ModelError(f"the .tflite has {len(ops)} conv/dense ops for {len(layer_names)} conv/dense layers; "
                         "cannot tell which op is which layer")
    chosen = set(chosen)
    tflite_name = {layer: name for layer, (name, _) in zip(layer_names, ops)}
    todo = [tflite_name[layer] for layer, (_, kind) in zip(layer_names, ops) if layer in chosen and kind != INT4]
    buf, done = to_int4(buf, todo) if todo else (buf, [])
    exact = dict(done)
    return buf, [(layer, exact.get(tflite_name[layer], True)) for layer in layer_names if layer in chosen]


def to_int4(buf: bytes, layers=None) -> tuple[bytes, list[tuple[str, bool]]]:
    """The .tflite with INT4 filters in the layers named (their output tensor
    names; None: every eligible layer, per-channel FULLY_CONNECTED left int8),
    and per layer rewritten its name and whether every value was exact."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(buf))
    sub = model.subgraphs[0]
    wanted = None if layers is None else set(layers)
    done = []
    for op, kind, name in list(_weighted(model)):
        if wanted is not None and name not in wanted:
            continue
        w = sub.tensors[op.inputs[1]]
        if w.type != INT8 or w.quantization is None or w.quantization.scale is None:
            continue
        scales = np.asarray(w.quantization.scale, np.float32)
        if kind == "FULLY_CONNECTED" and scales.size > 1 and wanted is None:
            continue
        if kind == "FULLY_CONNECTED" and scales.size > 1:
            raise ModelError(f"layer {name!r}: TFLite Micro takes INT4 FULLY_CONNECTED weights only per "
                             "tensor, and this one is per channel")
        shape = tuple(int(d) for d in w.shape)
        q = np.asarray(model.buffers[w.buffer].data, np.uint8).view(np.int8).reshape(shape)
        per_channel = scales.size > 1
        axis = int(w.quantization.quantizedDimension or 0)
        m = np.moveaxis(q, axis, 0) if per_channel else q[None]
        rows = m.reshape(m.shape[0], -1)
        k = np.empty_like(rows)
        grow = np.empty(rows.shape[0])
        exact = True
        for c in range(rows.shape[0]):
            k[c], grow[c], on_grid = _channel_to_int4(rows[c])
            exact &= on_grid
        k = k.reshape(m.shape)
        values = np.moveaxis(k, 0, axis) if per_channel else k[0]
        new_scales = (scales.astype(np.float64) * grow).astype(np.float32)
        w.type = INT4
        w.quantization.scale = [float(s) for s in new_scales]
        w.buffer = new_buffer(model, schema, pack_int4(values))
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            _rescale_bias(model, schema, sub, op, scales, new_scales)
        done.append((name, exact))
    missing = set() if wanted is None else wanted - {n for n, _ in done}
    if missing:
        raise ModelError(f"no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED layer with int8 weights "
                         f"named {sorted(missing)[0]!r}")
    return bytes(fb.convert_object_to_bytearray(model)), done


def new_buffer(model, schema, data: np.ndarray) -> int:
    b = schema.BufferT()
    b.data = np.asarray(data, np.uint8)
    model.buffers.append(b)
    return len(model.buffers) - 1


def _rescale_bias(model, schema, sub, op, old: np.ndarray, new: np.ndarray) -> None:
    bias = sub.tensors[op.inputs[2]]
    x = sub.tensors[op.inputs[0]]
    if bias.type != INT32:
        raise ModelError(f"bias {bias.name!r} is not int32")
    b = np.asarray(model.buffers[bias.buffer].data, np.uint8).view("<i4").astype(np.float64)
    ratio = np.broadcast_to(old.astype(np.float64) / new.astype(np.float64), b.shape)
    values = np.clip(np.round(b * ratio), -(1 << 31), (1 << 31) - 1).astype("<i4")
    s_in = np.float32(x.quantization.scale[0])
    # as many scales as the bias had (its zero points stay): one, or one per channel
    count = len(bias.quantization.scale) if bias.quantization.scale is not None else len(new)
    bias.quantization.scale = [float(s_in * np.float32(s)) for s in np.broadcast_to(new, (count,))]
    bias.buffer = new_buffer(model, schema, values.view(np.uint8))
