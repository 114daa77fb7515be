"""16x8 element-wise activations on the host, bit-exact with TFLM over every
one of the 65,536 int16 input codes: LOGISTIC and TANH (power-of-two input
scales that take TFLM's x * 3 / x * 6 shortcut, and seeded random scales
through the 15-bit multiplier), and more below as they are added."""
import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.errors import UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder

ALL = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 1, 65536)
ALL2 = np.concatenate([ALL, ALL[:, :, ::-1]])  # two samples, the second reversed


def _unary(op, s_in, s_out, **opts):
    b = ModelBuilder()
    x = b.input((1, 65536), s_in, 0, dtype=np.int16)
    y = b.tensor((1, 65536), s_out, 0, dtype=np.int16)
    b.op(op, [x], [y], **opts)
    b.output(y)
    return b.build()


def _scales(seed, fixed):
    rng = np.random.default_rng(19000 + seed)
    return list(fixed) + [float(np.float32(np.exp(rng.uniform(np.log(1e-6), np.log(2.0)))))
                          for _ in range(5)]


@pytest.mark.parametrize("op,fixed", [("LOGISTIC", (2.0 ** -12, 2.0 ** -11, 2.0 ** -15, 1 / 3000)),
                                      ("TANH", (2.0 ** -12, 2.0 ** -13, 2.0 ** -11, 2.0 ** -15))])
@pytest.mark.parametrize("k", range(9))
def test_sigmoid_family_every_code(op, fixed, k):
    s_in = _scales(k, fixed)[k]
    assert_bit_exact(_unary(op, s_in, 2.0 ** -15), ALL2)


def test_sigmoid_output_scale_other_than_2_pow_15_refused():
    with pytest.raises(UnsupportedOpError, match=r"LOGISTIC at layer 0.*2\^-15"):
        generate(parse_tflite(_unary("LOGISTIC", 1e-3, 1 / 32768.0 * 3)))


@pytest.mark.parametrize("op", ["RELU", "RELU6", "LEAKY_RELU"])
@pytest.mark.parametrize("k", range(4))
def test_relu_family_every_code(op, k):
    rng = np.random.default_rng(19100 + k)
    s_in = float(np.float32(np.exp(rng.uniform(np.log(1e-5), np.log(1e-2)))))
    # equal scales (as the converter writes them), then rescaling both ways
    s_out = s_in if k == 0 else float(np.float32(s_in * np.exp(rng.uniform(-1.5, 1.5))))
    if op == "RELU6":
        s_in = (6.0 / 20000, 6.0 / 40000, s_in, 1e-5)[k]  # six inside and beyond the range
        s_out = s_in
    opts = {"alpha": float(np.float32(rng.uniform(-0.5, 1.5)))} if op == "LEAKY_RELU" else {}
    assert_bit_exact(_unary(op, s_in, s_out, **opts), ALL2)


@pytest.mark.parametrize("seed", range(10))
def test_softmax_int16(seed):
    """Rows of random depth; input scales from tiny (all exps near 1) to
    large (most exps 0); beta other than 1 now and then; samples with equal
    values, extremes and one dominant value."""
    rng = np.random.default_rng(19200 + seed)
    depth = int(rng.choice([1, 2, 5, 10, 33, 100, 1000]))
    rows = int(rng.integers(1, 4))
    s_in = float(np.float32(np.exp(rng.uniform(np.log(1e-6), np.log(1e-2)))))
    beta = 1.0 if seed % 3 else float(np.float32(rng.uniform(0.2, 3.0)))
    b = ModelBuilder()
    x = b.input((rows, depth), s_in, 0, dtype=np.int16)
    y = b.tensor((rows, depth), 1 / 32768.0, 0, dtype=np.int16)
    b.op("SOFTMAX", [x], [y], beta=beta)
    b.output(y)
    xs = rng.integers(-32768, 32768, size=(16, rows, depth)).astype(np.int16)
    xs[0] = 0
    xs[1] = 32767
    xs[2, :, 0], xs[2, :, 1:] = 32767, -32768
    xs[3] = rng.integers(-50, 50, size=(rows, depth))
    assert_bit_exact(b.build(), xs)
