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


def fully_connected_case(seed: int, count: int = 64):
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


def conv_case(seed: int, count: int = 32):
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


def depthwise_case(seed: int, count: int = 32):
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


def binary_case(op: str, seed: int, count: int = 32):
    """ADD, SUB or MUL on int16, with broadcasting and a constant operand now and then."""
    rng = np.random.default_rng(16300 + 100 * ("ADD", "SUB", "MUL").index(op) + seed)
    shape = tuple(int(v) for v in rng.integers(1, 6, size=int(rng.integers(1, 5))))
    shape_b = tuple(d if rng.random() < 0.6 else 1 for d in shape)
    if seed % 3 == 0:
        shape_b = shape
    s1, s2 = _scale(rng, 1e-4, 1.0), _scale(rng, 1e-4, 1.0)
    if seed % 5 == 1:
        s2 = s1
    if op == "MUL":
        s_out = float(np.float32(s1 * s2 * 32768 * np.exp(rng.uniform(np.log(0.1), np.log(4.0)))))
    else:
        s_out = float(np.float32(max(s1, s2) * np.exp(rng.uniform(np.log(0.3), np.log(3.0)))))
    b = ModelBuilder()
    x1 = b.input((1, *shape), s1, 0, dtype=I16)
    const = seed % 4 == 3
    if const:
        x2 = b.const(rng.integers(-32768, 32768, size=(1, *shape_b)).astype(I16), I16, [s2], [0])
    else:
        x2 = b.input((1, *shape_b), s2, 0, dtype=I16)
    y = b.tensor((1, *shape), s_out, 0, dtype=I16)
    b.op(op, [x1, x2], [y], fused_activation=ACTS[seed % len(ACTS)])
    b.output(y)
    xs = int16_samples(rng, (1, *shape), count)
    if const:
        return b.build(), xs
    return b.build(), [xs, int16_samples(rng, (1, *shape_b), count)]


def pool_case(op: str, seed: int, count: int = 32):
    rng = np.random.default_rng(16600 + 100 * ("AVERAGE_POOL_2D", "MAX_POOL_2D").index(op) + seed)
    h, w_, c = (int(v) for v in rng.integers(1, 9, size=3))
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    padding = ("SAME", "VALID")[seed % 2]
    if padding == "VALID":
        h, w_ = max(h, fh), max(w_, fw)
    s = _scale(rng, 1e-4, 1.0)
    b = ModelBuilder()
    x = b.input((1, h, w_, c), s, 0, dtype=I16)
    from .tflite_builder import pool2d_output_shape
    y = b.tensor(pool2d_output_shape((1, h, w_, c), (fh, fw), (sh, sw), padding), s, 0, dtype=I16)
    b.op(op, [x], [y], filter_height=fh, filter_width=fw, stride_h=sh, stride_w=sw,
         padding=padding, fused_activation=ACTS[seed % len(ACTS)])
    b.output(y)
    return b.build(), int16_samples(rng, (1, h, w_, c), count)


def requantize_case(src, dst, seed: int, count: int = 32):
    """QUANTIZE between int8 and int16 (or int16 -> int16) inside a graph:
    an int16 FULLY_CONNECTED (or the int8 side's input) feeds it."""
    rng = np.random.default_rng(16900 + seed)
    n = int(rng.integers(1, 64))
    s_in, s_out = _scale(rng, 1e-4, 1.0), _scale(rng, 1e-4, 1.0)
    z_in = 0 if src == I16 else int(rng.integers(-128, 128))
    z_out = 0 if dst == I16 else int(rng.integers(-128, 128))
    b = ModelBuilder()
    x = b.input((1, n), s_in, z_in, dtype=src)
    y = b.tensor((1, n), s_out, z_out, dtype=dst)
    b.op("QUANTIZE", [x], [y])
    b.output(y)
    if src == I16:
        xs = int16_samples(rng, (1, n), count)
    else:
        xs = rng.integers(-128, 128, size=(count, 1, n)).astype(np.int8)
    return b.build(), xs


