"""TRANSPOSE (int8, any permutation, ranks 1 to 5 as in TFLM) on the host, bit-exact
with TFLM. The PyTorch front end puts one at the head of image models whose
NCHW input has more than one channel."""
import itertools

import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

N_SAMPLES = 20

CASES = [
    ((1, 3, 8, 8), (0, 2, 3, 1)),   # NCHW -> NHWC, the front end's case
    ((1, 8, 8, 3), (0, 3, 1, 2)),   # NHWC -> NCHW
    ((1, 6, 10), (0, 2, 1)),        # a 1-D sequence (N, C, L) -> (N, L, C)
    ((4, 7), (1, 0)),
    ((5,), (0,)),                   # identity: one copy
    ((1, 1, 5, 4), (0, 2, 3, 1)),   # one channel: no data moves, one copy
    ((2, 3, 1, 4), (3, 2, 1, 0)),   # size-1 axes in the middle
    ((2, 3, 4, 5), (1, 0, 2, 3)),   # the inner axes stay contiguous: runs of 20
    ((2, 3, 2, 3, 2), (4, 1, 3, 0, 2)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[0])) + "-" + "".join(map(str, c[1])))
def test_transpose(case):
    shape, perm = case
    rng = np.random.default_rng(len(shape) * 100 + sum(perm))
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    b.output(b.transpose(x, perm))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
def test_transpose_every_4d_permutation(perm):
    rng = np.random.default_rng(7)
    shape = (2, 3, 4, 5)
    b = ModelBuilder()
    x = b.input(shape, 0.05, -3)
    b.output(b.transpose(x, perm))
    assert_bit_exact(b.build(), random_int8(rng, (5, *shape)))


def test_transpose_feeds_a_pool():
    # NCHW input, transposed once, then an NHWC kernel: what a PyTorch model becomes.
    rng = np.random.default_rng(8)
    b = ModelBuilder()
    x = b.input((1, 3, 6, 6), 0.04, 5)
    t = b.transpose(x, (0, 2, 3, 1))
    b.output(b.max_pool2d(t, 2, 2, "VALID"))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 3, 6, 6)))


def test_transpose_bad_permutation_is_refused():
    from tinycomp.codegen.generate import generate
    from tinycomp.errors import ModelError
    from tinycomp.frontends.tflite import parse_tflite
    b = ModelBuilder()
    x = b.input((1, 2, 3), 0.05, 0)
    y = b.tensor((1, 3, 2), 0.05, 0)
    b.op("TRANSPOSE", [x, b.const_int32(np.array([0, 2, 2], np.int32))], [y])
    b.output(y)
    with pytest.raises(ModelError, match="TRANSPOSE.*does not reorder"):
        generate(parse_tflite(b.build()))


def test_transpose_copies_raw_values_whatever_the_output_quantization():
    # TFLM moves the bytes and ignores a differing output scale and zero point.
    rng = np.random.default_rng(9)
    b = ModelBuilder()
    x = b.input((1, 2, 3, 4), 0.05, 3)
    y = b.tensor((1, 4, 2, 3), 0.5, -20)
    b.op("TRANSPOSE", [x, b.const_int32(np.array([0, 3, 1, 2], np.int32))], [y])
    b.output(y)
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 2, 3, 4)))


def test_transpose_above_rank_5_is_refused():
    from tinycomp.codegen.generate import generate
    from tinycomp.errors import UnsupportedOpError
    from tinycomp.frontends.tflite import parse_tflite
    b = ModelBuilder()
    x = b.input((1, 2, 1, 2, 1, 2), 0.05, 0)
    b.output(b.transpose(x, (5, 4, 3, 2, 1, 0)))
    with pytest.raises(UnsupportedOpError, match="TRANSPOSE.*rank 6"):
        generate(parse_tflite(b.build()))
