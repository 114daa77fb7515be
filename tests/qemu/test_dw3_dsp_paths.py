"""The shared 3x3 depthwise DSP kernel (depthwise_conv_2d_dsp3.c.j2) on
geometries its row and band handling must get right, bit-exact with TFLM:
on mps2-an386 (the DSP path: pixel rows, the ring of band rows in scratch,
LDM/STM copies), on the M4 with the C of a core without DSP (border pixels
through tc_dw3_edge) and on mps2-an385 (the plain path). One multi-output
model holds most cases, a second the layer written over its dying input."""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.qemu.test_kernels_dsp_dw_add import _dw, _inputs
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_weights

pytestmark = pytest.mark.qemu

DSP = frozenset({"dsp"})


def _geometry_model(seed=0):
    """Branches of 3x3 depthwise layers from one 9x6x12 input (12 channels:
    not a multiple of 8) and a chain narrowing to widths 3, 2 and 1."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    shape = (1, 9, 6, 12)
    x = b.input(shape, *random_activation_quant(rng))
    outs = [
        _dw(b, rng, x, 12, (3, 3), 1, "SAME", activation="RELU"),      # every row a band, pad 1
        _dw(b, rng, x, 12, (3, 3), 2, "SAME", activation="RELU6"),     # stride 2, pad 0 top/left
        _dw(b, rng, x, 12, (3, 3), 1, "VALID"),                        # no border: in place
        _dw(b, rng, x, 12, (3, 3), (2, 1), "SAME"),                    # unequal strides
        _dw(b, rng, x, 12, (3, 3), (1, 2), "VALID", with_bias=False),  # band-free stride 2
    ]
    y = _dw(b, rng, x, 12, (3, 3), (1, 2), "SAME")   # 9 x 3
    y = _dw(b, rng, y, 12, (3, 3), (1, 2), "SAME")   # 9 x 2
    outs.append(y)
    y = _dw(b, rng, y, 12, (3, 3), (2, 2), "SAME")   # 5 x 1
    outs.append(y)
    outs.append(_dw(b, rng, y, 12, (3, 3), 1, "SAME", activation="RELU_N1_TO_1"))  # width 1
    b.output(*outs)
    return b.build(), shape, rng


def _narrow_model(seed=1):
    """Four channels (one group), widths 1 and 2 from the input on."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    shape = (1, 7, 2, 4)
    x = b.input(shape, *random_activation_quant(rng))
    y1 = _dw(b, rng, x, 4, (3, 3), 1, "SAME")
    y2 = _dw(b, rng, y1, 4, (3, 3), 2, "SAME", activation="RELU")
    y3 = _dw(b, rng, y2, 4, (3, 3), 1, "SAME")
    b.output(y1, y2, y3)
    return b.build(), shape, rng


def _overlap_model(seed=2, stride=1, width=7, padding="SAME"):
    """A 3x3 depthwise layer between two 1x1 convolutions: its input dies
    there, so the planner may write its output over it (inplace_lag)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    c = 16
    shape = (1, 10, width, c)
    x = b.input(shape, *random_activation_quant(rng))

    def conv1x1(x, cout):
        wq, ws = random_weights(rng, (cout, 1, 1, b.tensors[x].shape[3]), axis=0)
        s, z = random_activation_quant(rng, scale_range=(0.01, 0.5))
        return b.conv2d(x, b.const_int8(wq, scales=ws, axis=0), None, s, z)

    y = conv1x1(x, c)
    y = _dw(b, rng, y, c, (3, 3), stride, padding, activation="RELU")
    b.output(conv1x1(y, 8))
    return b.build(), shape, rng


def _code(model, features):
    return generate(parse_tflite(model), features=features).files["tinycomp_model.c"]


@pytest.mark.parametrize("board,features", [("qemu", None), ("qemu", frozenset()),
                                            ("qemu-mps2-an385", None)])
def test_dw3_geometries(board, features):
    for make in (_geometry_model, _narrow_model):
        model, shape, rng = make()
        if features is None and board == "qemu":
            assert "tc_dw3_band_sb(" in _code(model, DSP)
        assert_bit_exact_on_board(model, _inputs(rng, shape), board, features=features)


@pytest.mark.parametrize("stride,width,padding", [(1, 7, "SAME"), (2, 7, "SAME"), (1, 19, "VALID"),
                                                  (2, 21, "VALID")])
def test_dw3_over_its_dying_input(stride, width, padding):
    """SAME: every row through the band. VALID and wide: rows of 17 and 10
    pixels read straight from the input in chunks of DW3_CHUNK (8, 8, 1 and
    8, 2), each group over the chunk before the next: the lag counts it."""
    model, shape, rng = _overlap_model(stride=stride, width=width, padding=padding)
    generated = generate(parse_tflite(model), features=DSP)
    assert 1 in generated.plan.overlapped  # the depthwise layer writes over its input
    assert "tc_dw3_band_" in generated.files["tinycomp_model.c"]
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu")


def test_dw3_two_batches():
    """The band's ring starts afresh for the second image of a batch: two
    rows high, its first window wants the rows the first image's last held."""
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    shape = (2, 2, 4, 8)
    x = b.input(shape, *random_activation_quant(rng))
    y1 = _dw(b, rng, x, 8, (3, 3), 1, "SAME")
    y2 = _dw(b, rng, x, 8, (3, 3), 2, "SAME", activation="RELU6")
    b.output(y1, y2)
    model = b.build()
    assert "tc_dw3_band_" in _code(model, DSP)
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu")
