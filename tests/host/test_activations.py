"""SOFTMAX, LOGISTIC, TANH, RELU, RELU6, HARD_SWISH and QUANTIZE on the host,
bit-exact with TFLM: seeded random quantizations and shapes, and every one
of the 256 int8 input values for the table-lookup ops."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_int8,
                                          random_weights, random_bias)

ALL_VALUES = np.arange(-128, 128, dtype=np.int8)

UNARY = {
    "LOGISTIC": lambda b, x, s, z: b.logistic(x),
    "TANH": lambda b, x, s, z: b.tanh(x),
    "RELU": lambda b, x, s, z: b.relu(x, s, z),
    "RELU6": lambda b, x, s, z: b.relu6(x, s, z),
    "HARD_SWISH": lambda b, x, s, z: b.hard_swish(x, s, z),
    "QUANTIZE": lambda b, x, s, z: b.quantize(x, s, z),
}


def _unary_model(op, shape, s_in, z_in, s_out, z_out):
    b = ModelBuilder()
    x = b.input(shape, s_in, z_in)
    b.output(UNARY[op](b, x, s_out, z_out))
    return b.build()


def _samples(rng, shape, n=6):
    """Random inputs, plus rows that walk through all 256 values."""
    size = int(np.prod(shape))
    x = random_int8(rng, (n, size))
    x[0] = np.resize(ALL_VALUES, size)
    x[1] = np.resize(ALL_VALUES[::-1], size)
    return x.reshape((n, *shape))


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("seed", range(4))
def test_unary_random(op, seed):
    rng = np.random.default_rng([seed, len(op), ord(op[0])])
    shape = [(1, 256), (2, 5, 3, 7), (1, 1), (300,)][seed]
    s_in, z_in = random_activation_quant(rng)
    s_out, z_out = random_activation_quant(rng, scale_range=(0.005, 0.5))
    if op == "HARD_SWISH":
        s_out = max(s_out, s_in / 64)  # TFLM needs input scale < 128 * output scale
    assert_bit_exact(_unary_model(op, shape, s_in, z_in, s_out, z_out), _samples(rng, shape))


def test_unary_full_range_single_tensor():
    """All 256 values through every op in one model each, extreme zero points."""
    for op in UNARY:
        for z_in in (-128, 127):
            model = _unary_model(op, (256,), 0.05, z_in, 0.04, -7)
            assert_bit_exact(model, ALL_VALUES.reshape(1, 256))


@pytest.mark.parametrize("storage", ["balanced", "size"])  # size: exps computed, no table
@pytest.mark.parametrize("seed", range(10))
def test_softmax_random(seed, storage):
    rng = np.random.default_rng(500 + seed)
    depth = int(rng.integers(1, 101))
    rows = int(rng.integers(1, 6))
    shape = [(rows, depth), (1, rows, depth), (1, 1, rows, depth), (depth,)][seed % 4]
    s_in, z_in = random_activation_quant(rng, scale_range=(1e-3, 1.0))
    beta = [1.0, 0.5, 2.0, float(rng.uniform(0.05, 4.0))][seed % 4]
    b = ModelBuilder()
    x = b.input(shape, s_in, z_in)
    b.output(b.softmax(x, beta))
    n = 12
    xs = random_int8(rng, (n, *shape))
    # near-ties: most differences small, and one all-equal sample
    xs[1] = np.clip(rng.integers(-3, 4, size=shape) + int(rng.integers(-120, 120)), -128, 127)
    xs[2] = 5
    assert_bit_exact(b.build(), xs, storage)


@pytest.mark.parametrize("storage", ["balanced", "size"])
def test_softmax_edge_rows(storage):
    """Row length 1, a long row (sum of exps near TFLM's limit), tiny and huge beta*scale."""
    for shape, scale, beta in [((4, 1), 0.1, 1.0), ((1, 400), 1e-3, 1.0),
                               ((3, 10), 1e-4, 0.1), ((3, 10), 2.0, 3.0)]:
        b = ModelBuilder()
        x = b.input(shape, scale, 0)
        b.output(b.softmax(x, beta))
        rng = np.random.default_rng(len(shape) * 7 + shape[-1])
        xs = random_int8(rng, (6, *shape))
        xs[0] = -128
        assert_bit_exact(b.build(), xs, storage)


def test_classifier_head_chain():
    """FULLY_CONNECTED -> SOFTMAX and activations in place after another layer."""
    rng = np.random.default_rng(77)
    b = ModelBuilder()
    s_in, z_in = random_activation_quant(rng)
    x = b.input((1, 24), s_in, z_in)
    wq, ws = random_weights(rng, (16, 24), axis=0)
    bq, bs = random_bias(rng, 16, s_in, ws)
    h = b.fully_connected(x, b.const_int8(wq, ws, axis=0), b.const_int32(bq, bs), 0.08, 3)
    h = b.hard_swish(h, 0.05, -20)
    h = b.tanh(h)
    h = b.quantize(h, 0.02, 10)
    h = b.relu6(h)
    wq2, ws2 = random_weights(rng, (10, 16), axis=0)
    bq2, bs2 = random_bias(rng, 10, 0.02, ws2)
    y = b.fully_connected(h, b.const_int8(wq2, ws2, axis=0), b.const_int32(bq2, bs2), 0.1, -5)
    y = b.logistic(b.relu(y, 0.07, -100))
    b.output(b.softmax(y, 1.0))
    assert_bit_exact(b.build(), random_int8(rng, (40, 1, 24)))


def test_two_softmaxes_in_place():
    """Two SOFTMAX layers in one file (shared helpers defined once), the first
    one working in place in the arena between two LUT layers."""
    rng = np.random.default_rng(91)
    b = ModelBuilder()
    x = b.input((4, 33), 0.06, -11)
    h = b.relu(x, 0.05, -128)
    h = b.softmax(h, 0.8)
    h = b.tanh(h)
    b.output(b.softmax(h, 2.5))
    assert_bit_exact(b.build(), random_int8(rng, (30, 4, 33)))


def test_softmax_without_undefined_behaviour():
    """The softmax kernel under UBSan (trapping), on rows with ties and extremes."""
    from tests.support.harness import compile_for_host
    from tests.support.tflm import run_tflm
    rng = np.random.default_rng(5)
    b = ModelBuilder()
    x = b.input((5, 60), 0.3, 0)
    b.output(b.softmax(b.hard_swish(x, 0.2, -30), 1.0))
    model = b.build()
    xs = random_int8(rng, (20, 5, 60))
    xs[0], xs[1] = -128, 127
    flags = ("-fsanitize=undefined", "-fno-sanitize-recover=undefined")
    ours = compile_for_host(model, extra_flags=flags).infer(xs)
    assert np.array_equal(ours, run_tflm(model, xs).reshape(len(xs), -1))


def test_softmax_computed_exps_equal_the_table(tmp_path):
    """--optimize size's tc_softmax_exp, as generated, against the build-time
    table that the balanced kernel (and TFLM) use, entry by entry, for 300
    (beta, input scale) pairs: a one-ULP slip in an exp is mostly invisible in
    int8 outputs, so the exps themselves are compared."""
    import subprocess

    from tinycomp.boards import load_board
    from tinycomp.codegen.generate import generate
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.reference import softmax as ref_softmax

    b = ModelBuilder()
    b.output(b.softmax(b.input((1, 4), 0.1, 0), 1.0))
    generate(parse_tflite(b.build()), storage="size").write(tmp_path)
    (tmp_path / "exps.c").write_text(
        '#include <stdio.h>\n#include "tinycomp_model.c"\n'
        "int main(void) {\n    long m, s, n;\n"
        '    while (scanf("%ld %ld %ld", &m, &s, &n) == 3) {\n'
        '        for (long k = 0; k < n; k++) printf("%ld\\n", (long)tc_softmax_exp((int32_t)k, (int32_t)m, (int)s));\n'
        "    }\n    return 0;\n}\n")
    board = load_board("host")
    exe = tmp_path / "exps"
    subprocess.run([board.cc, *board.cflags, "-I", str(tmp_path), str(tmp_path / "exps.c"), "-o", str(exe)],
                   check=True)
    rng = np.random.default_rng(9)
    cases, tables = [], []
    for _ in range(300):
        beta, scale = float(rng.choice([1.0, rng.uniform(0.05, 4.0)])), float(np.exp(rng.uniform(-7, 1)))
        try:
            mult, shift, _ = ref_softmax.softmax_params(beta, scale)
        except ref_softmax.NotCompilable:
            continue
        table = ref_softmax.exp_table(beta, scale)
        cases.append(f"{mult} {shift} {len(table)}")
        tables.append(np.asarray(table, np.int64))
    out = subprocess.run([str(exe)], input="\n".join(cases) + "\n", capture_output=True, text=True,
                         check=True).stdout.split()
    expected = np.concatenate(tables)
    assert len(cases) > 250 and expected.size > 10_000
    np.testing.assert_array_equal(np.array(out, np.int64), expected)
