"""Exact TFLite Micro results of the int8 -> int8 element-wise ops.

Each op has only 256 possible inputs, so each function here returns the op's
whole table: ``table[q + 128]`` is TFLM's output for input value ``q``.
The parameters are derived the way each kernel's Prepare derives them (same
float/double steps), and the per-element integer steps follow the kernel's
Eval. Scales are the float32 values stored in the model.

Conditions under which TFLM's Prepare fails raise ``NotCompilable``.
"""
from __future__ import annotations

import math

import numpy as np

from . import gemmlowp as g
from ..codegen.fixedpoint import quantize_multiplier, round_half_away  # noqa: F401 (re-exported)

INPUTS = np.arange(-128, 128, dtype=np.int64)


class NotCompilable(ValueError):
    """TFLM itself rejects these parameters (its Prepare would fail)."""


def _clamp8(x) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


# ---------------------------------------------------------------- LOGISTIC / TANH

_INPUT_INTEGER_BITS = 4  # both kernels read the rescaled input as Q4.27


def sigmoid_input_params(in_scale: float) -> tuple[int, int, int]:
    """(multiplier, left shift, input radius) shared by LOGISTIC and TANH:
    the input is rescaled to Q4.27 by scale * 2^27, and inputs whose
    magnitude reaches the radius saturate without being rescaled."""
    real = float(in_scale) * float(1 << (31 - _INPUT_INTEGER_BITS))
    q, shift = math.frexp(real)
    mult = round_half_away(q * (1 << 31))
    if mult >= 1 << 31 or shift < 0 or shift > 62:
        # TFLM would compute garbage (int32 overflow / negative shifts).
        raise NotCompilable(f"input scale {in_scale} is out of range")
    radius = math.floor(1.0 * ((1 << _INPUT_INTEGER_BITS) - 1)
                        * (1 << (31 - _INPUT_INTEGER_BITS)) / (1 << shift))
    return mult, shift, radius


def _sigmoid_like(in_scale, in_zp, fn, out_shift: int, out_zp: int) -> np.ndarray:
    mult, shift, radius = sigmoid_input_params(in_scale)
    x = INPUTS - int(in_zp)
    inside = (x > -radius) & (x < radius)
    xs = np.where(inside, x, 0)  # outside values never reach the multiply
    q4 = g.multiply_by_quantized_multiplier(xs, mult, shift)
    y = g.rdbpot(fn(q4, _INPUT_INTEGER_BITS), out_shift) + out_zp
    y = np.where(x <= -radius, -128, np.where(x >= radius, 127, y))
    return _clamp8(y)


def logistic_table(in_scale: float, in_zp: int) -> np.ndarray:
    """LOGISTIC: output is Q0.31 rounded to 1/256 steps with zero point -128.
    TFLM never reads the output scale (it only requires zero point -128)."""
    return _sigmoid_like(in_scale, in_zp, g.logistic, 31 - 8, -128)


def tanh_table(in_scale: float, in_zp: int) -> np.ndarray:
    """TANH: output is Q0.31 rounded to 1/128 steps, zero point 0. TFLM
    ignores the output tensor's quantization entirely."""
    return _sigmoid_like(in_scale, in_zp, g.tanh, 31 - 7, 0)


# ---------------------------------------------------------------- RELU / RELU6 / QUANTIZE


def requantize_table(in_scale, in_zp, out_scale, out_zp, lo=-128, hi=127) -> np.ndarray:
    """out = clamp(zp_out + MultiplyByQuantizedMultiplier(q - zp_in, in/out)),
    the multiplier from the double quotient of the float32 scales."""
    mult, shift = quantize_multiplier(float(in_scale) / float(out_scale))
    y = g.multiply_by_quantized_multiplier(INPUTS - int(in_zp), mult, shift) + int(out_zp)
    return _clamp8(np.clip(y, lo, hi))


def leaky_relu_table(in_scale, in_zp, out_scale, out_zp, alpha) -> np.ndarray:
    """LEAKY_RELU: q - zp_in requantized by s_in / s_out where it is >= 0, by
    s_in * alpha / s_out (that product and quotient in float32, as TFLM's
    Prepare writes it) where it is negative; plus zp_out, saturated."""
    f = np.float32
    m_id, sh_id = quantize_multiplier(float(f(f(in_scale) / f(out_scale))))
    m_a, sh_a = quantize_multiplier(float(f(f(in_scale) * f(alpha)) / f(out_scale)))
    x = INPUTS - int(in_zp)
    y = np.where(x >= 0, g.multiply_by_quantized_multiplier(x, m_id, sh_id),
                 g.multiply_by_quantized_multiplier(x, m_a, sh_a)) + int(out_zp)
    return _clamp8(y)


