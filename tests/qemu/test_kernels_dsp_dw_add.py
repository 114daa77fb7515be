"""Depthwise and element-wise kernels on emulated Cortex-M cores, bit-exact
with TFLM: mps2-an386 (Cortex-M4, DSP) runs their DSP paths, mps2-an385
(Cortex-M3) the plain C ones. Each model chains several layers of different
geometry so one firmware build covers many cases."""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_int8, random_weights)

pytestmark = pytest.mark.qemu

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]


def _inputs(rng, shape, n=8):
    x = random_int8(rng, (n, *shape))
    x[0].fill(-128)  # extremes stress the accumulator bounds and the clamps
    x[1].fill(127)
    return x


def _dw(b, rng, x, c, k, stride, padding, dilation=1, activation=None, with_bias=True,
        per_channel=True):
    s_in = b.tensors[x].scale
    wq, ws = random_weights(rng, (1, k[0], k[1], c), axis=3 if per_channel else None)
    w = b.const_int8(wq, scales=ws, axis=3)
    bias = None
    if with_bias:
        bq, bs = random_bias(rng, c, s_in, ws)
        bias = b.const_int32(bq, scales=bs)
    s, z = random_activation_quant(rng, scale_range=(0.01, 0.5))
    return b.depthwise_conv2d(x, w, bias, s, z, stride=stride, padding=padding,
                              activation=activation, dilation=dilation)


# (input H, W, C) and the chain: (kernel, stride, padding, dilation) per layer
DW_CHAINS = {
    "kws_like": ((13, 5, 8), [((3, 3), 1, "SAME", 1), ((3, 3), 1, "SAME", 1)]),
    "mobilenet_like": ((12, 11, 12), [((3, 3), 2, "SAME", 1), ((3, 3), 1, "SAME", 1),
                                      ((3, 3), 2, "SAME", 1)]),
    "odd_kernels": ((9, 10, 4), [((5, 5), 1, "SAME", 1), ((2, 3), (1, 2), "VALID", 1),
                                 ((3, 3), 1, "SAME", 2)]),
    "tiny_spatial": ((2, 3, 16), [((3, 3), 1, "SAME", 1), ((3, 3), 2, "SAME", 1),
                                  ((1, 1), 1, "VALID", 1)]),
    # the shared 3x3 kernel (geometry at run time): no border at all, unequal
    # strides, a VALID stride-2 window that drops the last column
    "valid_3x3": ((10, 9, 12), [((3, 3), 1, "VALID", 1), ((3, 3), (2, 1), "SAME", 1),
                                ((3, 3), 2, "VALID", 1), ((3, 3), 1, "SAME", 1)]),
}


def _dw_chain_model(name, seed):
    rng = np.random.default_rng(seed)
    (h, w, c), layers = DW_CHAINS[name]
    b = ModelBuilder()
    x = b.input((1, h, w, c), *random_activation_quant(rng))
    for i, (k, stride, padding, dil) in enumerate(layers):
        x = _dw(b, rng, x, c, k, stride, padding, dil, activation=ACTIVATIONS[(seed + i) % 4],
                with_bias=(seed + i) % 3 != 2, per_channel=(seed + i) % 4 != 3)
    b.output(x)
    return b.build(), (1, h, w, c), rng


def _uses_dsp_path(tflite):
    files = generate(parse_tflite(tflite)).files
    return "__ARM_FEATURE_DSP" in files["tinycomp_model.c"]


@pytest.mark.parametrize("name", sorted(DW_CHAINS))
def test_depthwise_dsp_path_on_m4(name):
    model, shape, rng = _dw_chain_model(name, sorted(DW_CHAINS).index(name))
    assert _uses_dsp_path(model)
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu")


# all but odd_kernels run the shared 3x3 plain function (tiny_spatial: border only)
@pytest.mark.parametrize("name", ["kws_like", "mobilenet_like", "odd_kernels", "tiny_spatial", "valid_3x3"])
def test_depthwise_plain_path_on_m3(name):
    model, shape, rng = _dw_chain_model(name, 10 + sorted(DW_CHAINS).index(name))
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu-mps2-an385")


def _add_chain_model(seed):
    """Same-shape ADDs (the table path): with a constant, with itself, and
    with a depthwise branch, as in a residual block."""
    rng = np.random.default_rng(seed)
    shape = (1, 6, 5, 8)
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    s, z = random_activation_quant(rng)
    c = b.const_int8(random_int8(rng, shape), scales=s, zero_points=z)
    y = b.add(x, c, *random_activation_quant(rng, scale_range=(0.01, 0.5)),
              activation=ACTIVATIONS[seed % 4])
    y = b.add(y, y, *random_activation_quant(rng, scale_range=(0.01, 0.5)))
    d = _dw(b, rng, y, 8, (3, 3), 1, "SAME")
    y = b.add(d, y, *random_activation_quant(rng, scale_range=(0.01, 0.5)),
              activation=ACTIVATIONS[(seed + 1) % 4])
    b.output(y)
    return b.build(), shape, rng


@pytest.mark.parametrize("seed,board", [(0, "qemu"), (1, "qemu"), (2, "qemu-mps2-an385")])
def test_add_table_path(seed, board):
    model, shape, rng = _add_chain_model(seed)
    assert "a_table" in generate(parse_tflite(model)).files["tinycomp_model.c"]
    assert_bit_exact_on_board(model, _inputs(rng, shape, 16), board)
