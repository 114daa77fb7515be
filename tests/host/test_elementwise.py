"""ADD and MUL on the host, bit-exact with TFLM.

Models have one input, so the second operand is either a constant or another
branch computed from the same input: the input itself, or a MEAN of it (a
per-channel vector, a row, a column, or over the size-1 batch axis, which
keeps the shape and only requantizes).
"""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]
N_SAMPLES = 40

# How the second operand is made (see _operand); the first is the input x
# unless the kind makes both from x.
KINDS = ["self", "requant", "channel", "const_full", "const_channel", "const_scalar",
         "const_4d", "rows_cols", "row_vs_x", "channel_first"]


def _const(b, rng, shape):
    s, z = random_activation_quant(rng)
    return b.const_int8(random_int8(rng, shape), scales=s, zero_points=z)


def _branch_mean(b, rng, x, axes):
    s, z = random_activation_quant(rng)
    return b.mean(x, axes, keep_dims=True, scale=s, zero_point=z)


def _operands(b, rng, x, shape, kind):
    n, h, w, c = shape
    if kind == "self":
        return x, x
    if kind == "requant":  # same shape, other quantization
        return x, _branch_mean(b, rng, x, [0])
    if kind == "channel":  # activation per-channel vector (1, 1, 1, C)
        return x, _branch_mean(b, rng, x, [1, 2])
    if kind == "channel_first":
        return _branch_mean(b, rng, x, [1, 2]), x
    if kind == "const_full":
        return x, _const(b, rng, shape)
    if kind == "const_channel":  # rank-1 constant (C,)
        return _const(b, rng, (c,)), x
    if kind == "const_scalar":
        return x, _const(b, rng, () if rng.integers(2) else (1,))
    if kind == "const_4d":  # (1, H, 1, C) constant
        return x, _const(b, rng, (1, h, 1, c))
    if kind == "rows_cols":  # (N, H, 1, C) + (N, 1, W, C): both operands broadcast
        return _branch_mean(b, rng, x, [2]), _branch_mean(b, rng, x, [1])
    if kind == "row_vs_x":
        return _branch_mean(b, rng, x, [2]), x
    raise ValueError(kind)


def _model(op, rng, shape, kind, activation):
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    lhs, rhs = _operands(b, rng, x, shape, kind)
    s_out, z_out = random_activation_quant(rng, scale_range=(0.005, 1.0))
    y = getattr(b, op)(lhs, rhs, s_out, z_out, activation=activation)
    b.output(y)
    return b.build()


def _random_shape(rng):
    return (int(rng.choice([1, 1, 2])), int(rng.integers(1, 7)), int(rng.integers(1, 7)),
            int(rng.choice([1, 3, 4, 5, 7, 8, 16])))


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("seed", range(30))
def test_binary_random(op, seed):
    rng = np.random.default_rng(3000 + seed + (0 if op == "add" else 500))
    shape = _random_shape(rng)
    model = _model(op, rng, shape, KINDS[seed % len(KINDS)], ACTIVATIONS[seed % 4])
    assert_bit_exact(model, random_int8(rng, (N_SAMPLES, *shape)))


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 1, 5), (1, 3, 3, 1), (1,), (3, 7)])
def test_binary_edges(op, shape):
    rng = np.random.default_rng(5)
    b = ModelBuilder()
    x = b.input(shape, 0.03, -4)
    y = getattr(b, op)(x, _const(b, rng, shape[-1:]), 0.05, 3)
    b.output(y)
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


def test_add_extreme_scale_ratios():
    # One input's scale 200x the other's: the small one's multiplier is tiny.
    rng = np.random.default_rng(9)
    b = ModelBuilder()
    x = b.input((1, 4, 4, 3), 0.5, 10)
    m = b.mean(x, [0], scale=0.0025, zero_point=-20)
    b.output(b.add(x, m, 0.6, -1))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 4, 4, 3)))


def test_mul_small_output_scale():
    # s1 * s2 / s_out > 1: a positive shift in the output multiplier.
    rng = np.random.default_rng(10)
    b = ModelBuilder()
    x = b.input((1, 3, 3, 4), 0.4, 2)
    b.output(b.mul(x, x, 0.02, 0, activation="RELU"))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 3, 3, 4)))


def test_add_in_place_chain():
    # ADD(x', c) where x' dies at the ADD: the output may reuse its buffer.
    rng = np.random.default_rng(12)
    b = ModelBuilder()
    x = b.input((1, 5, 5, 3), 0.05, 1)
    p = b.max_pool2d(x, 2, 1, "SAME")
    a = b.add(p, _const(b, rng, (3,)), 0.07, -2)
    m = b.mul(a, _const(b, rng, (1, 1, 1, 3)), 0.03, 4)
    b.output(b.average_pool2d(m, 2, 2, "VALID"))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 5, 5, 3)))
