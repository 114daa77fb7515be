"""CONV_2D and FULLY_CONNECTED kernels on ARM in QEMU, bit-exact with TFLM.

The blocked kernels have a DSP path (SXTB16/SMLAD, compiled only where
__ARM_FEATURE_DSP is defined: mps2-an386, Cortex-M4) and a plain path (the
host tests prove it on x86; mps2-an385, Cortex-M3, proves it on ARM). Seeded
random layers cover what changes the generated code: 1x1 convolutions read
in place (channel counts multiples of 4) or through the window copy (other
counts, strides 2, padding), 3x3 and 10x4 windows with SAME borders,
pixel and channel counts that leave an odd pixel or channel over, per-tensor
(literal) and per-channel requantization, and FC depths with a partial word.
"""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import random_int8

from tests.host.test_conv import OVERLAP_CASES, _conv_model, overlap_model
from tests.host.test_fully_connected import _fc_model

pytestmark = pytest.mark.qemu

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]


def _inputs(rng, shape, n=4):
    x = random_int8(rng, (n, *shape))
    x[0].fill(-128)   # extremes: the largest accumulators and the clamps
    x[1].fill(127)
    return x


def _conv_case(seed):
    rng = np.random.default_rng(1000 + seed)
    k = [(1, 1), (1, 1), (3, 3), (10, 4), (3, 3), (1, 1)][seed % 6]
    cin = int(rng.choice([1, 3, 4, 8, 13, 16, 24]))
    if k == (1, 1) and seed % 2 == 0:
        cin = int(rng.choice([4, 8, 16, 32]))  # whole words: the in-place path
    cout = int(rng.integers(1, 20))
    stride = (1, 1) if seed % 3 else (2, 2)
    padding = "SAME" if seed % 4 < 2 else "VALID"
    hw = (int(rng.integers(max(k[0], 3), 12)), int(rng.integers(max(k[1], 3), 12)))
    model, shape = _conv_model(rng, batch=1, hw=hw, cin=cin, cout=cout, k=k, stride=stride,
                               padding=padding, per_channel=bool(seed % 2),
                               activation=ACTIVATIONS[seed % 4], with_bias=seed % 5 != 0)
    return model, _inputs(rng, shape)


def _fc_case(seed):
    rng = np.random.default_rng(2000 + seed)
    depth = int(rng.choice([1, 3, 7, 16, 33, 64, 100, 129]))
    units = int(rng.integers(1, 24))
    # batch 1: the board harness sends one input tensor of the model's shape per
    # sample (batched rows are covered by the host tests)
    model, shape = _fc_model(rng, 1, depth, units, per_channel=bool(seed % 2),
                             activation=ACTIVATIONS[seed % 4], with_bias=seed % 3 != 0)
    return model, _inputs(rng, shape)


@pytest.mark.parametrize("seed", range(20))
def test_conv_dsp(seed):
    assert_bit_exact_on_board(*_conv_case(seed), board="qemu")


@pytest.mark.parametrize("seed", range(16))
def test_fully_connected_dsp(seed):
    assert_bit_exact_on_board(*_fc_case(seed), board="qemu")


@pytest.mark.parametrize("seed", range(0, 20, 4))
def test_conv_plain_on_cortex_m3(seed):
    assert_bit_exact_on_board(*_conv_case(seed), board="qemu-mps2-an385")


@pytest.mark.parametrize("seed", range(0, 16, 4))
def test_fully_connected_plain_on_cortex_m3(seed):
    assert_bit_exact_on_board(*_fc_case(seed), board="qemu-mps2-an385")


@pytest.mark.parametrize("op", ["fc", "conv"])
@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_shared_layer_function_on_board(op, board):
    # three same-shape layers call one function with their own arrays
    from tests.unit.test_codegen_dedup import _chain
    rng = np.random.default_rng(30 + len(op))
    model, shape = _chain(rng, op)
    assert_bit_exact_on_board(model, _inputs(rng, shape), board=board)


@pytest.mark.parametrize("name", sorted(OVERLAP_CASES))
def test_conv_over_its_dying_input_dsp(name):
    """The DSP path of each CONV_2D variant written over its dying input."""
    rng = np.random.default_rng(300 + sorted(OVERLAP_CASES).index(name))
    model, shape, _ = overlap_model(rng, **OVERLAP_CASES[name])
    assert_bit_exact_on_board(model, _inputs(rng, shape))
