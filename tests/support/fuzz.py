"""Mutants of small valid models for the fuzz test: byte flips, truncations,
and field edits made through the flatbuffer schema (shapes, indices,
quantization, types, options, names), each from a seed so that a failure
can be replayed."""
from __future__ import annotations

import os
import pickle
import signal
import struct

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .tflite_builder import ModelBuilder, random_bias, random_weights


def _conv_chain(rng) -> bytes:
    b = ModelBuilder()
    x = b.input((1, 6, 6, 2), 0.05, 3)
    w, ws = random_weights(rng, (3, 3, 3, 2), axis=0)
    bq, bs = random_bias(rng, 3, 0.05, ws)
    y = b.conv2d(x, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.1, -2, activation="RELU")
    y = b.max_pool2d(y, 2, padding="VALID")
    y = b.reshape(y, (1, 27))
    w, ws = random_weights(rng, (5, 27), axis=0)
    bq, bs = random_bias(rng, 5, 0.1, ws)
    y = b.fully_connected(y, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.2, 4)
    b.output(b.softmax(y))
    return b.build()


def _residual(rng) -> bytes:
    b = ModelBuilder()
    x = b.input((1, 5, 5, 4), 0.04, -7)
    w, ws = random_weights(rng, (1, 3, 3, 4), axis=3)
    bq, bs = random_bias(rng, 4, 0.04, ws)
    d = b.depthwise_conv2d(x, b.const_int8(w, ws, axis=3), b.const_int32(bq, bs), 0.05, 1, padding="SAME")
    w, ws = random_weights(rng, (4, 1, 1, 4), axis=0)
    bq, bs = random_bias(rng, 4, 0.05, ws)
    c = b.conv2d(d, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.06, -3)
    y = b.add(c, x, 0.08, 2, activation="RELU6")
    y = b.average_pool2d(y, 2, stride=1, padding="SAME")
    b.output(b.mean(y, (1, 2), keep_dims=False, scale=0.07, zero_point=-1))
    return b.build()


def _elementwise(rng) -> bytes:
    b = ModelBuilder()
    x = b.input((1, 4, 4, 3), 0.03, 5)
    p = b.pad(x, [[0, 0], [1, 0], [0, 1], [0, 0]])
    m = b.mul(p, p, 0.02, -4)
    t = b.tanh(m)
    s = b.logistic(m)
    y = b.concatenation([b.quantize(t, 0.05, 0), b.quantize(s, 0.05, 0)], axis=3)
    y = b.relu6(b.relu(b.hard_swish(y, 0.04, -9)))
    b.output(b.squeeze(b.expand_dims(y, 0), (0,)))
    return b.build()


def _stateful(rng) -> bytes:
    """Two resource variables: one CALL_ONCE starts (read, then assigned the
    input), one TFLM's zero-point fill starts (read, then assigned a sum)."""
    b = ModelBuilder()
    init = b.subgraph()
    h0 = init.var_handle("last")
    init.assign_variable(h0, init.const(rng.integers(-128, 128, (1, 6)), np.int8, scales=0.05, zero_points=-3))
    x = b.input((1, 6), 0.05, -3)
    b.call_once(1)
    last, total = b.var_handle("last"), b.var_handle("total")
    y = b.add(x, b.read_variable(last, (1, 6), 0.05, -3), 0.1, 2)
    b.assign_variable(last, x)
    z = b.add(y, b.read_variable(total, (1, 6), 0.1, 2), 0.1, 2)
    b.assign_variable(total, z)
    b.output(z)
    return b.build()


def _lstm(rng) -> bytes:
    """An integer LSTM (3 steps, its hidden and cell states kept between
    inferences) feeding a FULLY_CONNECTED: the op with the most inputs."""
    from .lstm_models import add_lstm

    b = ModelBuilder()
    x = b.input((1, 3, 4), 0.05, -3)
    h = add_lstm(b, rng, x, 3, 0.02, 5)
    w, ws = random_weights(rng, (2, 9), axis=None)
    bq, bs = random_bias(rng, 2, 0.02, ws)
    b.output(b.fully_connected(b.reshape(h, (1, 9)), b.const_int8(w, ws), b.const_int32(bq, bs), 0.05, 0))
    return b.build()


def seed_models() -> list[bytes]:
    rng = np.random.default_rng(2026)
    return [_conv_chain(rng), _residual(rng), _elementwise(rng), _stateful(rng), _lstm(rng)]


