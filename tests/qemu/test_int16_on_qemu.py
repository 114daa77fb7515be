"""int16 (16x8) kernels on emulated Cortex-M cores, bit-exact with TFLM:
mps2-an386 (Cortex-M4 with DSP) and mps2-an385 (Cortex-M3 without). One
model chains every int16 kernel (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D,
ADD, MUL, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, QUANTIZE), so one
firmware per board and variant covers them all: int64, int32 and no bias;
int16 model edges, and int8 edges with QUANTIZE int8 <-> int16 inside."""
from __future__ import annotations

import pytest

from tests.support import int16_cases as cases
from tests.support.harness import assert_bit_exact_on_board

pytestmark = pytest.mark.qemu

BOARDS = ["qemu", "qemu-mps2-an385"]


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("seed,int8_edges", [(0, False), (1, False), (2, True)])
def test_int16_chain_on_qemu(board, seed, int8_edges):
    assert_bit_exact_on_board(*cases.chain_case(seed, count=8, int8_edges=int8_edges), board=board)


@pytest.mark.parametrize("board", BOARDS)
def test_int16_single_ops_on_qemu(board):
    """A few single-op models of the host test's random cases (broadcast
    ADD, SUB, MUL with constants; dilated, strided, grouped windows)."""
    for model, inputs in (cases.conv_case(0), cases.depthwise_case(0), cases.binary_case("SUB", 3),
                          cases.binary_case("MUL", 2), cases.binary_case("ADD", 4)):
        assert_bit_exact_on_board(model, inputs, board=board)


@pytest.mark.tf
@pytest.mark.parametrize("board", BOARDS)
def test_converter_16x8_cnn_on_qemu(board):
    from tests.support import int16_models
    model = int16_models.cnn_16x8()
    assert_bit_exact_on_board(model, int16_models.inputs(model), board=board)
