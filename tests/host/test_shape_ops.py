"""CONCATENATION, PAD, and the alias ops (RESHAPE, SQUEEZE, EXPAND_DIMS) in
chains, on the host, bit-exact with TFLM."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_int8,
                                          random_weights)

N_SAMPLES = 40


def _padded_along(b, x, rank, axis, before, after):
    pads = [[0, 0] for _ in range(rank)]
    pads[axis] = [before, after]
    return b.pad(x, pads)


def _concat_inputs(b, rng, x, shape, axis, count):
    """count tensors that fit x's shape except along axis and share its
    quantization (TFLM requires it): x itself, x padded along axis, x through a
    1x1 max pool (4D only) and constants."""
    rank = len(shape)
    q = b.info(x)
    made = []
    for k in range(count):
        kind = (k + int(rng.integers(4))) % 4
        if kind == 0:
            made.append(x)
        elif kind == 1:
            made.append(_padded_along(b, x, rank, axis, int(rng.integers(0, 3)), int(rng.integers(1, 3))))
        elif kind == 2 and rank == 4:
            made.append(b.max_pool2d(x, 1, 1, "VALID"))
        else:
            cshape = list(shape)
            cshape[axis] = int(rng.integers(1, 4))
            made.append(b.const_int8(random_int8(rng, cshape), scales=q.scale, zero_points=q.zero_point))
    if all(b.info(t).data is not None for t in made):
        made[0] = x  # at least one activation input
    return made


@pytest.mark.parametrize("seed", range(24))
def test_concatenation_random(seed):
    rng = np.random.default_rng(4000 + seed)
    rank = [4, 4, 3, 2, 1][seed % 5]
    shape = (1,) + tuple(int(rng.integers(1, 6)) for _ in range(rank - 1)) if rank > 1 else (int(rng.integers(1, 9)),)
    axis = int(rng.integers(-rank, rank))
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    ins = _concat_inputs(b, rng, x, shape, axis % rank, int(rng.integers(2, 5)))
    b.output(b.concatenation(ins, axis))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1])
def test_concatenation_of_two_branches(axis):
    # Two computed branches of one input, neither of them the input itself.
    rng = np.random.default_rng(44)
    shape = (1, 4, 3, 5)
    b = ModelBuilder()
    x = b.input(shape, 0.04, 2)
    left = b.max_pool2d(x, 2, 1, "SAME")
    right = b.average_pool2d(x, 3, 1, "SAME")
    b.output(b.concatenation([left, right, left], axis))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


def test_concatenation_differing_quantization_is_refused():
    # TFLM rejects it in Prepare; tinycomp names the op and the input instead.
    from tinycomp.codegen.generate import generate
    from tinycomp.errors import UnsupportedOpError
    from tinycomp.frontends.tflite import parse_tflite
    b = ModelBuilder()
    x = b.input((1, 3, 3, 2), 0.04, 2)
    m = b.mean(x, [0], scale=0.3, zero_point=-50)
    b.output(b.concatenation([x, m], 3))
    with pytest.raises(UnsupportedOpError, match="CONCATENATION.*input 1"):
        generate(parse_tflite(b.build()))


@pytest.mark.parametrize("seed", range(24))
def test_pad_random(seed):
    rng = np.random.default_rng(5000 + seed)
    rank = [4, 4, 4, 3, 2, 1][seed % 6]
    shape = tuple(int(rng.integers(1, 6)) for _ in range(rank))
    pads = rng.integers(0, 4, size=(rank, 2))
    pads[rng.random(rank) < 0.4] = 0  # unpadded axes fold into their neighbours
    b = ModelBuilder()
    x = b.input(shape, *random_activation_quant(rng))
    b.output(b.pad(x, pads))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


PAD_EDGES = [
    ((1, 1, 1, 1), [[0, 0], [1, 1], [1, 1], [0, 0]]),   # 1x1 spatial, single channel
    ((1, 2, 2, 3), [[0, 0], [5, 7], [6, 4], [0, 0]]),   # padding larger than the input
    ((1, 3, 3, 7), [[0, 0], [0, 0], [0, 0], [1, 2]]),   # channels only
    ((1, 3, 4, 5), [[0, 0], [0, 0], [0, 0], [0, 0]]),   # nothing: a copy
    ((2, 3, 1, 3), [[1, 0], [0, 0], [0, 2], [0, 0]]),   # batch padding
    ((5,), [[3, 0]]),
]


@pytest.mark.parametrize("case", PAD_EDGES, ids=lambda c: "x".join(map(str, c[0])))
def test_pad_edges(case):
    rng = np.random.default_rng(46)
    shape, pads = case
    b = ModelBuilder()
    x = b.input(shape, 0.02, -128)
    b.output(b.pad(x, pads))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, *shape)))


def test_pad_output_quantization_differs():
    # TFLM copies the input bytes unchanged and pads with the OUTPUT zero point.
    rng = np.random.default_rng(52)
    b = ModelBuilder()
    x = b.input((1, 3, 2, 4), 0.02, -7)
    y = b.tensor((1, 5, 3, 4), 0.5, 33)
    b.op("PAD", [x, b.const_int32(np.array([[0, 0], [1, 1], [0, 1], [0, 0]], np.int32))], [y])
    b.output(y)
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 3, 2, 4)))


# Alias ops emit no code: chains through them must stay bit-exact.

def test_pool_reshape_fully_connected():
    rng = np.random.default_rng(47)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 3), 0.05, -10)
    p = b.average_pool2d(x, 2, 2, "VALID")
    r = b.reshape(p, (1, 27))
    wq, ws = random_weights(rng, (4, 27), axis=None)
    y = b.fully_connected(r, b.const_int8(wq, scales=ws), None, 0.2, 3)
    b.output(y)
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 6, 6, 3)))


def test_pad_squeeze_pool():
    rng = np.random.default_rng(48)
    b = ModelBuilder()
    x = b.input((1, 1, 5, 3), 0.05, -10)
    p = b.pad(x, [[0, 0], [0, 0], [2, 1], [0, 0]])
    s = b.squeeze(p, [0, 1])                       # (8, 3)
    e = b.expand_dims(b.expand_dims(s, 0), 0)      # (1, 1, 8, 3)
    b.output(b.max_pool2d(e, (1, 3), (1, 2), "SAME"))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 1, 5, 3)))


def test_output_is_a_reshape():
    # Global average pool as MEAN, then RESHAPE to (1, C) as the model output.
    rng = np.random.default_rng(49)
    b = ModelBuilder()
    x = b.input((1, 4, 4, 6), 0.05, -10)
    m = b.mean(x, [1, 2], keep_dims=True, scale=0.02, zero_point=1)
    b.output(b.reshape(m, (1, 6)))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 4, 4, 6)))


def test_output_is_a_squeeze_of_a_pad():
    rng = np.random.default_rng(50)
    b = ModelBuilder()
    x = b.input((1, 3, 1, 2), 0.05, 20)
    p = b.pad(x, [[0, 0], [1, 1], [0, 0], [0, 1]])
    b.output(b.squeeze(p))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 3, 1, 2)))


def test_in_place_add_through_reshapes():
    # ADD's first input is a reshape of a buffer that dies there: the in-place
    # claim must hold through the alias; the other operand is a reshape of x.
    rng = np.random.default_rng(51)
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), 0.05, -10)
    p = b.max_pool2d(x, 3, 1, "SAME")
    r = b.reshape(p, (1, 16, 2))
    a = b.add(r, b.reshape(x, (1, 16, 2)), 0.05, -10)
    c = b.concatenation([b.reshape(a, (1, 4, 4, 2)), x], 3)
    b.output(b.reshape(c, (1, 64)))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 4, 4, 2)))


def test_all_kernels_under_ubsan():
    # One model through every kernel of this family, built with UBSan that
    # aborts on the first undefined behaviour (shifts, overflow, bounds).
    from tests.support.harness import compile_for_host
    from tests.support.tflm import run_tflm
    rng = np.random.default_rng(53)
    b = ModelBuilder()
    x = b.input((1, 5, 4, 3), 0.05, -128)
    p = b.pad(x, [[0, 0], [1, 0], [0, 2], [0, 0]])                 # (1, 6, 6, 3)
    mx = b.max_pool2d(p, 3, 2, "SAME", "RELU6")                    # (1, 3, 3, 3)
    av = b.average_pool2d(p, 2, 2, "VALID")                        # (1, 3, 3, 3)
    mean = b.mean(p, [1, 2], scale=0.003, zero_point=127)          # (1, 1, 1, 3)
    a = b.add(av, mean, 0.08, -100, activation="RELU")
    m = b.mul(a, b.const_int8(random_int8(rng, (3,)), scales=0.01, zero_points=-128), 0.002, 120)
    s_m, z_m = b.info(m).scale, b.info(m).zero_point
    mx2 = b.mean(mx, [0], scale=s_m, zero_point=z_m)
    cat = b.concatenation([m, mx2], 3)
    b.output(b.reshape(cat, (1, 54)))
    model = b.build()
    inputs = random_int8(rng, (N_SAMPLES, 1, 5, 4, 3))
    inputs[:4] = [[-128], [127], [0], [-1]] * np.ones((1, 5, 4, 3), np.int8)  # extremes
    runner = compile_for_host(model, extra_flags=("-fsanitize=undefined", "-fno-sanitize-recover=all"))
    ours = runner.infer(inputs)
    np.testing.assert_array_equal(ours, run_tflm(model, inputs).reshape(len(inputs), -1))