def chain_case(seed: int, count: int = 8, int8_edges: bool = False):
    """Every int16 kernel in one model (for QEMU, one firmware per board):
    CONV_2D -> DEPTHWISE_CONV_2D -> MAX_POOL_2D -> ADD (with the conv output
    pooled alike) -> MUL -> AVERAGE_POOL_2D -> RESHAPE -> FULLY_CONNECTED
    -> QUANTIZE (int16 -> int16); int8_edges puts QUANTIZE int8 ->
    int16 and int16 -> int8 at the ends."""
    rng = np.random.default_rng(17000 + seed)
    h, w_, c = 8, 8, 3
    b = ModelBuilder()
    s0 = _scale(rng, 1e-4, 1e-2)
    if int8_edges:
        x8 = b.input((1, h, w_, c), _scale(rng, 0.01, 0.1), int(rng.integers(-20, 20)))
        x = b.tensor((1, h, w_, c), s0, 0, dtype=I16)
        b.op("QUANTIZE", [x8], [x])
    else:
        x = b.input((1, h, w_, c), s0, 0, dtype=I16)

    def conv(t, s_in, cout, dw=False):
        cin = b.info(t).shape[3]
        if dw:
            wq, ws = random_weights(rng, (1, 3, 3, cin), 3)
            wt = b.const_int8(wq, ws, [0] * len(ws), axis=3)
        else:
            wq, ws = random_weights(rng, (cout, 3, 3, cin), 0)
            wt = b.const_int8(wq, ws, [0] * len(ws), axis=0)
        n = cin if dw else cout
        # seed 1: the int32-bias path (int32 accumulator) for CONV_2D
        bias = _bias(b, rng, n, s_in, ws, "int32" if seed % 2 and not dw else "int64")
        s_out = _out_scale(rng, s_in, ws, 9 if dw else 9 * cin)
        sh = b.info(t).shape
        y = b.tensor((1, sh[1], sh[2], n), s_out, 0, dtype=I16)
        if dw:
            b.op("DEPTHWISE_CONV_2D", [t, wt, bias], [y], stride_h=1, stride_w=1, padding="SAME",
                 depth_multiplier=1)
        else:
            b.op("CONV_2D", [t, wt, bias], [y], stride_h=1, stride_w=1, padding="SAME",
                 fused_activation="RELU")
        return y, s_out

    c1, s1 = conv(x, s0, 4)
    d1, s2 = conv(c1, s1, 4, dw=True)
    p1 = b.tensor((1, 4, 4, 4), s2, 0, dtype=I16)
    b.op("MAX_POOL_2D", [d1], [p1], filter_height=2, filter_width=2, stride_h=2, stride_w=2,
         padding="VALID")
    p2 = b.tensor((1, 4, 4, 4), s1, 0, dtype=I16)
    b.op("MAX_POOL_2D", [c1], [p2], filter_height=2, filter_width=2, stride_h=2, stride_w=2,
         padding="VALID")
    s3 = float(np.float32(max(s1, s2) * 1.5))
    a1 = b.tensor((1, 4, 4, 4), s3, 0, dtype=I16)
    b.op("ADD", [p1, p2], [a1])
    s4 = float(np.float32(s3 * s3 * 20000))
    m1 = b.tensor((1, 4, 4, 4), s4, 0, dtype=I16)
    b.op("MUL", [a1, p1 if seed % 2 else a1], [m1])
    ap = b.tensor((1, 2, 2, 4), s4, 0, dtype=I16)
    b.op("AVERAGE_POOL_2D", [m1], [ap], filter_height=2, filter_width=2, stride_h=2, stride_w=2,
         padding="VALID")
    r = b.reshape(ap, (1, 16))
    wq, ws = random_weights(rng, (10, 16), None)
    fw = b.const_int8(wq, ws, [0], axis=0)
    s5 = _out_scale(rng, s4, ws, 16)
    f = b.tensor((1, 10), s5, 0, dtype=I16)
    fb = _bias(b, rng, 10, s4, ws, ("none", "int32", "int64")[seed % 3])
    b.op("FULLY_CONNECTED", [r, fw, -1 if fb is None else fb], [f])
    q = b.tensor((1, 10), float(np.float32(s5 * 0.7)), 0, dtype=I16)
    b.op("QUANTIZE", [f], [q])
    if int8_edges:
        o = b.tensor((1, 10), float(np.float32(s5 * 200)), int(rng.integers(-10, 10)))
        b.op("QUANTIZE", [q], [o])
        b.output(o)
        xs = rng.integers(-128, 128, size=(count, 1, h, w_, c)).astype(np.int8)
    else:
        b.output(q)
        xs = int16_samples(rng, (1, h, w_, c), count)
    return b.build(), xs


