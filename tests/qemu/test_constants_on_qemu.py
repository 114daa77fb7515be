"""Smaller constants, same bits (issues 10, 12): int16 bias arrays where every
value fits (int32 again where that keeps layers sharing one function),
identical arrays stored once, one literal requantization pair for
per-tensor sparse layers, and
--optimize size's table-free kernels (depthwise without the DSP layout,
SOFTMAX computing its exps, ADD without its lookup tables), each model built
once and checked against TFLM on the host and on QEMU with and without DSP."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact, assert_bit_exact_on_board, declared_arrays
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_bias, random_weights
from tests.unit.test_sparse import _inputs, _prune

BOARDS = ["qemu-mps2-an386", "qemu-mps2-an385"]


def _arrays(buf: bytes, storage: str) -> dict[str, str]:
    """C name -> C type of every constant array of the generated model."""
    return {name: ctype for name, (ctype, _) in declared_arrays(generate(parse_tflite(buf), storage=storage)).items()}


def _bias_edges():
    """Input zero point 0, so each folded bias is the bias itself: layer 0's
    biases reach both int16 limits (stored int16), layer 1's go one past
    (int32); a per-tensor FC takes one literal pair."""
    rng = np.random.default_rng(41)
    b = ModelBuilder()
    x = b.input((1, 5, 5, 8), 0.05, 0)
    wq, ws = random_weights(rng, (12, 3, 3, 8), axis=0)
    bq = rng.integers(-32768, 32768, 12).astype(np.int32)
    bq[:2] = -32768, 32767
    h = b.conv2d(x, b.const_int8(wq, ws, axis=0), b.const_int32(bq, scales=0.05 * ws), 0.1, 0)
    wq1, ws1 = random_weights(rng, (10, 1, 1, 12), axis=0)
    bq1 = rng.integers(-30000, 30000, 10).astype(np.int32)
    bq1[3] = 32768
    h = b.conv2d(h, b.const_int8(wq1, ws1, axis=0), b.const_int32(bq1, scales=0.1 * ws1), 0.2, 0,
                 activation="RELU")
    wq2, ws2 = random_weights(rng, (6, 250), axis=None)
    bq2, bs2 = random_bias(rng, 6, 0.2, ws2)
    b.output(b.fully_connected(h, b.const_int8(wq2, ws2), b.const_int32(bq2, scales=bs2), 0.3, -4))
    return b.build(), (1, 5, 5, 8)


def _size_model():
    """What --optimize size changes: a pruned per-tensor conv (sparse, one
    literal pair), depthwise layers (plain layout, one bias array: the shared
    3x3 kernel and the general one), a residual ADD (no tables), a pruned
    per-tensor FC and a SOFTMAX (exps computed)."""
    rng = np.random.default_rng(43)
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    x = b.input((1, 6, 6, 8), s_in, zp_in)
    wq, ws = random_weights(rng, (8, 3, 3, 8), axis=None)
    bq, bs = random_bias(rng, 8, s_in, ws)
    c = b.conv2d(x, b.const_int8(_prune(rng, wq, 0.85), ws), b.const_int32(bq, scales=bs), 0.08, -20,
                 activation="RELU")
    dq, ds = random_weights(rng, (1, 3, 3, 8), axis=3)
    dbq, dbs = random_bias(rng, 8, 0.08, ds)
    d = b.depthwise_conv2d(c, b.const_int8(dq, ds, axis=3), b.const_int32(dbq, scales=dbs), 0.06, 7)
    a = b.add(d, c, 0.1, -3)
    # the general depthwise kernel (2x3 window, depth multiplier 2)
    eq, es = random_weights(rng, (1, 2, 3, 16), axis=3)
    ebq, ebs = random_bias(rng, 16, 0.1, es)
    e = b.depthwise_conv2d(a, b.const_int8(eq, es, axis=3), b.const_int32(ebq, scales=ebs), 0.12, -9,
                           depth_multiplier=2)
    fq, fs = random_weights(rng, (10, 576), axis=None)
    fbq, fbs = random_bias(rng, 10, 0.12, fs)
    f = b.fully_connected(e, b.const_int8(_prune(rng, fq, 0.9), fs), b.const_int32(fbq, scales=fbs), 0.15, 2)
    b.output(b.softmax(f, 1.0))
    return b.build(), (1, 6, 6, 8)


def _shared_chain():
    """Three FULLY_CONNECTED layers of one shape (one shared function) whose
    biases fit int16 in two layers and not in the middle one; two ADDs of
    equally quantized operands (tables stored once, one function)."""
    rng = np.random.default_rng(45)
    b = ModelBuilder()
    x = b.input((1, 24), 0.05, 0)
    y = b.input((1, 24), 0.05, 0)
    h = x
    for i in range(3):
        wq, ws = random_weights(rng, (24, 24), axis=0)
        bq = rng.integers(-20000, 20000, 24).astype(np.int32)
        if i == 1:
            bq[5] = 40000
        h = b.fully_connected(h, b.const_int8(wq, ws, axis=0), b.const_int32(bq, scales=0.05 * ws), 0.05, 0,
                              activation="RELU")
    b.output(h, b.add(x, y, 0.08, 3), b.add(x, y, 0.08, 3))
    return b.build(), [(1, 24), (1, 24)]


def test_shared_functions_and_equal_tables():
    buf, _ = _shared_chain()
    model = generate(parse_tflite(buf))
    arrays = _arrays(buf, "balanced")
    functions = re.findall(r"^static TC_LAYER_FN void (\w+)\(", model.files["tinycomp_model.c"], re.M)
    assert len(functions) == 2, functions  # one FC, one ADD
    assert [arrays[f"tinycomp_w_l{i}_bias_folded"] for i in range(3)] == ["int32_t"] * 3  # widened to share
    # both operands and both ADDs are quantized alike: their four tables are one array
    assert [n for n in arrays if "table" in n] == ["tinycomp_w_l3_a_table"]


def test_constants_take_fewer_bytes():
    edges, _ = _bias_edges()
    arrays = _arrays(edges, "balanced")
    assert arrays["tinycomp_w_l0_bias_folded"] == "int16_t"
    assert arrays["tinycomp_w_l1_bias_folded"] == "int32_t"
    assert not any(n.startswith("tinycomp_w_l2_") and n.endswith(("mult", "shift", "right")) for n in arrays)
    size, _ = _size_model()
    balanced, small = _arrays(size, "balanced"), _arrays(size, "size")
    assert {"tinycomp_w_l1_dsp_params", "tinycomp_w_l5_exp", "tinycomp_w_l3_bias"} <= set(balanced)
    assert any("table" in n for n in balanced)
    assert "tinycomp_w_l0_values" in small and "tinycomp_w_l4_values" in small  # both stored sparse
    gone = [n for n in small if re.search(r"_(dsp_\w+|exp|\w*table|l[04]_mult|l[04]_shift|l[13]_bias)$", n)]
    assert not gone, gone
    assert {"tinycomp_w_l1_bias_folded", "tinycomp_w_l3_bias_folded"} <= set(small)


@pytest.mark.parametrize("where", ["host", *BOARDS])
def test_smaller_constants_bit_exact(where):
    rng = np.random.default_rng(7)
    for (buf, shape), storage in ((_bias_edges(), "balanced"), (_size_model(), "size"),
                                  (_shared_chain(), "balanced")):
        if isinstance(shape, list):  # two inputs
            xs = [_inputs(rng, s[1:], n=8).reshape(8, *s) for s in shape]
        else:
            xs = _inputs(rng, shape[1:], n=8).reshape(8, *shape)
        if where == "host":
            assert_bit_exact(buf, xs, storage)
        else:
            assert_bit_exact_on_board(buf, xs, where, storage)
