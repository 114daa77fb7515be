"""16x8 element-wise activations: LOGISTIC and TANH (TFLM's table with
linear interpolation), RELU, RELU6, LEAKY_RELU (requantization per value).

LOGISTIC / TANH (docs/arithmetic.md, section 16): TFLM first brings the
input to a scale of 1/(3 * 4096) with a 15-bit multiplier and a rounding
right shift (power-of-two input scales of 2^-12 take the shortcut x * 3,
TANH also 2^-13 as x * 6), then interpolates a 256-entry table of the
sigmoid in unsigned 0.16 fixed point: 9 fraction bits per step for LOGISTIC,
8 for TANH (tanh(x) = 2 sigmoid(2x) - 1), and mirrors negative inputs. The
output scale must be 2^-15, zero points 0.
"""
from __future__ import annotations

import math

import numpy as np

from ..fixedpoint import f32, quantize_multiplier, round_half_away
from ..layer import Layer
from .int16 import check_symmetric_int16

# TFLM's sigmoid table (sigmoid_table_uint16): 256 values of the sigmoid in
# unsigned 0.16 fixed point, one step per 1/24 of the input range. Data, not
# code: the values are tuned for the interpolation (they are not the rounded
# sigmoid), so bit-exactness needs these very numbers.
SIGMOID_UINT16 = (
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535)
assert len(SIGMOID_UINT16) == 256


def checked_log2(scale: float) -> tuple[bool, int]:
    """TFLM's CheckedLog2 in float32: (is a power of two within 1e-3, rounded log2)."""
    x = np.float32(math.log(f32(scale))) * np.float32(1.0 / math.log(2.0))
    rounded = round_half_away(float(np.float32(x)))
    return abs(float(np.float32(x) - np.float32(rounded))) < 1e-3, rounded


def _sigmoid_params(layer: Layer, pot_shifts: tuple[int, ...]) -> tuple[int, int]:
    """(input multiplier, right shift) taking the input to scale 1/(3 * 4096)."""
    x, y = layer.input(), layer.output()
    check_symmetric_int16(layer, x, y)
    if x.size != y.size:
        raise layer.refuse(f"input has {x.size} values but output {y.size}")
    pot_out, log2_out = checked_log2(y.scale)
    if not pot_out or log2_out != -15:
        raise layer.refuse(f"output scale {y.scale:g} must be 2^-15 (TFLM's int16 "
                           f"{layer.node.op.value} output)")
    pot, log2_in = checked_log2(x.scale)
    shift = 12 + log2_in
    if pot and shift in pot_shifts:
        return 3 << shift, 0
    multiplier = float(f32(x.scale)) * 4096.0 * 3.0
    shift = 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    if multiplier > 32767.0:
        raise layer.refuse(f"input scale {x.scale:g} is too large for TFLM's int16 "
                           f"{layer.node.op.value} (its 15-bit input multiplier overflows)")
    return int(multiplier), shift


def _sigmoid_context(layer: Layer, tanh: bool) -> dict:
    mult, shift = _sigmoid_params(layer, (0, 1) if tanh else (0,))
    return {
        "template": "kernels/int16/sigmoid.c.j2", "tanh": tanh,
        "size": layer.input().size, "mult": mult, "shift": shift,
        "round": (1 << (shift - 1)) if shift > 0 else 0,
        "table": layer.const("sigmoid", SIGMOID_UINT16, "uint16_t"),
        "inplace": True,  # each value is read, then its own output written
    }


def logistic16(layer: Layer) -> dict:
    return _sigmoid_context(layer, tanh=False)


def tanh16(layer: Layer) -> dict:
    return _sigmoid_context(layer, tanh=True)


# ---------------------------------------------------------------- RELU family

def _rescale_io(layer: Layer):
    x, y = layer.input(), layer.output()
    check_symmetric_int16(layer, x, y)
    if x.size != y.size:
        raise layer.refuse(f"input has {x.size} values but output {y.size}")
    return x, y


def _rescale(layer: Layer, pos: float, neg: float | None, lo: int, hi: int) -> dict:
    """y = clamp(requant(x, pos or neg by the sign of x), lo, hi): the
    requantization of TFLM's int16 RELU and LEAKY_RELU (zero points 0)."""
    mp, sp = quantize_multiplier(pos)
    mn, sn = quantize_multiplier(neg) if neg is not None else (mp, sp)
    for m, s in ((mp, sp), (mn, sn)):
        if s > 15:  # a 16-bit value shifted left by more would leave int32
            raise layer.refuse("the rescale factor is too large for TFLM's int32 arithmetic")
    return {"template": "kernels/int16/rescale.c.j2", "size": layer.input().size,
            "pos_mult": mp, "pos_shift": sp, "neg_mult": mn, "neg_shift": sn,
            "lo": lo, "hi": hi, "inplace": True, "what": f"{layer.node.op.value} on int16"}


