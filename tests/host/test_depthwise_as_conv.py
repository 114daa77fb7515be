"""DEPTHWISE_CONV_2D with one input channel and depth multiplier M runs as a
CONV_2D with M filters (passes/depthwise_as_conv.py): bit-exact with TFLM
on the host over strides, padding, dilation, per-tensor and per-channel
weights, with and without bias, every fused activation."""
import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias, random_int8,
                                          random_weights)

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]
# (input H, W), kernel, stride, padding, dilation, multiplier
CASES = [((49, 10), (10, 4), 2, "SAME", 1, 8), ((20, 12), (3, 3), 1, "SAME", 1, 8),
         ((16, 16), (5, 5), 1, "VALID", 1, 8), ((9, 11), (3, 3), (2, 1), "SAME", 2, 8),
         ((7, 7), (1, 1), 1, "VALID", 1, 4), ((5, 6), (3, 2), 3, "SAME", 1, 3),
         ((1, 1), (3, 3), 1, "SAME", 1, 16), ((12, 4), (4, 4), 2, "VALID", 1, 2)]


def dw_model(seed, case):
    (h, w), k, stride, padding, dilation, m = case
    rng = np.random.default_rng(seed)
    s_in, z_in = random_activation_quant(rng)
    b = ModelBuilder()
    x = b.input((1, h, w, 1), s_in, z_in)
    wq, ws = random_weights(rng, (1, k[0], k[1], m), axis=3 if seed % 3 else None)
    bias = None
    if seed % 4 != 1:
        bq, bs = random_bias(rng, m, s_in, ws)
        bias = b.const_int32(bq, scales=bs)
    y = b.depthwise_conv2d(x, b.const_int8(wq, scales=ws, axis=3), bias,
                           *random_activation_quant(rng, scale_range=(0.01, 0.5)), stride=stride,
                           padding=padding, dilation=dilation, activation=ACTIVATIONS[seed % 4],
                           depth_multiplier=m)
    b.output(y)
    return b.build(), (1, h, w, 1), rng


@pytest.mark.parametrize("i", range(len(CASES)))
def test_single_channel_depthwise_as_conv(i):
    model, shape, rng = dw_model(12000 + i, CASES[i])
    gen = generate(parse_tflite(model))
    assert [(r["op"], r.get("kernel")) for r in gen.layers] == [("DEPTHWISE_CONV_2D", "CONV_2D")]
    x = random_int8(rng, (16, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    assert_bit_exact(model, x)


def test_depthwise_with_several_input_channels_stays_depthwise():
    rng = np.random.default_rng(12100)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 2), 0.05, 1)
    wq, ws = random_weights(rng, (1, 3, 3, 16), axis=3)
    b.output(b.depthwise_conv2d(x, b.const_int8(wq, scales=ws, axis=3), None, 0.1, 0, depth_multiplier=8))
    assert [r.get("kernel") for r in generate(parse_tflite(b.build())).layers] == [None]


def test_register_window_kernel_under_ubsan():
    # the one-channel kernel (conv_2d_c1.c.j2) on border-heavy geometry, UBSan on
    from tests.support.harness import compile_for_host
    from tests.support.tflm import run_tflm
    model, shape, rng = dw_model(12300, ((5, 6), (3, 2), 3, "SAME", 1, 3))
    files = generate(parse_tflite(model)).files
    assert "One input channel: per output pixel" in files["tinycomp_model.c"]
    x = random_int8(rng, (16, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    runner = compile_for_host(model, extra_flags=("-fsanitize=undefined", "-fno-sanitize-recover=all"))
    np.testing.assert_array_equal(runner.infer(x), run_tflm(model, x).reshape(16, -1))
