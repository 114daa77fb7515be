"""Single-input-channel depthwise layers (run as CONV_2D) on QEMU's Cortex-M4
(the convolution's DSP path) and Cortex-M3, bit-exact with TFLM."""
import pytest

from tests.host.test_depthwise_as_conv import CASES, dw_model
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import random_int8

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board,i", [("qemu", 0), ("qemu", 3), ("qemu-mps2-an385", 1), ("qemu-mps2-an385", 5)])
def test_single_channel_depthwise_on_board(board, i):
    model, shape, rng = dw_model(12200 + i, CASES[i])
    x = random_int8(rng, (4, *shape))
    x[0].fill(-128)
    assert_bit_exact_on_board(model, x, board)
