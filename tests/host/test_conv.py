"""CONV_2D and DEPTHWISE_CONV_2D on the host, bit-exact with TFLM.

Seeded random layers (shapes, strides, dilations, padding, quantization,
activations, bias or not, per-channel or per-tensor) plus named edge cases
that stress the border handling: windows hanging over the input on every
side, kernels larger than the input, stride larger than the kernel.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.errors import UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, conv2d_output_shape, conv_output_size,
                                          random_activation_quant, random_bias, random_int8,
                                          random_weights)

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]
SAMPLES = 12


def _inputs(rng, shape, n=SAMPLES):
    """Random samples plus the two extremes, which saturate the accumulator
    range most and hit the clamps."""
    x = random_int8(rng, (n, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    return x


def _weights_and_bias(b, rng, s_in, shape, axis, per_channel, with_bias):
    wq, ws = random_weights(rng, shape, axis=axis if per_channel else None)
    w = b.const_int8(wq, scales=ws, axis=axis)
    bias = None
    if with_bias:
        bq, bs = random_bias(rng, shape[axis], s_in, ws)
        bias = b.const_int32(bq, scales=bs)
    return w, bias


def _conv_model(rng, batch=1, hw=(6, 6), cin=3, cout=4, k=(3, 3), stride=(1, 1), dilation=(1, 1),
                padding="SAME", per_channel=True, activation=None, with_bias=True, groups=1):
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    shape = (batch, *hw, cin)
    x = b.input(shape, s_in, zp_in)
    w, bias = _weights_and_bias(b, rng, s_in, (cout, *k, cin // groups), 0, per_channel, with_bias)
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.01, 1.0))
    y = b.conv2d(x, w, bias, s_out, zp_out, stride=stride, padding=padding,
                 activation=activation, dilation=dilation)
    b.output(y)
    return b.build(), shape


def _dw_model(rng, batch=1, hw=(6, 6), cin=3, mult=1, k=(3, 3), stride=(1, 1), dilation=(1, 1),
              padding="SAME", per_channel=True, activation=None, with_bias=True):
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    shape = (batch, *hw, cin)
    x = b.input(shape, s_in, zp_in)
    w, bias = _weights_and_bias(b, rng, s_in, (1, *k, cin * mult), 3, per_channel, with_bias)
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.01, 1.0))
    if with_bias:
        y = b.depthwise_conv2d(x, w, bias, s_out, zp_out, stride=stride, padding=padding,
                               activation=activation, dilation=dilation, depth_multiplier=mult)
    else:
        # Two inputs, not a -1 bias: the TFLM build we test against crashes
        # on a depthwise layer whose third input is absent (-1); CONV_2D is fine.
        (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
        y = b.tensor(conv2d_output_shape(shape, k, cin * mult, (sh, sw), padding, (dh, dw)),
                     s_out, zp_out)
        b.op("DEPTHWISE_CONV_2D", [x, w], [y], stride_w=sw, stride_h=sh, padding=padding,
             fused_activation=activation, dilation_w_factor=dw, dilation_h_factor=dh,
             depth_multiplier=mult)
    b.output(y)
    return b.build(), shape


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _random_geometry(rng) -> dict:
    """A random spatial configuration whose output is not empty."""
    hw = (int(rng.integers(1, 11)), int(rng.integers(1, 11)))
    k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dilation = (1, 1) if rng.random() < 0.6 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = "SAME" if rng.random() < 0.6 else "VALID"
    if padding == "VALID" and any(conv_output_size(n, kk, s, "VALID", d) < 1
                                  for n, kk, s, d in zip(hw, k, stride, dilation)):
        padding = "SAME"
    return dict(hw=hw, k=k, stride=stride, dilation=dilation, padding=padding)


def _random_quant_options(rng, seed) -> dict:
    return dict(per_channel=bool(seed % 2), activation=ACTIVATIONS[seed % 4],
                with_bias=seed % 5 != 0)


@pytest.mark.parametrize("seed", range(32))
def test_conv_random(seed):
    rng = np.random.default_rng(1000 + seed)
    geo = _random_geometry(rng)
    model, shape = _conv_model(rng, cin=int(rng.integers(1, 9)), cout=int(rng.integers(1, 9)),
                               **geo, **_random_quant_options(rng, seed))
    assert_bit_exact(model, _inputs(rng, shape))


@pytest.mark.parametrize("seed", range(32))
def test_depthwise_random(seed):
    rng = np.random.default_rng(2000 + seed)
    geo = _random_geometry(rng)
    model, shape = _dw_model(rng, cin=int(rng.integers(1, 9)), mult=int(rng.integers(1, 4)),
                             **geo, **_random_quant_options(rng, seed))
    assert_bit_exact(model, _inputs(rng, shape))


CONV_EDGES = {
    "stride_gt_kernel": dict(hw=(9, 8), k=(2, 2), stride=(3, 3)),
    "stride_gt_kernel_valid": dict(hw=(9, 8), k=(1, 2), stride=(4, 3), padding="VALID"),
    "kernel_gt_input_same": dict(hw=(3, 2), k=(5, 5)),
    "kernel_much_gt_input_same": dict(hw=(2, 3), k=(7, 6), stride=(2, 1)),
    "spatial_1x1_same": dict(hw=(1, 1), k=(3, 3), cin=5, cout=7),
    "spatial_1x1_kernel_1x1": dict(hw=(1, 1), k=(1, 1), cin=7, cout=3),
    "single_channel": dict(hw=(5, 7), cin=1, cout=1),
    "kernel_1x1": dict(hw=(5, 4), k=(1, 1), cin=5, cout=6),
    "kernel_1x1_stride2": dict(hw=(5, 4), k=(1, 1), stride=2, cin=3, cout=5),
    "dilation_2": dict(hw=(8, 9), k=(3, 3), dilation=(2, 2), cin=3, cout=5),
    "dilation_3_valid": dict(hw=(9, 10), k=(3, 2), dilation=(3, 3), padding="VALID"),
    "dilation_mixed_stride": dict(hw=(10, 7), k=(2, 3), dilation=(3, 2), stride=(2, 1)),
    "ds_cnn_first_layer": dict(hw=(49, 10), k=(10, 4), stride=(2, 2), cin=1, cout=64),
    "non_square_kernel_valid": dict(hw=(12, 6), k=(4, 1), padding="VALID", cin=7, cout=5),
    "non_square_input": dict(hw=(3, 11), k=(3, 3), stride=(1, 2), cin=5, cout=3),
    "channels_7_to_7": dict(hw=(4, 4), cin=7, cout=7, activation="RELU6"),
    "per_tensor_no_bias": dict(hw=(5, 5), per_channel=False, with_bias=False, activation="RELU"),
    "relu_n1_to_1": dict(hw=(4, 6), activation="RELU_N1_TO_1"),
    "batch_2": dict(batch=2, hw=(5, 4), cin=3, cout=5),
    "grouped": dict(hw=(5, 5), cin=6, cout=4, groups=2),
}


@pytest.mark.parametrize("name", sorted(CONV_EDGES))
def test_conv_edge(name):
    rng = np.random.default_rng(sorted(CONV_EDGES).index(name))
    model, shape = _conv_model(rng, **CONV_EDGES[name])
    assert_bit_exact(model, _inputs(rng, shape))


DW_EDGES = {
    "stride_gt_kernel": dict(hw=(9, 8), k=(2, 2), stride=(3, 3), cin=5),
    "kernel_gt_input_same": dict(hw=(3, 2), k=(5, 5), cin=3, mult=2),
    "spatial_1x1": dict(hw=(1, 1), k=(3, 3), cin=7),
    "single_channel": dict(hw=(6, 5), cin=1),
    "single_channel_mult_3": dict(hw=(6, 5), cin=1, mult=3),
    "kernel_1x1": dict(hw=(4, 4), k=(1, 1), cin=5, mult=2),
    "dilation_2": dict(hw=(8, 8), k=(3, 3), dilation=(2, 2), cin=3),
    "dilation_3_mult_2": dict(hw=(10, 9), k=(3, 3), dilation=(3, 3), cin=3, mult=2),
    "mult_2": dict(hw=(5, 6), cin=5, mult=2, activation="RELU"),
    "mult_3_stride_2": dict(hw=(7, 7), cin=3, mult=3, stride=2, activation="RELU6"),
    "ds_cnn_shape": dict(hw=(25, 5), k=(3, 3), cin=24, activation="RELU"),  # block of 16 + tail 8
    "many_channels_tail": dict(hw=(3, 4), cin=37, per_channel=False),  # 2 blocks + tail 5
    "channels_33_mult_2_valid": dict(hw=(4, 4), cin=33, mult=2, padding="VALID"),
    "non_square_kernel": dict(hw=(12, 5), k=(10, 4), stride=(2, 2), cin=3),
    "non_square_input_valid": dict(hw=(3, 11), k=(2, 3), padding="VALID", cin=7),
    "per_tensor_no_bias": dict(hw=(5, 5), per_channel=False, with_bias=False, cin=5),
    "batch_2": dict(batch=2, hw=(4, 5), cin=3, mult=2),
}


@pytest.mark.parametrize("name", sorted(DW_EDGES))
def test_depthwise_edge(name):
    rng = np.random.default_rng(100 + sorted(DW_EDGES).index(name))
    model, shape = _dw_model(rng, **DW_EDGES[name])
    assert_bit_exact(model, _inputs(rng, shape))


def test_conv_depthwise_conv_chain():
    """conv -> depthwise -> conv, as in a DS-CNN block; intermediate
    quantization differs per tensor, so each layer requantizes on its own."""
    rng = np.random.default_rng(7)
    b = ModelBuilder()
    s0, z0 = random_activation_quant(rng)
    shape = (1, 9, 7, 3)
    x = b.input(shape, s0, z0)
    w1, b1 = _weights_and_bias(b, rng, s0, (8, 3, 3, 3), 0, True, True)
    s1, z1 = random_activation_quant(rng, scale_range=(0.01, 0.5))
    y1 = b.conv2d(x, w1, b1, s1, z1, stride=2, padding="SAME", activation="RELU")
    w2, b2 = _weights_and_bias(b, rng, s1, (1, 3, 3, 16), 3, True, True)
    s2, z2 = random_activation_quant(rng, scale_range=(0.01, 0.5))
    y2 = b.depthwise_conv2d(x=y1, w=w2, bias=b2, scale=s2, zero_point=z2, padding="SAME",
                            activation="RELU6", depth_multiplier=2)
    w3, b3 = _weights_and_bias(b, rng, s2, (5, 1, 1, 16), 0, False, True)
    s3, z3 = random_activation_quant(rng, scale_range=(0.01, 1.0))
    y3 = b.conv2d(y2, w3, b3, s3, z3, padding="VALID")
    b.output(y3)
    assert_bit_exact(b.build(), _inputs(rng, shape, 20))


def test_depth_multiplier_mismatch_is_refused():
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), 0.1, 0)
    w, bias = _weights_and_bias(b, rng, 0.1, (1, 3, 3, 4), 3, True, True)
    y = b.tensor((1, 4, 4, 4), 0.2, 0)
    b.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1,
         depth_multiplier=3)
    b.output(y)
    with pytest.raises(UnsupportedOpError, match="depth_multiplier"):
        generate(parse_tflite(b.build()))


def test_asymmetric_filter_is_refused():
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), 0.1, 0)
    wq, ws = random_weights(rng, (3, 3, 3, 2), axis=None)
    w = b.const_int8(wq, scales=ws, zero_points=[5])
    y = b.conv2d(x, w, None, 0.2, 0)
    b.output(y)
    with pytest.raises(UnsupportedOpError, match="symmetric"):
        generate(parse_tflite(b.build()))


# CONV_2D written over its dying input (the planner's 'inplace_lag'): a conv
# between two others, so its input and output both live in the arena.
# Geometries: the window copy (3x3, 10x4, strides, VALID, odd pixel counts,
# pairs sharing one copy),
# the direct 1x1 path (cout below, equal to, above cin), grouped kernels.
OVERLAP_CASES = {
    "3x3_same_odd_pixels": dict(hw=(5, 5), cin=8, cout=8, k=(3, 3)),
    "3x3_same_even": dict(hw=(6, 8), cin=16, cout=16, k=(3, 3)),
    "3x3_stride2": dict(hw=(7, 6), cin=8, cout=12, k=(3, 3), stride=(2, 2)),
    "3x3_valid_narrower": dict(hw=(7, 7), cin=8, cout=4, k=(3, 3), padding="VALID"),
    "10x4_stride2": dict(hw=(14, 6), cin=4, cout=8, k=(10, 4), stride=(2, 2)),
    # pairs sharing one window copy (conv.py: shared; out_w even, in_c % 4 == 0)
    "shared_3x3_stride2": dict(hw=(8, 8), cin=8, cout=6, k=(3, 3), stride=(2, 2)),
    "shared_3x3_valid": dict(hw=(6, 6), cin=4, cout=5, k=(3, 3), padding="VALID"),
    "shared_10x4": dict(hw=(12, 8), cin=4, cout=8, k=(10, 4)),
    "1x1_direct_fewer": dict(hw=(5, 5), cin=16, cout=8, k=(1, 1)),
    "1x1_direct_equal": dict(hw=(5, 4), cin=8, cout=8, k=(1, 1)),
    "1x1_direct_more": dict(hw=(3, 5), cin=4, cout=12, k=(1, 1)),
    "1x1_copy": dict(hw=(5, 6), cin=6, cout=4, k=(1, 1)),
    "grouped": dict(hw=(6, 6), cin=8, cout=8, k=(3, 3), groups=2),
}


def overlap_model(rng, hw, cin, cout, k, stride=(1, 1), padding="SAME", groups=1):
    """(tflite bytes, input shape, index of the conv under test)."""
    b = ModelBuilder()
    s0, z0 = random_activation_quant(rng)
    shape = (1, *hw, cin)
    x = b.input(shape, s0, z0)
    w1, b1 = _weights_and_bias(b, rng, s0, (cin, 1, 1, cin), 0, True, True)
    s1, z1 = random_activation_quant(rng, scale_range=(0.01, 0.5))
    x = b.conv2d(x, w1, b1, s1, z1)
    w2, b2 = _weights_and_bias(b, rng, s1, (cout, *k, cin // groups), 0, True, True)
    s2, z2 = random_activation_quant(rng, scale_range=(0.01, 0.5))
    x = b.conv2d(x, w2, b2, s2, z2, stride=stride, padding=padding, activation="RELU")
    w3, b3 = _weights_and_bias(b, rng, s2, (4, 1, 1, cout), 0, True, True)
    s3, z3 = random_activation_quant(rng, scale_range=(0.01, 1.0))
    b.output(b.conv2d(x, w3, b3, s3, z3))
    return b.build(), shape, 1


@pytest.mark.parametrize("name", sorted(OVERLAP_CASES))
def test_conv_over_its_dying_input(name):
    rng = np.random.default_rng(300 + sorted(OVERLAP_CASES).index(name))
    model, shape, node = overlap_model(rng, **OVERLAP_CASES[name])
    assert node in generate(parse_tflite(model)).plan.overlapped
    assert_bit_exact(model, _inputs(rng, shape, 16))
