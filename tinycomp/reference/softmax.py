"""Exact TFLite Micro int8 SOFTMAX (gemmlowp fixed point, output 1/256, zp -128).

Per row: each difference d = x - max (d <= 0) is rescaled by beta * scale
into Q5.26 and exponentiated in Q0.31; the exps, rescaled to Q12.19, are
summed; the reciprocal of the sum comes from gemmlowp's 1/(1+x) on the sum
normalised to [1, 2); each output is exp * reciprocal, rounded down to 8 bits.
Differences below diff_min contribute nothing and give -128.

The exp depends only on d (0..255 values), so ``exp_table`` is what the C
kernel gets as a constant; the sum, reciprocal and final scaling run in C.
"""
from __future__ import annotations

import math

import numpy as np

from . import gemmlowp as g
from .activations import NotCompilable, quantize_multiplier

SCALED_DIFF_INTEGER_BITS = 5    # exp input is Q5.26
ACCUM_INTEGER_BITS = 12         # sum of exps is Q12.19


def softmax_params(beta: float, in_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) as TFLM's Prepare computes them
    (PreprocessSoftmaxScaling in the double-rounding build)."""
    real = min(float(beta) * float(in_scale) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    if not real > 1.0:
        # TFLM's QuantizeMultiplierGreaterThanOne check aborts here.
        raise NotCompilable(f"beta * input scale = {float(beta) * float(in_scale):g} is too small")
    mult, shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                        * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << shift))
    return mult, shift, -radius


def exp_table(beta: float, in_scale: float) -> np.ndarray:
    """exp(beta * scale * (-k)) in Q0.31 for k = 0 .. n-1, n = min(256,
    -diff_min + 1): the only differences that count. Longer differences
    behave exactly like a 0 entry (nothing added to the sum, output -128),
    which is how the C kernel treats k >= n."""
    mult, shift, diff_min = softmax_params(beta, in_scale)
    n = min(256, -diff_min + 1)
    d = -np.arange(n, dtype=np.int64)
    rescaled = g.srdhm(g.wrap32(d << shift), mult)
    return g.exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)


def reciprocal(sum_of_exps) -> tuple[np.ndarray, np.ndarray]:
    """(Q0.31 scale, num_bits_over_unit) for a Q12.19 sum: GetReciprocal."""
    s = g.i64(sum_of_exps)
    clz = g.count_leading_zeros32(s)
    shifted_minus_one = g.wrap32(((s << clz) & 0xFFFFFFFF) - (1 << 31))
    return g.one_over_one_plus_x_for_x_in_0_1(shifted_minus_one), ACCUM_INTEGER_BITS - clz


def softmax(x: np.ndarray, beta: float, in_scale: float) -> np.ndarray:
    """int8 softmax over the last axis of x, bit-exact with TFLM."""
    x = np.asarray(x)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    table = exp_table(beta, in_scale)
    k = rows.max(axis=1, keepdims=True) - rows
    exps = np.where(k < len(table), table[np.minimum(k, len(table) - 1)], 0)
    total = g.wrap32(g.rdbpot(exps, ACCUM_INTEGER_BITS).sum(axis=1, keepdims=True))
    scale, bits_over_unit = reciprocal(total)
    exponent = bits_over_unit + 31 - 8
    if np.any(exponent > 31) or np.any(exponent < 0):
        raise NotCompilable("row too long: TFLM's softmax check fails (exponent > 31)")
    prod = g.srdhm(scale, exps)
    out = np.empty_like(prod)
    for e in np.unique(exponent):
        sel = (exponent == e)[:, 0]
        out[sel] = g.rdbpot(prod[sel], int(e))
    return np.clip(out - 128, -128, 127).astype(np.int8).reshape(x.shape)