def mean_case(seed: int, count: int = 32):
    """MEAN over random axes of a 4-D int16 tensor, keep_dims either way,
    output scale equal to the input's or not."""
    rng = np.random.default_rng(19300 + seed)
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 7, size=3))
    axes = sorted(rng.choice([1, 2, 3], size=int(rng.integers(1, 4)), replace=False).tolist())
    keep = bool(seed % 2)
    s_in = _scale(rng, 1e-4, 1e-1)
    s_out = s_in if seed % 3 == 0 else float(np.float32(s_in * np.exp(rng.uniform(-1.0, 1.0))))
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    b = ModelBuilder()
    x = b.input(shape, s_in, 0, dtype=I16)
    y = b.tensor(out_shape, s_out, 0, dtype=I16)
    b.op("MEAN", [x, b.const_int32(np.asarray(axes, np.int32))], [y], keep_dims=keep)
    b.output(y)
    return b.build(), int16_samples(rng, shape, count)


def int32_edges_case(seed: int, inner=I16, count: int = 8):
    """int32 model input and output around an int16 (or int8) graph:
    QUANTIZE int32 -> inner, FULLY_CONNECTED, QUANTIZE inner -> int32."""
    rng = np.random.default_rng(19500 + seed)
    n, units = int(rng.integers(1, 20)), int(rng.integers(1, 12))
    s0 = _scale(rng, 1e-5, 1e-3)
    s1 = float(np.float32(s0 * np.exp(rng.uniform(0.0, 3.0))))  # downscale only: int32 in
    b = ModelBuilder()
    x = b.input((1, n), s0, 0, dtype=np.int32)
    z_in = 0 if inner == I16 else int(rng.integers(-20, 20))
    h = b.tensor((1, n), s1, z_in, dtype=inner)
    b.op("QUANTIZE", [x], [h])
    wq, ws = random_weights(rng, (units, n), None)
    w = b.const_int8(wq, ws, [0], axis=0)
    s2 = _out_scale(rng, s1, ws, n) if inner == I16 else float(np.float32(s1 * ws[0] * 8 * np.sqrt(n)))
    z_out = 0 if inner == I16 else int(rng.integers(-20, 20))
    f = b.tensor((1, units), s2, z_out, dtype=inner)
    if inner == I16:
        b.op("FULLY_CONNECTED", [h, w, -1], [f])
    else:
        bias = b.const_int32(np.zeros(units, np.int32), [float(np.float32(s1 * ws[0]))] * units, [0] * units)
        b.op("FULLY_CONNECTED", [h, w, bias], [f])
    y = b.tensor((1, units), float(np.float32(s2 * np.exp(rng.uniform(-4.0, 1.0)))), 0, dtype=np.int32)
    b.op("QUANTIZE", [f], [y])
    b.output(y)
    xs = rng.integers(-(1 << 31), 1 << 31, size=(count, 1, n), dtype=np.int64)
    xs[1] = rng.integers(-(1 << 20), 1 << 20, size=(1, n))
    xs[2] = 0
    xs[3, 0, 0], xs[3, 0, -1] = -(1 << 31), (1 << 31) - 1
    return b.build(), xs.astype(np.int32)
