"""tinycomp.reference against TFLM itself: for each op, every one of the 256
int8 inputs under many seeded random quantizations must give TFLM's output
exactly. These tables are what the generated C looks up, so this is the main
proof of the LUT kernels; SOFTMAX is checked row by row the same way."""
import zlib

import numpy as np
import pytest

from tests.support.tflite_builder import random_activation_quant, single_op_model
from tests.support.tflm import run_tflm
from tinycomp.reference import activations as ref
from tinycomp.reference import gemmlowp as g
from tinycomp.reference import softmax as ref_softmax

N_PARAMS = 50
ALL_INPUTS = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)


def _tflm_table(build, in_scale, in_zp) -> np.ndarray:
    return run_tflm(single_op_model(build, (1, 256), in_scale, in_zp), ALL_INPUTS).reshape(-1)


def _params(op: str, i: int):
    """Input quant, output quant; a few extreme scales beyond the usual range."""
    rng = np.random.default_rng([zlib.crc32(op.encode()), i])
    wide = (1e-4, 8.0) if i % 5 == 0 else (1e-3, 0.5)
    s_in, z_in = random_activation_quant(rng, scale_range=wide)
    s_out, z_out = random_activation_quant(rng, scale_range=(1e-3, 0.5))
    return float(np.float32(s_in)), z_in, float(np.float32(s_out)), z_out


def _assert_equal(ours, theirs, what):
    bad = np.flatnonzero(ours != theirs)
    assert bad.size == 0, (f"{what}: {bad.size} of 256 inputs differ, first q={bad[0] - 128}: "
                           f"ours {ours[bad[0]]}, TFLM {theirs[bad[0]]}")


# (name, builder call, reference) with (s_in, z_in, s_out, z_out)
OPS = {
    "LOGISTIC": (lambda p: (lambda b, x: b.logistic(x)), lambda p: ref.logistic_table(p[0], p[1])),
    "TANH": (lambda p: (lambda b, x: b.tanh(x)), lambda p: ref.tanh_table(p[0], p[1])),
    "RELU": (lambda p: (lambda b, x: b.relu(x, p[2], p[3])), lambda p: ref.relu_table(*p)),
    "RELU6": (lambda p: (lambda b, x: b.relu6(x, p[2], p[3])), lambda p: ref.relu6_table(p[0], p[1])),
    "QUANTIZE": (lambda p: (lambda b, x: b.quantize(x, p[2], p[3])), lambda p: ref.requantize_table(*p)),
    "HARD_SWISH": (lambda p: (lambda b, x: b.hard_swish(x, p[2], p[3])), lambda p: ref.hard_swish_table(*p)),
}


@pytest.mark.parametrize("op", sorted(OPS))
def test_table_equals_tflm(op):
    build, reference = OPS[op]
    checked = 0
    for i in range(N_PARAMS):
        p = _params(op, i)
        if op == "HARD_SWISH" and p[0] >= 64 * p[2]:
            p = (p[0], p[1], p[0] / 8, p[3])  # keep TFLM's output-exponent rule satisfied
        _assert_equal(reference(p), _tflm_table(build(p), p[0], p[1]), f"{op} {p}")
        checked += 1
    assert checked == N_PARAMS


@pytest.mark.parametrize("op,scale", [("LOGISTIC", 1.0 / 16), ("TANH", 1.0 / 32), ("LOGISTIC", 8.0),
                                      ("TANH", 1e-5), ("LOGISTIC", 0.75), ("TANH", 16.0)])
def test_sigmoid_like_odd_input_scales(op, scale):
    """Power-of-two, tiny and huge input scales (the radius shrinks to 0 at 8+)."""
    build, reference = OPS[op]
    for zp in (-128, -3, 0, 77, 127):
        p = (scale, zp, 0.0, 0)
        _assert_equal(reference(p), _tflm_table(build(p), scale, zp), f"{op} {p}")


def test_hard_swish_refusal_matches_tflm():
    """Where the reference refuses, TFLM's Prepare fails too."""
    s_in, s_out = 0.3, 0.3 / 200
    with pytest.raises(ref.NotCompilable):
        ref.hard_swish_params(s_in, s_out)
    with pytest.raises(RuntimeError):
        _tflm_table(lambda b, x: b.hard_swish(x, s_out, 0), s_in, 0)


@pytest.mark.parametrize("seed", range(N_PARAMS))
def test_softmax_equals_tflm(seed):
    rng = np.random.default_rng(1000 + seed)
    s_in, z_in = random_activation_quant(rng, scale_range=(1e-3, 1.0))
    s_in = float(np.float32(s_in))
    beta = float(np.float32(rng.choice([1.0, rng.uniform(0.05, 4.0)])))
    depth = int(rng.integers(1, 101))
    rows = int(rng.integers(1, 5))
    # narrow-ranged inputs too, so many differences sit near 0
    spread = int(rng.choice([256, 16, 3]))
    x = rng.integers(-128, -128 + spread, size=(8, rows, depth)) + rng.integers(0, 256 - spread + 1)
    x = x.astype(np.int8)
    model = single_op_model(lambda b, t: b.softmax(t, beta), (rows, depth), s_in, z_in)
    theirs = run_tflm(model, x)
    ours = ref_softmax.softmax(x, beta, s_in)
    assert np.array_equal(ours, theirs), (f"softmax beta={beta} scale={s_in} depth={depth}: "
                                         f"{np.count_nonzero(ours != theirs)} differ")


def test_gemmlowp_primitives():
    # values from the definitions: ties away from zero, saturation of -1*-1
    assert int(g.srdhm(g.INT32_MIN, g.INT32_MIN)) == g.INT32_MAX
    assert int(g.srdhm(1 << 30, 1 << 30)) == 1 << 29
    assert [int(g.rdbpot(v, 1)) for v in (3, -3, 2, -2, 1, -1)] == [2, -2, 1, -1, 1, -1]
    assert int(g.sat_mul_pot(1 << 30, 2)) == g.INT32_MAX
    assert int(g.sat_mul_pot(-(1 << 30), 2)) == g.INT32_MIN
    assert int(g.exp_on_negative_values(0, 5)) == g.INT32_MAX
    # exp and 1/(1+x) close to the real functions
    for v in (-0.1, -1.0, -3.7, -10.0):
        got = int(g.exp_on_negative_values(int(v * (1 << 26)), 5)) / 2 ** 31
        assert abs(got - np.exp(v)) < 1e-6
    for v in (0.0, 0.3, 0.99):
        got = int(g.one_over_one_plus_x_for_x_in_0_1(int(v * 2 ** 31))) / 2 ** 31
        assert abs(got - 1 / (1 + v)) < 1e-6
    assert list(g.count_leading_zeros32(np.array([1, 1 << 19, (1 << 31) - 1, 0]))) == [31, 12, 1, 32]


def test_quantize_multiplier_matches_frexp_rounding():
    assert ref.quantize_multiplier(0.5) == (1 << 30, 0)
    assert ref.quantize_multiplier(1.0) == (1 << 30, 1)
    assert ref.quantize_multiplier(0.0) == (0, 0)
    assert ref.quantize_multiplier(2.0 ** -40) == (0, 0)
    m, s = ref.quantize_multiplier(1 - 2 ** -40)  # rounds up to 2^31: renormalised
    assert (m, s) == (1 << 30, 1)
