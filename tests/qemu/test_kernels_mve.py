"""The Helium (MVE) kernels on QEMU mps3-an547 (Cortex-M55), bit-exact with TFLM.

Each case is built with the board's features, so the kernel table picks the
kernels/mve/ rows; the shapes are the ones that change the generated MVE
code: channel and depth counts that are not multiples of 16 (tail-predicated
last chunk) or of 4 (predicated last group and store), 1x1 spatial inputs,
strides larger than the kernel, depth multipliers above 1 (gathers), SAME
borders, per-tensor and per-channel scales, left-shifting multipliers.
"""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.boards import load_board
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.host.test_conv import _conv_model, _dw_model
from tests.host.test_fully_connected import _fc_model
from tests.qemu.test_kernels_dsp_conv_fc import _inputs
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights

pytestmark = pytest.mark.qemu

BOARD = "qemu-mps3-an547"
ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]

# (depth, units, per_channel)
FC_CASES = [(1, 1, True), (7, 3, False), (16, 4, True), (33, 21, True), (100, 17, False),
            (129, 5, True), (640, 128, True)]
# (hw, cin, cout, k, stride, padding)
CONV_CASES = [
    ((5, 5), 64, 64, (1, 1), 1, "VALID"),       # in place, whole chunks
    ((4, 3), 13, 7, (1, 1), 1, "VALID"),        # in place, ragged chunk and group
    ((1, 1), 24, 10, (1, 1), 1, "SAME"),        # 1x1 spatial
    ((7, 6), 3, 16, (3, 3), 2, "SAME"),         # first layer: 27-byte rows
    ((9, 8), 8, 5, (2, 2), 3, "VALID"),         # stride > kernel
    ((10, 4), 1, 20, (10, 4), 2, "SAME"),       # KWS's first layer shape, small
    ((6, 5), 17, 9, (3, 3), 1, "SAME"),
    ((8, 8), 16, 32, (1, 1), 2, "SAME"),        # 1x1 stride 2: the window copy
    ((8, 8), 16, 9, (3, 3), 1, "SAME"),         # even out_w: one shared window per pixel pair
    ((9, 12), 5, 6, (3, 3), 2, "SAME"),         # shared window, stride 2, ragged channels
]
# (hw, cin, mult, k, stride, padding, dilation)
DW_CASES = [
    ((7, 6), 16, 1, (3, 3), 1, "SAME", 1),
    ((6, 5), 13, 1, (3, 3), 2, "SAME", 1),      # ragged group
    ((1, 1), 8, 1, (3, 3), 1, "SAME", 1),       # 1x1 spatial: border only
    ((9, 9), 6, 1, (2, 2), 3, "VALID", 1),      # stride > kernel
    ((6, 6), 5, 3, (3, 3), 1, "SAME", 1),       # odd depth multiplier: gathers
    ((5, 7), 2, 2, (3, 3), 2, "VALID", 1),
    ((9, 10), 4, 1, (5, 5), 1, "SAME", 2),      # dilation
]


def _check_mve(tflite: bytes, marker: str) -> None:
    """The case really runs the Helium kernel."""
    c = generate(parse_tflite(tflite), features=load_board(BOARD).features).files["tinycomp_model.c"]
    assert marker in c


@pytest.mark.parametrize("i", range(len(FC_CASES)))
def test_fully_connected_mve(i):
    depth, units, per_channel = FC_CASES[i]
    rng = np.random.default_rng(300 + i)
    model, shape = _fc_model(rng, 1, depth, units, per_channel=per_channel,
                             activation=ACTIVATIONS[i % 4], with_bias=i % 3 != 2)
    _check_mve(model, "vmladavaq_s8")
    assert_bit_exact_on_board(model, _inputs(rng, shape), board=BOARD)


@pytest.mark.parametrize("i", range(len(CONV_CASES)))
def test_conv_mve(i):
    hw, cin, cout, k, stride, padding = CONV_CASES[i]
    rng = np.random.default_rng(400 + i)
    model, shape = _conv_model(rng, hw=hw, cin=cin, cout=cout, k=k, stride=(stride, stride),
                               padding=padding, per_channel=i % 3 != 1,
                               activation=ACTIVATIONS[i % 4], with_bias=i % 4 != 3)
    _check_mve(model, "vmladavaq_s8")
    if i >= 8:  # the last two cases take the shared pair window
        assert "_window2" in generate(parse_tflite(model), features=load_board(BOARD).features).files["tinycomp_model.c"]
    assert_bit_exact_on_board(model, _inputs(rng, shape), board=BOARD)


