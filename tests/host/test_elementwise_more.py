"""SUB, MINIMUM, MAXIMUM, PRELU and LEAKY_RELU on the host, bit-exact with
TFLM: seeded random shapes and quantizations, every broadcasting kind of
tests/host/test_elementwise.py, fused activations, all 256 input codes for
the one-operand ops (several layers of one model, one output each)."""
import numpy as np
import pytest

from tests.host.test_elementwise import ACTIVATIONS, KINDS, N_SAMPLES, _operands, _random_shape
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

CODES = np.arange(-128, 128, dtype=np.int8)


@pytest.mark.parametrize("seed", range(20))
def test_sub_random(seed):
    rng = np.random.default_rng(9000 + seed)
    shape = _random_shape(rng)
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    lhs, rhs = _operands(b, rng, x, shape, KINDS[seed % len(KINDS)])
    if seed % 3 == 1:
        lhs, rhs = rhs, lhs
    y = b.sub(lhs, rhs, *random_activation_quant(rng, scale_range=(0.005, 1.0)), activation=ACTIVATIONS[seed % 4])
    b.output(y)
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


def test_sub_same_shape_table_path_and_extreme_scales():
    # same-shape operands take the table kernel; one scale 300x the other
    rng = np.random.default_rng(9100)
    b = ModelBuilder()
    x = b.input((1, 5, 4, 8), 0.6, 12)
    m = b.mean(x, [0], scale=0.002, zero_point=-30)
    y0 = b.sub(x, m, 0.7, -3)
    y1 = b.sub(m, x, 0.01, 100, activation="RELU")
    b.output(y0, y1)
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 5, 4, 8)))


@pytest.mark.parametrize("op", ["minimum", "maximum"])
@pytest.mark.parametrize("seed", range(10))
def test_min_max_random(op, seed):
    rng = np.random.default_rng(9200 + seed + (0 if op == "minimum" else 50))
    shape = _random_shape(rng)
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    lhs, rhs = _operands(b, rng, x, shape, KINDS[seed % len(KINDS)])
    b.output(getattr(b, op)(lhs, rhs))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


@pytest.mark.parametrize("seed", range(3))
def test_leaky_relu_every_code(seed):
    # 12 quantizations and alphas per model, one output each
    rng = np.random.default_rng(9300 + seed)
    b = ModelBuilder()
    x = b.input((1, 256), *random_activation_quant(rng))
    outs = []
    for k in range(12):
        alpha = [0.01, 0.1, 0.2, 0.3, 0.5, 0.9, 1.0, 1.7, 0.001, 0.25, 0.05, 3.0][k]
        s, z = random_activation_quant(rng, scale_range=(0.002, 1.0))
        outs.append(b.leaky_relu(x, alpha, s, z) if k % 4 else b.leaky_relu(x, alpha))  # some keep s_in
    b.output(*outs)
    assert_bit_exact(b.build(), np.stack([CODES, CODES[::-1]]).reshape(2, 1, 256))


# alpha shapes against an input (1, H, W, C): TFLM broadcasts up to 4-D
ALPHAS = ["channel", "hwc", "scalar", "full", "h11", "activation"]


@pytest.mark.parametrize("seed", range(12))
def test_prelu_random(seed):
    rng = np.random.default_rng(9400 + seed)
    n, h, w, c = shape = (1, int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.choice([1, 3, 4, 8, 13])))
    kind = ALPHAS[seed % len(ALPHAS)]
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    alpha_shape = {"channel": (c,), "hwc": (h, w, c), "scalar": (1,), "full": shape, "h11": (1, h, 1, 1),
                   "activation": None}[kind]
    if alpha_shape is None:  # alpha computed from the input: a per-channel mean
        alpha = b.mean(x, [1, 2], scale=float(rng.uniform(0.001, 0.02)), zero_point=int(rng.integers(-128, 128)))
    else:
        s = float(rng.uniform(0.001, 0.02))
        alpha = b.const_int8(random_int8(rng, alpha_shape), scales=s, zero_points=int(rng.integers(-128, 128)))
    y = b.prelu(x, alpha, *random_activation_quant(rng, scale_range=(0.005, 1.0)))
    b.output(y)
    inputs = random_int8(rng, (N_SAMPLES, *shape))
    inputs[0].fill(-128)
    inputs[1].fill(127)
    assert_bit_exact(b.build(), inputs)
