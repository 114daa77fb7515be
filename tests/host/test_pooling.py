"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN on the host, bit-exact with TFLM."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]
N_SAMPLES = 40


def _pool_model(kind, shape, filter_size, stride, padding, activation, quant):
    b = ModelBuilder()
    x = b.input(shape, *quant)
    pool = b.average_pool2d if kind == "avg" else b.max_pool2d
    b.output(pool(x, filter_size, stride, padding, activation))
    return b.build()


def _random_pool_case(rng):
    h, w = int(rng.integers(1, 13)), int(rng.integers(1, 13))
    c = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 16]))
    padding = str(rng.choice(["SAME", "VALID"]))
    fh, fw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if padding == "VALID":
        fh, fw = min(fh, h), min(fw, w)
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    n = int(rng.choice([1, 1, 2]))
    return (n, h, w, c), (fh, fw), (sh, sw), padding


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("seed", range(22))
def test_pool_random(kind, seed):
    rng = np.random.default_rng(1000 + seed)
    shape, f, s, padding = _random_pool_case(rng)
    quant = random_activation_quant(rng)
    model = _pool_model(kind, shape, f, s, padding, ACTIVATIONS[seed % 4], quant)
    assert_bit_exact(model, random_int8(rng, (N_SAMPLES, *shape)))


POOL_EDGES = [
    # (shape, filter, stride, padding): why it is interesting
    ((1, 1, 1, 1), (1, 1), (1, 1), "VALID"),   # 1x1 spatial, single channel
    ((1, 1, 1, 3), (3, 3), (2, 2), "SAME"),    # window larger than the input
    ((1, 2, 3, 5), (5, 4), (1, 1), "SAME"),    # window larger than the input, every tap clipped
    ((1, 7, 7, 7), (2, 2), (3, 3), "VALID"),   # stride larger than the filter
    ((1, 8, 5, 3), (1, 2), (3, 2), "SAME"),    # stride > filter with SAME
    ((1, 5, 5, 1), (5, 5), (1, 1), "VALID"),   # global window
    ((2, 6, 4, 5), (3, 2), (2, 1), "SAME"),    # batches, odd padding split
]


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("case", POOL_EDGES, ids=lambda c: "x".join(map(str, c[0])) + c[3])
def test_pool_edges(kind, case):
    rng = np.random.default_rng(7)
    shape, f, s, padding = case
    model = _pool_model(kind, shape, f, s, padding, None, (0.05, -3))
    assert_bit_exact(model, random_int8(rng, (N_SAMPLES, *shape)))


def test_average_pool_rounds_halves_away_from_zero():
    # 2 taps: every sum parity and sign; hand-made inputs hit exact halves.
    shape = (1, 1, 2, 1)
    model = _pool_model("avg", shape, (1, 2), (1, 2), "VALID", None, (0.1, 0))
    pairs = np.array([[a, b] for a in range(-128, 128, 3) for b in (-128, -1, 0, 1, 127)], np.int8)
    assert_bit_exact(model, pairs.reshape(-1, *shape))


def _mean_model(shape, axes, keep_dims, in_quant, out_quant):
    b = ModelBuilder()
    x = b.input(shape, *in_quant)
    b.output(b.mean(x, axes, keep_dims=keep_dims, scale=out_quant[0], zero_point=out_quant[1]))
    return b.build()


MEAN_AXES = {
    4: [[1, 2], [2, 1], [1], [2], [3], [0], [-1], [1, 3], [0, 3], [-3, -2]],
    3: [[1], [0, 2], [2], [-1, 0]],
    2: [[1], [0], [0, 1]],
}


@pytest.mark.parametrize("seed", range(24))
def test_mean_random(seed):
    rng = np.random.default_rng(2000 + seed)
    rank = [4, 4, 4, 3, 2][seed % 5]
    shape = tuple(int(rng.integers(1, 9)) for _ in range(rank))
    axes = MEAN_AXES[rank][int(rng.integers(len(MEAN_AXES[rank])))]
    in_quant = random_activation_quant(rng)
    # every third case keeps the quantization: TFLM's truncating path
    out_quant = in_quant if seed % 3 == 0 else random_activation_quant(rng)
    model = _mean_model(shape, axes, bool(seed % 2), in_quant, out_quant)
    assert_bit_exact(model, random_int8(rng, (N_SAMPLES, *shape)))


MEAN_EDGES = [
    ((1, 7, 7, 32), [1, 2], True, "same"),   # global average pool (MobileNet, DS-CNN, ResNet)
    ((1, 7, 7, 32), [1, 2], True, "other"),
    ((1, 25, 5, 64), [1, 2], True, "other"),  # DS-CNN's
    ((1, 8, 8, 3), [1, 2], False, "other"),
    ((1, 1, 1, 5), [1, 2], True, "other"),   # 1x1 spatial: a pure requantization
    ((1, 1, 1, 1), [1, 2], True, "same"),
    ((1, 6, 6, 1), [1, 2], False, "same"),   # single channel
    ((2, 3, 4, 5), [0, 1, 2, 3], False, "other"),  # everything
    ((1, 64, 64, 2), [1, 2], True, "other"),  # count 4096: the multiplier loses bits
]


@pytest.mark.parametrize("case", MEAN_EDGES, ids=lambda c: "x".join(map(str, c[0])) + c[3])
def test_mean_edges(case):
    rng = np.random.default_rng(11)
    shape, axes, keep, q = case
    in_quant = (0.02, 5)
    out_quant = in_quant if q == "same" else (0.013, -9)
    model = _mean_model(shape, axes, keep, in_quant, out_quant)
    assert_bit_exact(model, random_int8(rng, (N_SAMPLES, *shape)))


def test_mean_same_scale_other_zero_point():
    rng = np.random.default_rng(3)
    model = _mean_model((1, 5, 3, 4), [1, 2], True, (0.02, 5), (0.02, -7))
    assert_bit_exact(model, random_int8(rng, (N_SAMPLES, 1, 5, 3, 4)))


@pytest.mark.parametrize("kind", ["avg", "max"])
def test_pool_scale_within_tflm_tolerance(kind):
    # TFLM accepts output scales within 1e-6 of the input's and ignores them.
    rng = np.random.default_rng(13)
    b = ModelBuilder()
    x = b.input((1, 4, 5, 3), 0.04, 2)
    pool = b.average_pool2d if kind == "avg" else b.max_pool2d
    b.output(pool(x, 2, 1, "SAME", "RELU", scale=0.0400006, zero_point=2))
    assert_bit_exact(b.build(), random_int8(rng, (N_SAMPLES, 1, 4, 5, 3)))


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("quant", [(0.05, 2), (0.04, 3)])
def test_pool_requantizing_is_refused(kind, quant):
    # TFLM's Prepare rejects these models; tinycomp names the op instead.
    from tinycomp.codegen.generate import generate
    from tinycomp.errors import UnsupportedOpError
    from tinycomp.frontends.tflite import parse_tflite
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), 0.04, 2)
    pool = b.average_pool2d if kind == "avg" else b.max_pool2d
    b.output(pool(x, 2, 2, scale=quant[0], zero_point=quant[1]))
    with pytest.raises(UnsupportedOpError, match="POOL_2D.*quantization"):
        generate(parse_tflite(b.build()))
