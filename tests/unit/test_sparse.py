"""Sparse weight storage: offset-sparse FULLY_CONNECTED and CONV_2D kernels are
bit-exact with TFLM over random sparsities and shapes, chosen only when smaller
and not slower (the cost model in ops/sparse.py)."""
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


@pytest.fixture
def speed_ignored(monkeypatch):
    """The kernels' arithmetic is tested wherever sparse storage is smaller:
    the cost model is told dense is very slow, so only size decides."""
    monkeypatch.setitem(sparse.COST, "dense_mac", {"CONV_2D": 1e9, "FULLY_CONNECTED": 1e9})


def _smaller(buf: bytes) -> bool:
    g = parse_tflite(buf)
    est = [sparse.choose(g, n) for n in g.nodes]
    est = [e for e in est if e is not None]
    return bool(est) and all(e["sparse_bytes"] is not None and e["sparse_bytes"] < e["dense_bytes"] for e in est)


def _uses_sparse(buf: bytes) -> bool:
    return "_values" in generate(parse_tflite(buf)).files["tinycomp_weights.c"]


@pytest.mark.parametrize("seed", range(8))
def test_sparse_fully_connected_bit_exact(seed, speed_ignored):
    rng = np.random.default_rng(100 + seed)
    depth, units = int(rng.integers(1, 90)), int(rng.integers(1, 24))
    sparsity = [0.6, 0.8, 0.95, 1.0][seed % 4]
    buf, shape = _fc(rng, int(rng.integers(1, 3)), depth, units, sparsity, bool(seed % 2),
                     ACTIVATIONS[seed % 4], seed % 3 != 0)
    assert _uses_sparse(buf) == _smaller(buf)
    assert_bit_exact(buf, _inputs(rng, shape))


@pytest.mark.parametrize("seed", range(10))
def test_sparse_conv_bit_exact(seed, speed_ignored):
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
    assert _uses_sparse(buf) == _smaller(buf)
    assert_bit_exact(buf, _inputs(rng, shape))


def test_dense_layers_stay_dense():
    """Unpruned weights, and a single-channel filter pruned to 80% (offsets and
    counts cost more than the zeros they skip at this size), stay dense."""
    rng = np.random.default_rng(5)
    buf, _ = _fc(rng, 1, 40, 8, 0.0, True, None, True)
    assert not _uses_sparse(buf)
    buf, shape = _conv(rng, (6, 6), 1, 4, (3, 3), (1, 1), (1, 1), "SAME", 0.8, None, True)
    assert not _uses_sparse(buf)
    assert_bit_exact(buf, _inputs(rng, shape))


@pytest.mark.parametrize("op", ["conv", "fc"])
def test_choice_follows_density(op):
    """The cost model: a barely sparse layer (60% zeros: smaller, but slower
    than the dense DSP kernel) stays dense; a very sparse one (90%) is stored
    sparse; tinycomp.json's compression section says which and why."""
    def build(sparsity):
        rng = np.random.default_rng(7)
        if op == "conv":
            return _conv(rng, (4, 4), 16, 16, (3, 3), (1, 1), (1, 1), "SAME", sparsity, None, True)[0]
        return _fc(rng, 1, 128, 16, sparsity, True, None, True)[0]

    barely, very = build(0.6), build(0.9)
    g = parse_tflite(barely)
    (est,) = [e for e in (sparse.choose(g, n) for n in g.nodes) if e]
    assert est["sparse_bytes"] < est["dense_bytes"]  # size alone would pick sparse
    assert est["format"] == "dense" and "slower" in est["reason"]
    assert not _uses_sparse(barely)
    assert _uses_sparse(very)
    (layer,) = sparse.compression_summary(parse_tflite(very))["layers"]
    assert layer["format"] == sparse.FORMAT and layer["reason"] == "smaller and not slower"
    assert layer["model_instructions"]["sparse"] < layer["model_instructions"]["dense_dsp"]
    (layer,) = sparse.compression_summary(g)["layers"]
    assert layer["format"] == "dense" and layer["stored_bytes"] == layer["dense_bytes"]


def test_encode_layout_and_size():
    w = np.array([[0, 3, 0, 0, 0, 0, 0, 0, 0, -2],
                  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.int8)
    offsets = np.broadcast_to(np.arange(10), w.shape)
    stream = sparse.encode(w, offsets, 1)
    # row 0: count 2, (offset 1, weight 3), (offset 9, weight -2); row 1: count 0
    assert stream.tolist() == [2, 1, 3, 9, 254, 0]
    assert sparse.stream_bytes(2, 2, 1) == 6
    wide = sparse.encode(w, offsets * 300, 2)  # 16-bit little-endian counts and offsets
    assert wide.tolist() == [2, 0, 44, 1, 3, 0x8C, 0x0A, 254, 0, 0]
    assert sparse.stream_bytes(2, 2, 2) == wide.size


def test_compression_summary_reports_sparsity():
    rng = np.random.default_rng(9)
    buf, _ = _fc(rng, 1, 64, 16, 0.9, True, None, True)
    summary = sparse.compression_summary(parse_tflite(buf))
    (layer,) = summary["layers"]
    assert layer["format"] == sparse.FORMAT and 0.8 < layer["sparsity"] < 1.0
    assert layer["dense_bytes"] == 1024 and layer["stored_bytes"] < 1024 / 3
    dense, _ = _fc(rng, 1, 64, 16, 0.0, True, None, True)
    assert sparse.compression_summary(parse_tflite(dense)) is None


def test_storage_aims_follow_the_users_choice():
    """--optimize size stores a layer sparse only when its constants in all take
    fewer bytes (never more than balanced); speed only where the cost model says
    sparse is faster; every aim stays bit-exact."""
    rng = np.random.default_rng(7)
    models = [_conv(rng, (8, 8), 16, 24, (3, 3), 1, 1, "SAME", s, None, True) for s in (0.55, 0.8, 0.97)]
    models += [_fc(rng, 1, 96, 32, s, True, None, True) for s in (0.55, 0.8, 0.97)]
    for buf, shape in models:
        graph = parse_tflite(buf)
        constant_bytes = {aim: generate(graph, storage=aim).weights_bytes for aim in sparse.STORAGE_AIMS}
        assert constant_bytes["size"] <= constant_bytes["balanced"]
        est = sparse.choose(graph, graph.nodes[0], "speed")
        speed_sparse = "_values" in generate(graph, storage="speed").files["tinycomp_weights.c"]
        assert speed_sparse == (est["sparse_bytes"] is not None and est["model_instructions_sparse"]
                                < est["model_instructions_dense"] and est["sparse_bytes"] < est["dense_bytes"])
    buf, shape = models[1]
    from tests.support.harness import compile_for_host
    from tests.support.tflm import run_tflm
    x = _inputs(rng, shape)
    for aim in sparse.STORAGE_AIMS:
        ours = compile_for_host(buf, storage=aim).infer(x)
        assert np.array_equal(ours.reshape(len(x), -1), run_tflm(buf, x).reshape(len(x), -1)), aim