def relu_table(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """RELU requantizes to the output scale and clamps below at the output's
    zero point (round(0 / scale) is 0)."""
    return requantize_table(in_scale, in_zp, out_scale, out_zp, lo=max(-128, int(out_zp)))


def relu6_table(in_scale, in_zp) -> np.ndarray:
    """RELU6 in TFLM clamps the input codes to [zp_in, q(6.0)] on the INPUT
    scale and never reads the output quantization (the converter gives both
    tensors the same one)."""
    six = round_half_away(float(np.float32(6.0) / np.float32(in_scale))) + int(in_zp)
    six = min(max(six, -128), 127)
    zero = int(in_zp)
    x = INPUTS
    return _clamp8(np.where(x > six, six, np.where(x < zero, zero, x)))


# ---------------------------------------------------------------- HARD_SWISH (int16 steps)


def _wrap16(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _srdhm16(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    n = ab + nudge
    q = np.where(n < 0, -(np.abs(n) // (1 << 15)), n // (1 << 15))
    return np.where((a == b) & (a == -32768), 32767, _wrap16(q))


def _sdhm16(a, b) -> np.ndarray:
    """Doubling high multiply that truncates toward zero (no rounding nudge)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    q = np.where(ab < 0, -(np.abs(ab) // (1 << 15)), ab // (1 << 15))
    return np.where((a == b) & (a == -32768), 32767, _wrap16(q))


def _sat_left_shift16(v, amount: int) -> np.ndarray:
    return np.clip(np.asarray(v, np.int64) * (1 << amount), -32768, 32767)


def _rdbpot16(x, exponent: int) -> np.ndarray:
    """RoundingDivideByPOT on int16 values. The mask is built in int16, so for
    exponents of 16 and more it wraps to all ones; reproduced as C does it."""
    x = np.asarray(x, np.int64)
    mask = int(_wrap16((1 << exponent) - 1))
    remainder = _wrap16(x & mask)
    threshold = _wrap16((mask >> 1) + (x < 0))
    return _wrap16((x >> exponent) + (remainder > threshold))


def _downscale_to_int16(m32: int) -> int:
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(in_scale, out_scale) -> tuple[int, int, int, int]:
    """(output multiplier int16, output exponent, reluish multiplier int16,
    reluish exponent), from float32 scale arithmetic as TFLM's Prepare does."""
    f = np.float32
    hires = f(1.0 / 128.0) * f(in_scale)
    reluish_scale = f(3.0) / f(32768.0)
    out_m32, out_exp = quantize_multiplier(float(hires / f(out_scale)))
    if out_exp > 0:
        raise NotCompilable("output scale is too small for the input scale "
                            "(TFLM needs input scale < 128 * output scale)")
    rel_m32, rel_exp = quantize_multiplier(float(hires / reluish_scale))
    return _downscale_to_int16(out_m32), out_exp, _downscale_to_int16(rel_m32), rel_exp


def hard_swish_table(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """x * relu6(x + 3) / 6 in TFLM's int16 fixed point: the input on a 2^7
    finer scale, a 'reluish' factor in [0, 1] and the output rescale."""
    out_m, out_exp, rel_m, rel_exp = hard_swish_params(in_scale, out_scale)
    hires = _wrap16((INPUTS - int(in_zp)) * 128)
    on_output_scale = _srdhm16(hires, out_m)
    reluish = hires
    if rel_exp > 0:
        # Shift all but one bit first so saturation can only happen in the
        # last shift, after the multiply.
        reluish = _sat_left_shift16(reluish, rel_exp - 1)
    reluish = _srdhm16(reluish, rel_m)
    if rel_exp > 0:
        reluish = _sat_left_shift16(reluish, 1)
    if rel_exp < 0:
        reluish = _rdbpot16(reluish, -rel_exp)
    reluish = _wrap16((reluish + (1 << 15)) >> 1)  # [-1, 1] -> [0, 1]
    y = _rdbpot16(_sdhm16(reluish, on_output_scale), -out_exp)
    y = _wrap16(y + int(out_zp))
    return _clamp8(y)


def lut_for_uint8_index(table: np.ndarray) -> np.ndarray:
    """Reorder a table indexed by q + 128 into one indexed by (uint8_t)q, so
    the C kernel needs no offset: entries 0..127 are q = 0..127, then -128..-1."""
    return np.roll(np.asarray(table), 128)