@pytest.mark.parametrize("i", range(len(DW_CASES)))
def test_depthwise_mve(i):
    hw, cin, mult, k, stride, padding, dil = DW_CASES[i]
    rng = np.random.default_rng(500 + i)
    model, shape = _dw_model(rng, hw=hw, cin=cin, mult=mult, k=k, stride=(stride, stride),
                             dilation=(dil, dil), padding=padding, per_channel=i % 3 != 1,
                             activation=ACTIVATIONS[i % 4], with_bias=i % 4 != 3)
    _check_mve(model, "vmullbq_int_s16")
    assert_bit_exact_on_board(model, _inputs(rng, shape), board=BOARD)


def test_left_shift_requantization_mve():
    """Output scale below input x weight scale: multipliers with shift > 0
    take VSHL before VQRDMULH (wrapping, as TFLM's int32 product does)."""
    rng = np.random.default_rng(7)
    b = ModelBuilder()
    x = b.input((1, 20), 0.5, 3)
    w, ws = random_weights(rng, (9, 20), axis=0)
    bq, bs = random_bias(rng, 9, 0.5, ws)
    y = b.fully_connected(x, b.const_int8(w, ws * 40, axis=0), b.const_int32(bq, bs * 40),
                          scale=0.02, zero_point=-4)
    b.output(y)
    model = b.build()
    assert "vshlq_s32" in generate(parse_tflite(model), features=load_board(BOARD).features).files["tinycomp_model.c"]
    assert_bit_exact_on_board(model, _inputs(rng, (1, 20)), board=BOARD)


# (op, shape, operands): same-shape operands take the Helium kernel
ADD_CASES = [("add", (1, 5, 3, 7), "requant"), ("add", (1, 4, 4, 16), "self"),
             ("add", (1, 3, 1, 5), "requant"), ("sub", (1, 6, 2, 3), "requant")]


@pytest.mark.parametrize("i", range(len(ADD_CASES)))
def test_add_mve(i):
    from tests.host.test_elementwise import _model
    op, shape, kind = ADD_CASES[i]
    rng = np.random.default_rng(600 + i)
    model = _model(op, rng, shape, kind, ACTIVATIONS[i % 4])
    _check_mve(model, "vqrdmulhq_n_s32")
    assert_bit_exact_on_board(model, _inputs(rng, shape), board=BOARD)


POOL_CASES = [((1, 25, 5, 64), (25, 5), (25, 5), "VALID"),   # KWS's global average
              ((1, 7, 6, 5), (3, 3), (2, 2), "SAME"),        # ragged group, clipped windows
              ((1, 1, 1, 3), (3, 3), (2, 2), "SAME"),        # window larger than the input
              ((1, 7, 7, 9), (2, 2), (3, 3), "VALID")]       # stride > filter


@pytest.mark.parametrize("i", range(len(POOL_CASES)))
def test_average_pool_mve(i):
    from tests.host.test_pooling import _pool_model
    shape, f, s, padding = POOL_CASES[i]
    rng = np.random.default_rng(700 + i)
    model = _pool_model("avg", shape, f, s, padding, ACTIVATIONS[i % 4], (0.05, -3))
    _check_mve(model, "vldrbq_z_s32")
    assert_bit_exact_on_board(model, _inputs(rng, shape), board=BOARD)


@pytest.mark.parametrize("skip_first", [False, True])
def test_conv_with_residual_add_mve(skip_first):
    """CONV_2D whose output meets a skip connection in an ADD: the pair is
    fused into the Helium GEMM (the ADD's arithmetic on each block before the
    store), the output written over the skip tensor."""
    rng = np.random.default_rng(800 + skip_first)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 12), 0.05, -7)
    w, ws = random_weights(rng, (12, 3, 3, 12), axis=0)
    bq, bs = random_bias(rng, 12, 0.05, ws)
    y = b.conv2d(x, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), scale=0.08,
                 zero_point=3, activation="RELU")
    w, ws = random_weights(rng, (12, 3, 3, 12), axis=0)
    bq, bs = random_bias(rng, 12, 0.08, ws)
    y = b.conv2d(y, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), scale=0.11, zero_point=-2)
    z = b.add(x, y, 0.09, -20, activation="RELU") if skip_first else b.add(y, x, 0.09, -20, activation="RELU")
    b.output(z)
    model = b.build()
    c = generate(parse_tflite(model), features=load_board(BOARD).features)
    assert [r["op"] for r in c.layers] == ["CONV_2D", "CONV_2D+ADD"]
    assert "vqrdmulhq_n_s32" in c.files["tinycomp_model.c"]
    assert_bit_exact_on_board(model, _inputs(rng, (1, 6, 6, 12)), board=BOARD)
