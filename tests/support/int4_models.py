"""Multi-output models of INT4-weight layers (CONV_2D, DEPTHWISE_CONV_2D
per-channel and per-tensor, FULLY_CONNECTED per-tensor), as TFLite Micro
reads them: one build and one TFLM run cover every kernel path.

Each seed draws its own shapes and quantization. The layers are chosen so
that every code path of the INT4 kernels runs: the blocked GEMM's in-place
1x1 rows (whole 8-byte words), its window copy (odd tap counts, strides,
padding, dilation) and its shared pair window (stride < kernel width), a
grouped convolution (the generic loop), depthwise with multipliers 1, 2, 3
and a single input channel, FC rows read in place (depth % 8 == 0) and
copied (other depths, several rows per inference), one row longer than
255, a residual ADD fused into its convolution, a shared pair window
whose rows end half a weight word short, and one layer of each
op whose weights are only -8 and 7.
"""
from __future__ import annotations

import numpy as np

from .tflite_builder import ModelBuilder, random_activation_quant, random_bias, random_int4_weights

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]


def _extreme(rng, shape) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, -8, 7).astype(np.int8)


def int4_model(seed: int, int8: bool = False, sparsity: float = 0.0) -> bytes:
    """The seed's model; int8=True writes the same weight values as INT8
    tensors (the reference for the packed size); sparsity > 0 zeroes that
    share of the weights (pruned layers, for the sparse kernels)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()

    def const(values, scales, axis):
        if sparsity:
            values = np.where(rng.random(values.shape) < sparsity, 0, values).astype(np.int8)
        return (b.const_int8 if int8 else b.const_int4)(values, scales, axis=axis)
    c1 = 8
    odd = int(rng.choice([3, 5, 7]))
    x1 = b.input((1, int(rng.integers(6, 10)), 2 * int(rng.integers(3, 6)), c1), *random_activation_quant(rng))
    x2 = b.input((1, int(rng.integers(5, 9)), int(rng.integers(5, 9)), odd), *random_activation_quant(rng))
    x3 = b.input((1, int(rng.integers(4, 8)), int(rng.integers(4, 8)), 1), *random_activation_quant(rng))
    outs = []
    n_act = [0]

    def act():
        n_act[0] += 1
        return ACTIVATIONS[(seed + n_act[0]) % 4]

    def conv(x, cout, kh, kw, cin_f, stride=1, padding="SAME", dilation=1, per_channel=True, extreme=False,
             output=True):
        s_in = b.info(x).scale
        shape = (cout, kh, kw, cin_f)
        wq, ws = random_int4_weights(rng, shape, axis=0 if per_channel else None)
        if extreme:
            wq = _extreme(rng, shape)
        bq, bs = random_bias(rng, cout, s_in, ws)
        y = b.conv2d(x, const(wq, ws, axis=0), b.const_int32(bq, scales=bs),
                     *random_activation_quant(rng, scale_range=(0.01, 1.0)), stride=stride,
                     padding=padding, activation=act(), dilation=dilation)
        if output:
            outs.append(y)
        return y

    def depthwise(x, m, kh, kw, stride=1, padding="SAME", dilation=1, per_channel=True, extreme=False):
        s_in, cin = b.info(x).scale, b.info(x).shape[3]
        shape = (1, kh, kw, cin * m)
        wq, ws = random_int4_weights(rng, shape, axis=3 if per_channel else None)
        if extreme:
            wq = _extreme(rng, shape)
        bq, bs = random_bias(rng, cin * m, s_in, ws)
        y = b.depthwise_conv2d(x, const(wq, ws, axis=3), b.const_int32(bq, scales=bs),
                               *random_activation_quant(rng, scale_range=(0.01, 1.0)), stride=stride,
                               padding=padding, activation=act(), dilation=dilation, depth_multiplier=m)
        outs.append(y)

    def fc(x, depth, units, extreme=False, with_bias=True):
        s_in = b.info(x).scale
        wq, ws = random_int4_weights(rng, (units, depth), axis=None)
        if extreme:
            wq = _extreme(rng, (units, depth))
        bias = None
        if with_bias:
            bq, bs = random_bias(rng, units, s_in, ws)
            bias = b.const_int32(bq, scales=bs)
        outs.append(b.fully_connected(x, const(wq, ws, axis=0), bias,
                                      *random_activation_quant(rng, scale_range=(0.01, 1.0)), activation=act()))

    cout = lambda: int(rng.integers(1, 12))  # noqa: E731
    # blocked GEMM (ungrouped CONV_2D)
    conv(x1, cout(), 1, 1, c1, padding="VALID")                     # in place: 8 taps, one word
    conv(x1, cout(), 3, 3, c1)                                      # shared pair window
    conv(x1, cout(), 3, 3, c1, stride=2, padding="VALID", per_channel=False)
    conv(x1, cout(), 3, 2, c1, stride=(2, 1), dilation=2)           # window copy, dilation
    conv(x2, cout(), 1, 1, odd, per_channel=bool(seed % 2))         # odd taps
    conv(x2, cout(), 3, 3, odd, stride=int(rng.integers(1, 3)))     # odd taps, odd channels
    conv(x2, 7, 2, 3, odd, padding="VALID", extreme=True)
    conv(x3, cout(), 3, 3, 1, per_channel=False)
    # residual block: the conv's requantization folded into the ADD (passes/fuse.py)
    y = conv(x1, c1, 3, 3, c1, output=False)
    outs.append(b.add(y, x1, *random_activation_quant(rng, scale_range=(0.01, 1.0))))
    # grouped CONV_2D (the generic loop): 2 groups of 4 channels
    conv(x1, 2 * int(rng.integers(1, 5)), 3, 3, 4, per_channel=bool(seed % 2))
    # DEPTHWISE_CONV_2D
    depthwise(x1, 1, 3, 3)
    depthwise(x1, 2, 3, 3, stride=2, per_channel=False)
    depthwise(x2, 3, 2, 3, stride=(1, 2), padding="VALID", dilation=(1, 2))
    depthwise(x2, 1, 3, 3, extreme=True)
    depthwise(x3, 4, 3, 3, per_channel=bool(seed % 2))              # one input channel, M = 4
    # FULLY_CONNECTED, per tensor
    fc(x1, 16, int(rng.integers(1, 10)))                            # rows of whole words, in place
    fc(x2, b.info(x2).shape[2] * odd, int(rng.integers(1, 10)))     # odd depth, several rows, copied
    fc(x1, 8 * b.info(x1).shape[2], 5, extreme=True, with_bias=False)
    fc(x1, int(np.prod(b.info(x1).shape)), 3)                        # one long row (> 255: 2-byte offsets when sparse)
    # 4 channels: the shared pair window's rows end half a weight word short
    # (36 taps; pixel 1's row is read 4 bytes past them), and a 1x1 conv of
    # half a word copied
    x4 = b.input((1, int(rng.integers(3, 7)), 2 * int(rng.integers(2, 5)), 4), *random_activation_quant(rng))
    conv(x4, cout(), 3, 3, 4)
    conv(x4, cout(), 1, 1, 4, per_channel=False)
    b.output(*outs)
    return b.build()


def int4_inputs(seed: int, model: bytes, count: int = 6) -> list[np.ndarray]:
    """Random samples per input, the first all -128 and the second all 127."""
    from .harness import extreme_samples
    return extreme_samples(model, seed, count)
