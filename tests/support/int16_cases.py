"""Seeded random 16x8 models (int16 activations, int8 weights, int64 or
int32 bias) and inputs for the int16 kernel tests, on the host and on QEMU.

Each builder returns (tflite bytes, inputs (N, ...) int16) with inputs that
hit the edges: +-32767, -32768, 0, +-1 beside random values."""
from __future__ import annotations

import numpy as np

from .tflite_builder import ModelBuilder, bias_scales, random_weights

I16 = np.int16


def int16_samples(rng, shape, count: int) -> np.ndarray:
    x = rng.integers(-32768, 32768, size=(count, *shape)).astype(I16)
    flat = x.reshape(count, -1)
    edge = np.array([-32768, 32767, 0, 1, -1, -32767, 16384, -16384], I16)
    flat[0, :min(edge.size, flat.shape[1])] = edge[:flat.shape[1]]
    if count > 1:
        flat[1] = -32768  # saturating inputs everywhere
    if count > 2:
        flat[2] = 32767
    if count > 3:  # small values: rounding near zero
        flat[3] = rng.integers(-4, 5, size=flat.shape[1])
    return x


def _scale(rng, lo, hi) -> float:
    return float(np.float32(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def _bias(b: ModelBuilder, rng, n, s_in, w_scales, kind: str):
    """kind: 'int64', 'int32' or 'none'."""
    if kind == "none":
        return None
    ws = np.broadcast_to(np.asarray(w_scales, np.float32), (n,))
    big = 1 << 24 if kind == "int64" else 1 << 20
    q = rng.integers(-big, big + 1, size=n)
    return b.const(q.astype(np.int64 if kind == "int64" else np.int32),
                   np.int64 if kind == "int64" else np.int32, bias_scales(s_in, ws), [0] * n)


def _out_scale(rng, s_in, w_scales, depth) -> float:
    # around the accumulator's typical size, spread widely so that some
    # outputs saturate and some multipliers are tiny
    typical = float(s_in) * float(np.max(w_scales)) * 128 * 20000 * np.sqrt(depth) / 32768
    return float(np.float32(typical * np.exp(rng.uniform(np.log(0.05), np.log(8.0)))))


ACTS = (None, "RELU", "RELU6", "RELU_N1_TO_1")


def fully_connected_case(seed: int, count: int = 8):
    rng = np.random.default_rng(16000 + seed)
    depth, units = int(rng.integers(1, 40)), int(rng.integers(1, 24))
    rows = int(rng.integers(1, 4))
    per_channel = bool(seed % 2)
    bias_kind = ("int64", "none", "int32")[seed % 3]
    s_in = _scale(rng, 1e-5, 1e-2)
    b = ModelBuilder()
    x = b.input((rows, depth), s_in, 0, dtype=I16)
    wq, ws = random_weights(rng, (units, depth), 0 if per_channel else None)
    w = b.const_int8(wq, ws, [0] * len(ws), axis=0)
    bias = _bias(b, rng, units, s_in, ws, bias_kind)
    s_out = _out_scale(rng, s_in, ws, depth)
    act = ACTS[seed % len(ACTS)] if seed >= 4 else None
    y = b.tensor((rows, units), s_out, 0, dtype=I16)
    b.op("FULLY_CONNECTED", [x, w, -1 if bias is None else bias], [y], fused_activation=act)
    b.output(y)
    return b.build(), int16_samples(rng, (rows, depth), count)


def conv_case(seed: int, count: int = 6):
    rng = np.random.default_rng(16100 + seed)
    h, w_, cin = (int(v) for v in rng.integers(1, 9, size=3))
    cout = int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dil = (1, 1) if seed % 4 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = ("SAME", "VALID")[seed % 2]
    if padding == "VALID":
        h, w_ = max(h, (kh - 1) * dil[0] + 1), max(w_, (kw - 1) * dil[1] + 1)
    bias_kind = ("int64", "none", "int32")[seed % 3]
    s_in = _scale(rng, 1e-5, 1e-2)
    b = ModelBuilder()
    x = b.input((1, h, w_, cin), s_in, 0, dtype=I16)
    wq, ws = random_weights(rng, (cout, kh, kw, cin), 0 if seed % 5 else None)
    wt = b.const_int8(wq, ws, [0] * len(ws), axis=0)
    bias = _bias(b, rng, cout, s_in, ws, bias_kind)
    s_out = _out_scale(rng, s_in, ws, kh * kw * cin)
    act = ACTS[seed % len(ACTS)]
    from .tflite_builder import conv2d_output_shape
    shape = conv2d_output_shape((1, h, w_, cin), (kh, kw), cout, stride, padding, dil)
    y = b.tensor(shape, s_out, 0, dtype=I16)
    b.op("CONV_2D", [x, wt, -1 if bias is None else bias], [y], stride_h=stride[0],
         stride_w=stride[1], padding=padding, fused_activation=act,
         dilation_h_factor=dil[0], dilation_w_factor=dil[1])
    b.output(y)
    return b.build(), int16_samples(rng, (1, h, w_, cin), count)


def depthwise_case(seed: int, count: int = 6):
    rng = np.random.default_rng(16200 + seed)
    h, w_, cin = (int(v) for v in rng.integers(1, 9, size=3))
    mult = int(rng.integers(1, 3))
    cout = cin * mult
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dil = (1, 1) if seed % 4 else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = ("SAME", "VALID")[seed % 2]
    if padding == "VALID":
        h, w_ = max(h, (kh - 1) * dil[0] + 1), max(w_, (kw - 1) * dil[1] + 1)
    bias_kind = ("int64", "none")[seed % 2]
    s_in = _scale(rng, 1e-5, 1e-2)
    b = ModelBuilder()
    x = b.input((1, h, w_, cin), s_in, 0, dtype=I16)
    wq, ws = random_weights(rng, (1, kh, kw, cout), 3 if seed % 5 else None)
    wt = b.const_int8(wq, ws, [0] * len(ws), axis=3)
    bias = _bias(b, rng, cout, s_in, ws, bias_kind)
    s_out = _out_scale(rng, s_in, ws, kh * kw)
    act = ACTS[seed % len(ACTS)]
    from .tflite_builder import conv2d_output_shape
    shape = conv2d_output_shape((1, h, w_, cin), (kh, kw), cout, stride, padding, dil)
    y = b.tensor(shape, s_out, 0, dtype=I16)
    ins = [x, wt] + ([] if bias is None else [bias])
    b.op("DEPTHWISE_CONV_2D", ins, [y], stride_h=stride[0], stride_w=stride[1],
         padding=padding, fused_activation=act, dilation_h_factor=dil[0],
         dilation_w_factor=dil[1], depth_multiplier=mult)
    b.output(y)
    return b.build(), int16_samples(rng, (1, h, w_, cin), count)
