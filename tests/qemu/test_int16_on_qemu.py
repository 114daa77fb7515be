"""int16 (16x8) kernels on emulated Cortex-M cores, bit-exact with TFLM:
mps2-an386 (Cortex-M4 with DSP) and mps2-an385 (Cortex-M3 without). One
model chains every int16 kernel (CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D,
ADD, MUL, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, QUANTIZE), so one
firmware per board and variant covers them all: int64, int32 and no bias;
int16 model edges, and int8 edges with QUANTIZE int8 <-> int16 inside."""
from __future__ import annotations

import numpy as np
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


def _unary(op, s_in, s_out, n=4096, **opts):
    from tests.support.tflite_builder import ModelBuilder
    b = ModelBuilder()
    x = b.input((1, n), s_in, 0, dtype=np.int16)
    y = b.tensor((1, n), s_out, 0, dtype=np.int16)
    b.op(op, [x], [y], **opts)
    b.output(y)
    return b.build()


# 16 samples of 4,096 codes: every int16 code once
EVERY_CODE = np.arange(-32768, 32768, dtype=np.int16).reshape(16, 1, 4096)


@pytest.mark.parametrize("board", BOARDS)
def test_int16_activations_on_qemu(board):
    """LOGISTIC and TANH (general input scales, through the 15-bit
    multiplier) over half of the int16 codes (32,768 spread over the range);
    their power-of-two shortcuts, RELU, RELU6, LEAKY_RELU on 8,192 codes
    (the serial link moves tens of KB/s: the host tests take every code);
    SOFTMAX and MEAN on random rows."""
    for model in (_unary("LOGISTIC", 3.1e-4, 2.0 ** -15), _unary("TANH", 7.7e-5, 2.0 ** -15)):
        assert_bit_exact_on_board(model, EVERY_CODE[::2], board=board)
    some = np.concatenate([EVERY_CODE[::8], EVERY_CODE[3::8]])
    for model in (_unary("LOGISTIC", 2.0 ** -12, 2.0 ** -15), _unary("TANH", 2.0 ** -13, 2.0 ** -15),
                  _unary("RELU", 1e-3, 1.7e-3), _unary("RELU6", 6.0 / 20000, 6.0 / 20000),
                  _unary("LEAKY_RELU", 1e-3, 2.3e-3, alpha=-0.3)):
        assert_bit_exact_on_board(model, some, board=board)
    rng = np.random.default_rng(5)
    soft = _unary("SOFTMAX", 3e-4, 1 / 32768.0, n=100, beta=1.0)
    assert_bit_exact_on_board(soft, rng.integers(-32768, 32768, size=(8, 1, 100)).astype(np.int16),
                              board=board)
    assert_bit_exact_on_board(*cases.mean_case(1), board=board)


@pytest.mark.parametrize("board", BOARDS)
def test_int32_edges_on_qemu(board):
    for inner in (np.int16, np.int8):
        assert_bit_exact_on_board(*cases.int32_edges_case(0, inner), board=board)


@pytest.mark.parametrize("board", BOARDS)
def test_int16_moves_on_qemu(board):
    """CONCATENATION, PAD, TRANSPOSE, STRIDED_SLICE, SLICE, SPLIT, SPLIT_V,
    PACK, RESIZE_NEAREST_NEIGHBOR and RESHAPE on int16 (the host test's seed 0
    models): two bytes per element through memcpy on the cores."""
    from tests.host import test_int16_moves as moves
    for op in moves.OPS:
        if op not in moves.REFUSED:
            assert_bit_exact_on_board(*moves._model(op, 0), board=board)