def relu16(layer: Layer) -> dict:
    x, y = _rescale_io(layer)
    # TFLM: requantize by s_in / s_out (double), clamp at the output's zero
    return _rescale(layer, float(f32(x.scale)) / float(f32(y.scale)), None, 0, 32767)


def relu6_16(layer: Layer) -> dict:
    x, _ = _rescale_io(layer)
    # TFLM's RELU6 clamps the input codes to [0, q(6)] on the input scale
    six = min(32767, round_half_away(float(np.float32(6.0) / np.float32(x.scale))))
    return {"template": "kernels/int16/rescale.c.j2", "size": x.size, "pos_mult": None,
            "lo": 0, "hi": six, "inplace": True, "what": "RELU6 on int16: clamp the codes"}


def leaky_relu16(layer: Layer) -> dict:
    x, y = _rescale_io(layer)
    alpha = float(layer.options.get("alpha", 0.2))
    if not np.isfinite(alpha):
        raise layer.refuse(f"alpha {alpha} is not a finite number")
    s_in, s_out = float(f32(x.scale)), float(f32(y.scale))
    # in double: the TFLM we match computes both factors so on int16
    # (measured: the float32 quotients of its older Prepare miss by 1 LSB
    # on a few hundred of the 65,536 codes)
    return _rescale(layer, s_in / s_out, s_in * float(f32(alpha)) / s_out, -32768, 32767)


# ---------------------------------------------------------------- SOFTMAX

def _round32(x) -> np.float32:
    """TfLiteRound (std::round) on a float32."""
    return np.float32(round_half_away(float(x)))


def _expf(x: np.float32) -> np.float32:
    # glibc's expf is correctly rounded; exp in double, rounded once, is too
    return np.float32(math.exp(float(x)))


def int16_lut(func, lo: float, hi: float) -> np.ndarray:
    """TFLM's gen_lut for int16 in and out, in float32 as TFLM computes it: 512
    samples of func over [lo, hi] (output range [-1, 1] on int16), each
    corrected by half the error of linear interpolation at its midpoint,
    and one more sample at hi for the last slope."""
    f = np.float32
    lo, hi = f(lo), f(hi)
    steps = 512
    step = f((hi - lo) / f(steps))
    half = f(step / f(2))
    scale_inv = f(f(65536.0) / f(f(1.0) - f(-1.0)))
    lut = np.zeros(steps + 1, dtype=np.int64)
    for i in range(steps):
        val = func(f(lo + f(f(i) * step)))
        mid = func(f(f(lo + f(f(i) * step)) + half))
        nxt = func(f(lo + f(f(i + 1) * step)))
        sample = _round32(f(val * scale_inv))
        interp = _round32(f(f(f(nxt * scale_inv) + _round32(f(val * scale_inv))) / f(2)))
        err = f(interp - _round32(f(mid * scale_inv)))
        bias = _round32(f(err / f(2)))
        lut[i] = int(min(max(float(f(sample - bias)), -32768.0), 32767.0))
    lut[steps] = int(min(max(float(_round32(f(func(hi) * scale_inv))), -32768.0), 32767.0))
    return lut


def _one_over_one_plus(x: np.float32) -> np.float32:
    return np.float32(np.float32(1.0) / np.float32(np.float32(1.0) + x))


def softmax16(layer: Layer) -> dict:
    x, y = layer.input(), layer.output()
    check_symmetric_int16(layer, x, y)
    if x.size != y.size or not x.shape:
        raise layer.refuse("input and output must have the same, non-empty shape")
    target = np.float32(1.0) / np.float32(32768.0)
    if abs(np.float32(y.scale) - target) > np.float32(0.001) * target:
        raise layer.refuse(f"output scale {y.scale:g} must be 1/32768 (TFLM's int16 SOFTMAX)")
    depth = int(x.shape[-1])
    if not 1 <= depth <= 65536:  # the row's sum of exps must fit int32
        raise layer.refuse(f"a last axis of {depth} values is not supported (1 to 65536)")
    beta = float(np.float32(layer.options.get("beta", 1.0)))
    # the input difference rescaled so that [-65535, 0] covers [-10, 0]
    mult, shift = quantize_multiplier(float(f32(x.scale)) * beta / (10.0 / 65535.0))
    if shift > 15:
        raise layer.refuse(f"input scale times beta ({x.scale * beta:g}) is too large for "
                           "TFLM's int32 rescaling")
    return {
        "template": "kernels/int16/softmax.c.j2", "rows": x.size // depth, "depth": depth,
        "mult": mult, "shift": shift,
        "exp_lut": layer.const("exp_lut", int16_lut(_expf, -10.0, 0.0), "int16_t"),
        "recip_lut": layer.const("recip_lut", int16_lut(_one_over_one_plus, 0.0, 1.0), "int16_t"),
        # a row's outputs are written only after all its inputs were read
        "inplace": True,
    }

