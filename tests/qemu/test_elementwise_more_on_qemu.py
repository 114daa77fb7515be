"""SUB (its table kernel has a DSP path), MINIMUM, MAXIMUM, PRELU and
LEAKY_RELU chained in one model per core, bit-exact with TFLM on the
Cortex-M4 (DSP) and the Cortex-M3 (plain C)."""
import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

pytestmark = pytest.mark.qemu


def _chain(seed):
    rng = np.random.default_rng(seed)
    shape = (1, 5, 6, 8)
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    c = b.const_int8(random_int8(rng, shape), *random_activation_quant(rng))
    y = b.sub(x, c, *random_activation_quant(rng, scale_range=(0.01, 0.5)), activation="RELU")   # table path
    s_m, z_m = random_activation_quant(rng)
    m = b.mean(x, [1, 2], scale=s_m, zero_point=z_m)
    z = b.sub(m, y, *random_activation_quant(rng, scale_range=(0.01, 0.5)))                     # broadcast
    z = b.maximum(z, b.const_int8(random_int8(rng, (8,)), 0.1, 0))
    s_m, z_m = random_activation_quant(rng)
    z = b.minimum(b.mean(z, [0], scale=s_m, zero_point=z_m), z)
    alpha = b.const_int8(random_int8(rng, (1, 1, 8)), float(rng.uniform(0.001, 0.02)), int(rng.integers(-50, 50)))
    z = b.prelu(z, alpha, *random_activation_quant(rng, scale_range=(0.01, 0.5)))
    b.output(b.leaky_relu(z, 0.2, *random_activation_quant(rng)), z)
    return b.build(), shape, rng


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_elementwise_chain_on_board(board):
    model, shape, rng = _chain(9500)
    assert "a_table" in generate(parse_tflite(model)).files["tinycomp_model.c"]
    x = random_int8(rng, (10, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    assert_bit_exact_on_board(model, x, board)
