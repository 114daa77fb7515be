"""Build-time quantization constants, computed the way TFLite Micro computes them.

Real multipliers become a Q31 mantissa and a power-of-two shift
(QuantizeMultiplier in the TFLite quantization spec). The C side applies them
with the helpers in templates/kernels/common.c.j2; tinycomp.reference mirrors
both in numpy for tests.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    # std::round semantics (TfLiteRound), not Python's banker's rounding.
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(q31 multiplier, shift) with real = multiplier * 2**(shift - 31)."""
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q = round_half_away(mantissa * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        # TFLM would shift an int32 left by 31 or more: undefined behaviour in C.
        raise ModelError(f"a quantization scale ratio of {real:.3g} is too large for integer "
                         "kernels (scales out of proportion)")
    # No clamp of large shifts: TFLM only clamps in single-rounding builds.
    return q, shift


def quantize_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in reals]
    return (np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.int64))


def f32(x) -> float:
    """Round through float32, as C++ does when it multiplies two float scales."""
    return float(np.float32(x))


def activation_range(activation: str, scale: float, zero_point: int,
                     lo: int = INT8_MIN, hi: int = INT8_MAX) -> tuple[int, int]:
    """Clamp bounds of a fused activation in the quantized domain (TFLM's
    rules), within the output type's [lo, hi] (int8 unless told)."""
    def q(real: float) -> int:
        # TFLM divides in float, then rounds half away from zero.
        return zero_point + round_half_away(float(np.float32(real) / np.float32(scale)))

    if activation == "NONE":
        return lo, hi
    if activation == "RELU":
        return max(lo, q(0.0)), hi
    if activation == "RELU6":
        return max(lo, q(0.0)), min(hi, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(lo, q(-1.0)), min(hi, q(1.0))
    raise ValueError(activation)
