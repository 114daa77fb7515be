"""The data-movement kernels (STRIDED_SLICE, GATHER, RESIZE_NEAREST_NEIGHBOR,
SPLIT_V with two outputs, SLICE, PACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH) in
one model on QEMU's Cortex-M4 and Cortex-M3, bit-exact with TFLM."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_int8

pytestmark = pytest.mark.qemu


def _chain():
    b = ModelBuilder()
    x = b.input((1, 6, 6, 4), 0.05, -7)
    q = b.info(x)

    def t(shape):
        return b.tensor(shape, q.scale, q.zero_point)

    def i32(v):
        return b.const_int32(np.asarray(v, np.int32))

    s = t((1, 3, 2, 4))
    b.op("STRIDED_SLICE", [x, i32([0, 5, 1, 0]), i32([1, 0, 6, 4]), i32([1, -2, 3, 1])], [s])
    g = t((1, 3, 2, 3))
    b.op("GATHER", [s, i32([3, 0, 3])], [g], axis=3)
    r = t((1, 5, 4, 3))
    b.op("RESIZE_NEAREST_NEIGHBOR", [g, i32([5, 4])], [r], half_pixel_centers=True)
    a, c = t((1, 2, 4, 3)), t((1, 3, 4, 3))
    b.op("SPLIT_V", [r, i32([2, -1]), i32([1])], [a, c], num_splits=2)
    sl = t((1, 2, 4, 3))
    b.op("SLICE", [c, i32([0, 1, 0, 0]), i32([-1, 2, -1, -1])], [sl])
    p = t((1, 2, 2, 4, 3))
    b.op("PACK", [a, sl], [p], axis=1, values_count=2)
    d = t((1, 12, 12, 1))
    b.op("DEPTH_TO_SPACE", [x], [d], block_size=2)
    e = t((1, 4, 4, 9))
    b.op("SPACE_TO_DEPTH", [d], [e], block_size=3)
    b.output(p, e)
    return b.build()


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_slicing_chain_on_board(board):
    rng = np.random.default_rng(11)
    assert_bit_exact_on_board(_chain(), random_int8(rng, (6, 1, 6, 6, 4)), board)