def _pack(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


_EXTREMES = [0, 1, -1, 2, 3, 7, 127, 128, -128, 255, 256, 1 << 15, 1 << 31, -(1 << 31), (1 << 31) - 1]


def _number(rng, old):
    """A nearby or extreme value of old's kind."""
    if isinstance(old, float):
        return float(rng.choice([0.0, -old, old * 2, old / 1e6, 3e38, 1e-45, float("nan"), float("inf")]))
    if rng.random() < 0.5:
        return int(rng.choice(_EXTREMES))
    return int(old) + int(rng.integers(-3, 4))


def _edit_list(rng, values: list, pick_new) -> list:
    values = list(values)
    action = rng.integers(4) if values else 1
    if action == 0:
        i = int(rng.integers(len(values)))
        values[i] = pick_new(values[i])
    elif action == 1:
        values.insert(int(rng.integers(len(values) + 1)), pick_new(values[0] if values else 0))
    elif action == 2:
        values.pop(int(rng.integers(len(values))))
    else:
        rng.shuffle(values)
    return values


def _field_edit(rng, model) -> None:
    sg = model.subgraphs[0]
    kind = rng.integers(9)
    t = sg.tensors[int(rng.integers(len(sg.tensors)))]
    op = sg.operators[int(rng.integers(len(sg.operators)))]
    if kind == 0:
        t.shape = _edit_list(rng, t.shape, lambda v: _number(rng, v))
    elif kind == 1 and t.quantization is not None:
        q = t.quantization
        field = rng.choice(["scale", "zeroPoint", "quantizedDimension"])
        if field == "scale":
            q.scale = _edit_list(rng, list(q.scale), lambda v: _number(rng, float(v)))
        elif field == "zeroPoint":
            q.zeroPoint = _edit_list(rng, list(q.zeroPoint), lambda v: _number(rng, int(v)))
        else:
            q.quantizedDimension = _number(rng, q.quantizedDimension)
    elif kind == 2:
        t.type = int(rng.choice([fb.TensorType.INT16, fb.TensorType.INT32, fb.TensorType.UINT8,
                                 fb.TensorType.FLOAT32, fb.TensorType.INT64, 99]))
    elif kind == 3:
        t.buffer = _number(rng, t.buffer) % (len(model.buffers) + 2)
    elif kind == 4:
        op.inputs = _edit_list(rng, list(op.inputs), lambda v: _number(rng, v) % (len(sg.tensors) + 2) - 1)
    elif kind == 5:
        op.outputs = _edit_list(rng, list(op.outputs), lambda v: _number(rng, v) % (len(sg.tensors) + 1))
    elif kind == 6 and op.builtinOptions is not None:
        fields = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, float))]
        if fields:
            key = str(rng.choice(fields))
            setattr(op.builtinOptions, key, _number(rng, getattr(op.builtinOptions, key)))
    elif kind == 7:
        op.opcodeIndex = _number(rng, op.opcodeIndex) % (len(model.operatorCodes) + 1)
    else:
        which = rng.choice(["inputs", "outputs", "operators"])
        if which == "operators":
            rng.shuffle(sg.operators)
        else:
            setattr(sg, which, _edit_list(rng, list(getattr(sg, which)),
                                          lambda v: _number(rng, v) % len(sg.tensors)))


def mutate(data: bytes, kind: str, seed: int) -> bytes:
    """One mutant of a valid .tflite: kind is 'flip', 'truncate' or 'field'."""
    rng = np.random.default_rng(seed)
    if kind == "truncate":
        return data[:int(rng.integers(len(data)))]
    if kind == "flip":
        raw = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
        return bytes(raw)
    from ai_edge_litert.tools import flatbuffer_utils
    while True:  # until the edits are representable in the schema's field types
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
        for _ in range(int(rng.integers(1, 3))):
            _field_edit(rng, model)
        try:
            return _pack(model)
        except (TypeError, ValueError, OverflowError, struct.error):
            continue


def with_names(data: bytes, name: str) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    for t in model.subgraphs[0].tensors:
        t.name = name
    return _pack(model)


def with_explicit_depthwise_bias(data: bytes) -> bytes:
    """The same model with a zero bias given to every DEPTHWISE_CONV_2D that has
    none: what the op computes either way, but TFLite Micro's interpreter
    dereferences the absent bias and segfaults (the comparison needs it to run)."""
    from ai_edge_litert.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    sg = model.subgraphs[0]
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != fb.BuiltinOperator.DEPTHWISE_CONV_2D:
            continue
        if len(op.inputs) > 2 and op.inputs[2] >= 0 or len(op.inputs) < 2:
            continue
        channels = int(sg.tensors[op.outputs[0]].shape[-1])
        buffer = fb.BufferT()
        buffer.data = np.zeros(channels, np.int32).view(np.uint8)
        model.buffers.append(buffer)
        bias = fb.TensorT()
        bias.shape, bias.type, bias.buffer, bias.name = [channels], fb.TensorType.INT32, len(model.buffers) - 1, "zero_bias"
        sg.tensors.append(bias)
        op.inputs = [*op.inputs[:2], len(sg.tensors) - 1]
    return _pack(model)


def run_isolated(fn, *args, timeout: float = 20.0):
    """fn(*args) in a forked child, so that a reference interpreter that
    crashes on a malformed model cannot take the test process with it.
    Returns ("ok", value), ("error", message) or ("crash", what)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            result = ("ok", fn(*args))
        except BaseException as exc:  # anything the reference raises is its refusal
            result = ("error", f"{type(exc).__name__}: {exc}"[:300])
        with os.fdopen(write, "wb") as f:
            pickle.dump(result, f)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        signal.alarm(int(timeout) + 1)  # a hung reference ends the test with an error
        try:
            payload = f.read()
        finally:
            signal.alarm(0)
    _, status = os.waitpid(pid, 0)
    if not payload:
        return ("crash", f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {status}")
    return pickle.loads(payload)
