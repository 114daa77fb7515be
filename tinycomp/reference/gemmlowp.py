"""gemmlowp-style 32-bit fixed-point arithmetic in numpy, for build-time tables.

TFLite Micro's LOGISTIC, TANH and SOFTMAX kernels are written in gemmlowp's
fixed-point vocabulary: a value is an int32 "raw" with an implied number of
integer bits (Qm.(31-m)). These functions reproduce the integer results
exactly. Every function takes and returns int64 numpy arrays (or scalars)
that hold int32 values; int64 is wide enough for every intermediate product
(|a*b| <= 2^62), so nothing here overflows before we explicitly wrap.

The formulas follow the documented behaviour of gemmlowp's fixedpoint.h
(rounding rules, saturation, polynomial and Newton-Raphson constants); the
code is our own.
"""
from __future__ import annotations

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Two's-complement wrap to int32, what plain int32 C arithmetic gives."""
    x = i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc_div(n: np.ndarray, d: int) -> np.ndarray:
    # C integer division rounds toward zero; numpy's // rounds down.
    q = np.abs(n) // d
    return np.where(n < 0, -q, q)


def srdhm(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul: round(a*b / 2^31), nudging away from
    zero, with the single overflow case INT32_MIN*INT32_MIN -> INT32_MAX."""
    a, b = i64(a), i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div(ab + nudge, 1 << 31)
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, out)


def rdbpot(x, exponent: int) -> np.ndarray:
    """RoundingDivideByPOT: arithmetic right shift rounding to nearest, ties
    away from zero (the threshold is one higher for negative x)."""
    x = i64(x)
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def sat_mul_pot(x, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT: saturating left shift for exponent > 0,
    rounding right shift for exponent < 0."""
    x = i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    out = x << exponent
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def rescale(x, src_int_bits: int, dst_int_bits: int) -> np.ndarray:
    """Change a raw value's integer bits (gemmlowp Rescale)."""
    return sat_mul_pot(x, src_int_bits - dst_int_bits)


def rounding_half_sum(a, b) -> np.ndarray:
    s = i64(a) + i64(b)
    return _trunc_div(s + np.where(s >= 0, 1, -1), 2)


# Q0.31 constants of gemmlowp's exp and reciprocal approximations.
EXP_MINUS_ONE_EIGHTH = 1895147668        # exp(-1/8)
ONE_THIRD = 715827883                    # 1/3
# exp(-2^k) for k = -2 .. 4: the barrel shifter for exp of the integer part.
EXP_BARREL = {-2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308,
              2: 39332535, 3: 720401, 4: 242}
# Q2.29 constants of the Newton-Raphson reciprocal: 48/17 and -32/17.
C48_OVER_17 = 1515870810
CNEG32_OVER_17 = -1010580540
F2_ONE = 1 << 29


def exp_on_interval_minus_quarter_0(a) -> np.ndarray:
    """exp(a) for a Q0.31 value a in [-1/4, 0): 4th-order Taylor around -1/8."""
    x = wrap32(i64(a) + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), ONE_THIRD) + x2), 1)
    return wrap32(EXP_MINUS_ONE_EIGHTH + srdhm(EXP_MINUS_ONE_EIGHTH, wrap32(x + poly)))


def exp_on_negative_values(a, int_bits: int) -> np.ndarray:
    """exp(a) as Q0.31 for a raw Q(int_bits) value a <= 0."""
    a = i64(a)
    frac_bits = 31 - int_bits
    quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_quarter = wrap32((a & (quarter - 1)) - quarter)
    result = exp_on_interval_minus_quarter_0(rescale(a_mod_quarter_minus_quarter, int_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in EXP_BARREL.items():
        if int_bits > exponent:
            bit = (remainder >> (frac_bits + exponent)) & 1
            result = np.where(bit != 0, srdhm(result, multiplier), result)
    if int_bits > 5:
        result = np.where(a < -(1 << (36 - int_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal(half_denominator: np.ndarray) -> np.ndarray:
    """Q2.29 approximation of 1/half_denominator (three Newton steps)."""
    x = wrap32(C48_OVER_17 + srdhm(half_denominator, CNEG32_OVER_17))
    for _ in range(3):
        one_minus = wrap32(F2_ONE - srdhm(half_denominator, x))
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1/(1+a) as Q0.31 for Q0.31 a in [0, 1)."""
    x = _newton_reciprocal(rounding_half_sum(a, INT32_MAX))
    return rescale(x, 1, 0)  # x/2 read as Q1.30, then to Q0.31


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """(1-a)/(1+a) as Q0.31 for Q0.31 a in [0, 1)."""
    x = _newton_reciprocal(rounding_half_sum(a, INT32_MAX))
    return rescale(wrap32(x - F2_ONE), 2, 0)


def logistic(a, int_bits: int) -> np.ndarray:
    """1/(1+exp(-a)) as Q0.31 for raw Q(int_bits) a."""
    a = i64(a)
    positive = a > 0
    abs_a = np.where(positive, a, wrap32(-a))
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_a), int_bits))
    if_negative = wrap32(INT32_MAX - if_positive)
    out = np.where(positive, if_positive, if_negative)
    return np.where(a == 0, 1 << 30, out)


def tanh(a, int_bits: int) -> np.ndarray:
    """tanh(a) as Q0.31 for raw Q(int_bits) a."""
    a = i64(a)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))  # -|a|
    # exp(2n): doubling is exact by reading the raw with one more integer bit.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, int_bits + 1))
    out = np.where(negative, wrap32(-t), t)
    return np.where(a == 0, 0, out)


def multiply_by_quantized_multiplier(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLM's double-rounding MultiplyByQuantizedMultiplier (the build the
    tflite-micro package uses): left shift (wrapping, as the int32 C code
    does), rounding doubling high multiply, rounding right shift."""
    left = max(shift, 0)
    right = max(-shift, 0)
    return rdbpot(srdhm(wrap32(i64(x) << left), multiplier), right)


def count_leading_zeros32(x) -> np.ndarray:
    x = i64(x) & 0xFFFFFFFF
    out = np.full(x.shape, 32, dtype=np.int64)
    for bit in range(31, -1, -1):
        hit = (out == 32) & (((x >> bit) & 1) == 1)
        out = np.where(hit, 31 - bit, out)
    return out
