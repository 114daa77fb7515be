"""TRANSPOSE in QEMU (Cortex-M4F and Cortex-M3), bit-exact with TFLM: one
chain of several permutations (element loops and memcpy runs) per board."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_int8

pytestmark = pytest.mark.qemu


def _chain() -> bytes:
    b = ModelBuilder()
    x = b.input((1, 3, 6, 5), 0.05, -4)
    t = b.transpose(x, (0, 2, 3, 1))          # NCHW -> NHWC: element loop
    t = b.max_pool2d(t, 2, 1, "SAME")
    t = b.transpose(t, (1, 0, 2, 3))          # contiguous runs: memcpy
    t = b.transpose(t, (3, 2, 1, 0))
    b.output(b.reshape(t, (1, 90)))
    return b.build()


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_transpose_chain_on_board(board):
    rng = np.random.default_rng(11)
    assert_bit_exact_on_board(_chain(), random_int8(rng, (6, 1, 3, 6, 5)), board)
