"""Sparse weight storage: bitmap-sparse FULLY_CONNECTED and CONV_2D kernels are
bit-exact with TFLM over random sparsities and shapes, chosen only when smaller."""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.codegen.ops import sparse
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_int8, random_weights)

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]


def _prune(rng, wq, sparsity):
    """Zero a random fraction of the int8 weights, as magnitude pruning leaves them."""
    w = wq.copy()
    w[rng.random(w.shape) < sparsity] = 0
    return w


def _inputs(rng, shape, n=12):
    x = random_int8(rng, (n, *shape))
    x[0].fill(-128)  # the extremes stress the accumulator and the clamps
    x[1].fill(127)
    return x


def _fc(rng, batch, depth, units, sparsity, per_channel, activation, with_bias):
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    x = b.input((batch, depth), s_in, zp_in)
    wq, ws = random_weights(rng, (units, depth), axis=0 if per_channel else None)
    w = b.const_int8(_prune(rng, wq, sparsity), scales=ws, axis=0)
    bias = None
    if with_bias:
        bq, bs = random_bias(rng, units, s_in, ws)
        bias = b.const_int32(bq, scales=bs)
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.01, 1.0))
    b.output(b.fully_connected(x, w, bias, s_out, zp_out, activation=activation))
    return b.build(), (batch, depth)


def _conv(rng, hw, cin, cout, k, stride, dilation, padding, sparsity, activation, with_bias, groups=1):
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    shape = (1, *hw, cin)
    x = b.input(shape, s_in, zp_in)
    wq, ws = random_weights(rng, (cout, *k, cin // groups), axis=0)
    w = b.const_int8(_prune(rng, wq, sparsity), scales=ws, axis=0)
    bias = None
    if with_bias:
        bq, bs = random_bias(rng, cout, s_in, ws)
        bias = b.const_int32(bq, scales=bs)
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.01, 1.0))
    b.output(b.conv2d(x, w, bias, s_out, zp_out, stride=stride, padding=padding,
                      activation=activation, dilation=dilation))
    return b.build(), shape


def _uses_sparse(buf: bytes) -> bool:
    return "_bitmap" in generate(parse_tflite(buf)).files["tinycomp_weights.c"]


@pytest.mark.parametrize("seed", range(8))
def test_sparse_fully_connected_bit_exact(seed):
    rng = np.random.default_rng(100 + seed)
    depth, units = int(rng.integers(1, 90)), int(rng.integers(1, 24))
    sparsity = [0.6, 0.8, 0.95, 1.0][seed % 4]
    buf, shape = _fc(rng, int(rng.integers(1, 3)), depth, units, sparsity, bool(seed % 2),
                     ACTIVATIONS[seed % 4], seed % 3 != 0)
    assert _uses_sparse(buf)  # at >= 60% zeros the bitmap layout is always smaller
    assert_bit_exact(buf, _inputs(rng, shape))


@pytest.mark.parametrize("seed", range(10))
def test_sparse_conv_bit_exact(seed):
    rng = np.random.default_rng(200 + seed)
    k = [(1, 1), (3, 3), (3, 1), (5, 5), (2, 3)][seed % 5]
    groups = 2 if seed == 7 else 1
    cin = int(rng.integers(1, 5)) * 8 + int(rng.integers(0, 8)) if seed % 3 else 16
    cin -= cin % groups
    buf, shape = _conv(rng, hw=(int(rng.integers(1, 8)), int(rng.integers(1, 8))), cin=cin,
                       cout=int(rng.integers(1, 12)) * groups, k=k,
                       stride=[(1, 1), (2, 2), (1, 2)][seed % 3],
                       dilation=(2, 1) if seed == 4 else (1, 1),
                       padding="SAME" if seed % 2 else "VALID",
                       sparsity=[0.7, 0.85, 0.97][seed % 3], activation=ACTIVATIONS[seed % 4],
                       with_bias=seed % 4 != 1, groups=groups)
    assert _uses_sparse(buf)
    assert_bit_exact(buf, _inputs(rng, shape))


def test_dense_layers_stay_dense():
    """Sparse storage is chosen only when it stores fewer bytes: unpruned weights,
    and a single-channel filter (a bitmap byte per weight), stay dense."""
    rng = np.random.default_rng(5)
    buf, _ = _fc(rng, 1, 40, 8, 0.0, True, None, True)
    assert not _uses_sparse(buf)
    buf, shape = _conv(rng, (6, 6), 1, 4, (3, 3), (1, 1), (1, 1), "SAME", 0.8, None, True)
    assert not _uses_sparse(buf)
    assert_bit_exact(buf, _inputs(rng, shape))


def test_encode_layout_and_size():
    w = np.array([[0, 3, 0, 0, 0, 0, 0, 0, 0, -2],
                  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.int8)
    bitmap, values = sparse.encode(w, 1, 10)
    assert bitmap.tolist() == [0b10, 0b10, 0, 0]  # 2 bytes per row, bit i = weight i
    assert values.tolist() == [3, -2]
    assert sparse.sparse_bytes(2, 1, 10, 2) == 6 == bitmap.size + values.size
    assert sparse.pays("FULLY_CONNECTED", w)


def test_compression_summary_reports_sparsity():
    rng = np.random.default_rng(9)
    buf, _ = _fc(rng, 1, 64, 16, 0.9, True, None, True)
    summary = sparse.compression_summary(parse_tflite(buf))
    (layer,) = summary["layers"]
    assert layer["format"] == "bitmap-sparse" and 0.8 < layer["sparsity"] < 1.0
    assert layer["dense_bytes"] == 1024 and layer["stored_bytes"] < 1024 / 4
    dense, _ = _fc(rng, 1, 64, 16, 0.0, True, None, True)
    assert sparse.compression_summary(parse_tflite(dense)) is None
