"""BATCH_MATMUL int8 on the host, bit-exact with TFLM: seeded random ranks
(2 to 4), broadcast batch dimensions, adj_x / adj_y, a constant or computed
right-hand side, zero points at the ends; many layers in one build."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.harness import assert_bit_exact, extreme_samples
from tests.support.tflite_builder import ModelBuilder, random_activation_quant
from tinycomp.errors import ModelError
from tinycomp.frontends.tflite import parse_tflite

LAYERS = 12


def batch_matmul_model(seed: int, layers: int = LAYERS) -> bytes:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    for k in range(layers):
        rows, depth, cols = (int(v) for v in rng.integers(1, 7, 3))
        batch = [int(v) for v in rng.integers(1, 4, int(rng.integers(0, 3)))]
        # each side drops some leading batch dims or has 1 there: broadcasting
        lb = [d if rng.random() < 0.7 else 1 for d in batch][int(rng.integers(0, len(batch) + 1)):]
        rb = [d if rng.random() < 0.7 else 1 for d in batch][int(rng.integers(0, len(batch) + 1)):]
        adj_x, adj_y = bool(k & 1), bool(k & 2)
        lshape = (*lb, *((depth, rows) if adj_x else (rows, depth)))
        rshape = (*rb, *((cols, depth) if adj_y else (depth, cols)))
        s_l, z_l = random_activation_quant(rng, (0.01, 0.2))
        s_r, z_r = random_activation_quant(rng, (0.01, 0.2))
        if k % 6 == 5:
            z_l, z_r = -128, 127
        lhs = b.input(lshape, s_l, z_l)
        if k % 3 == 2:  # constant right-hand side (weights)
            rhs = b.const_int8(rng.integers(-127, 128, rshape), s_r, z_r)
        else:
            rhs = b.input(rshape, s_r, z_r)
        out_batch = list(np.broadcast_shapes(tuple(lb), tuple(rb)))
        s_out = s_l * s_r * 128 * 60 * np.sqrt(depth) * rng.uniform(0.03, 0.1)
        y = b.tensor((*out_batch, rows, cols), float(s_out), int(rng.integers(-30, 31)))
        b.op("BATCH_MATMUL", [lhs, rhs], [y], adj_x=adj_x, adj_y=adj_y)
        b.output(y)
    return b.build()


@pytest.mark.parametrize("seed", range(3))
def test_batch_matmul_bit_exact(seed):
    buf = batch_matmul_model(seed)
    assert_bit_exact(buf, extreme_samples(buf, seed, 6))


@pytest.mark.parametrize("lshape, rshape, out, match", [
    ((2, 3, 4), (3, 4, 5), (3, 3, 5), "do not broadcast"),
    ((3, 4), (5, 6), (3, 6), "summed dimension"),
    ((3, 4), (4, 6), (3, 5), "output shape"),
])
def test_bad_batch_matmul_refused(lshape, rshape, out, match):
    b = ModelBuilder()
    x, w = b.input(lshape, 0.1, 0), b.input(rshape, 0.1, 0)
    y = b.tensor(out, 0.1, 0)
    b.op("BATCH_MATMUL", [x, w], [y])
    b.output(y)
    with pytest.raises(ModelError, match=match):
        parse_tflite(b.build())
