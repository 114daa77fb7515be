"""Layers of the same shape share one generated function (generate._share):
their constant arrays are passed as arguments, so the rendered bodies are
equal and emitted once; the shared function stays bit-exact with TFLM."""
import re

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_int8, random_weights)


def _chain(rng, op: str, n: int = 3, per_channel: bool = True):
    """n layers of one shape in a row, every tensor with the same zero point
    (the output offset, the clamps and a window's border fill are literals of
    the kernel); the first layer's input scale differs."""
    b = ModelBuilder()
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.05, 0.5))
    s, zp = s_out * 0.7, zp_out
    shape = (1, 24) if op == "fc" else (1, 5, 6, 8)
    x = b.input(shape, s, zp)
    for i in range(n):
        s_in = s if i == 0 else s_out
        axis = 0 if per_channel else None
        if op == "fc":
            wq, ws = random_weights(rng, (24, 24), axis=axis)
        else:
            wq, ws = random_weights(rng, (8, 3, 3, 8), axis=axis)
        w = b.const_int8(wq, scales=ws, axis=0)
        bq, bs = random_bias(rng, 24 if op == "fc" else 8, s_in, ws)
        bias = b.const_int32(bq, scales=bs)
        if op == "fc":
            x = b.fully_connected(x, w, bias, s_out, zp_out, activation="RELU")
        else:
            x = b.conv2d(x, w, bias, s_out, zp_out, padding="SAME", activation="RELU")
    b.output(x)
    return b.build(), shape


def _functions(model_c: str) -> list[str]:
    return re.findall(r"^static TC_LAYER_FN void (\w+)\(", model_c, re.M)


@pytest.mark.parametrize("op", ["fc", "conv"])
def test_same_shape_layers_share_a_function(op):
    rng = np.random.default_rng(7 if op == "fc" else 8)
    model, shape = _chain(rng, op)
    c = generate(parse_tflite(model, name="t")).files["tinycomp_model.c"]
    # the multipliers differ per layer but are arrays passed in, so all
    # three render the same body
    assert len(_functions(c)) == 1, _functions(c)
    fn = _functions(c)[0]
    assert len(re.findall(rf"^\s+{fn}\(", c, re.M)) == 3
    # each call passes its own layer's arrays
    for i in range(3):
        assert re.search(rf"{fn}\([^;]*tinycomp_w_l{i}_weights", c)
    x = random_int8(rng, (20, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    assert_bit_exact(model, x)


def test_different_shapes_keep_their_own_functions():
    rng = np.random.default_rng(9)
    b = ModelBuilder()
    s, zp = random_activation_quant(rng)
    x = b.input((1, 24), s, zp)
    for units in (24, 16):
        wq, ws = random_weights(rng, (units, b.tensors[x].shape[-1]), axis=0)
        x = b.fully_connected(x, b.const_int8(wq, scales=ws, axis=0), None, 0.1, 3)
    b.output(x)
    model = b.build()
    c = generate(parse_tflite(model, name="t")).files["tinycomp_model.c"]
    assert len(_functions(c)) == 2
    assert_bit_exact(model, random_int8(rng, (10, 1, 24)))


def test_per_tensor_layers_share_a_function():
    """Per-tensor requantization is rendered as literals, which differ from
    layer to layer: the layers then take the pair from an array
    (generate._share_requant) and share one function."""
    rng = np.random.default_rng(10)
    model, shape = _chain(rng, "fc", per_channel=False)
    c = generate(parse_tflite(model, name="t")).files["tinycomp_model.c"]
    assert len(_functions(c)) == 1, _functions(c)
    assert all(f"tinycomp_w_l{i}_requant" in c for i in range(3))
    x = random_int8(rng, (20, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    assert_bit_exact(model, x)
