"""FULLY_CONNECTED on the host, bit-exact with TFLM over seeded random layers."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_int8, random_weights)


def _fc_model(rng, batch, depth, units, per_channel, activation, with_bias=True):
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    x = b.input((batch, depth), s_in, zp_in)
    wq, ws = random_weights(rng, (units, depth), axis=0 if per_channel else None)
    w = b.const_int8(wq, scales=ws, axis=0)
    bias = None
    if with_bias:
        bq, bs = random_bias(rng, units, s_in, ws)
        bias = b.const_int32(bq, scales=bs)
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.01, 1.0))
    y = b.fully_connected(x, w, bias, s_out, zp_out, activation=activation)
    b.output(y)
    return b.build(), (batch, depth)


@pytest.mark.parametrize("seed", range(12))
def test_fully_connected_random(seed):
    rng = np.random.default_rng(seed)
    depth, units = int(rng.integers(1, 70)), int(rng.integers(1, 40))
    model, shape = _fc_model(rng, int(rng.integers(1, 4)), depth, units,
                             per_channel=bool(seed % 2),
                             activation=[None, "RELU", "RELU6", "RELU_N1_TO_1"][seed % 4],
                             with_bias=seed % 3 != 0)
    assert_bit_exact(model, random_int8(rng, (50, *shape)))


@pytest.mark.parametrize("seed", range(2))
def test_per_tensor_multiplier_over_many_scales(seed):
    """The per-tensor multiplier is the float32 product of the scales, as TFLM's
    int8 FC computes it (its 16x8 FC uses double): 40 layers with random
    scales in one multi-output model, every output equal to TFLM's."""
    rng = np.random.default_rng(1000 + seed)
    b = ModelBuilder()
    s_in = float(rng.uniform(0.001, 0.5))
    x = b.input((1, 24), s_in, int(rng.integers(-128, 128)))
    outputs = []
    for _ in range(40):
        wq, ws = random_weights(rng, (6, 24), axis=None)
        ws = np.atleast_1d(ws) * float(rng.uniform(0.3, 3.0))
        bq, bs = random_bias(rng, 6, s_in, ws)
        outputs.append(b.fully_connected(x, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs),
                                         float(rng.uniform(0.001, 0.3)), int(rng.integers(-128, 128))))
    b.output(*outputs)
    assert_bit_exact(b.build(), [rng.integers(-128, 128, (50, 1, 24), dtype=np.int8)])
