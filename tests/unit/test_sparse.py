"""Sparse weight storage: offset-sparse FULLY_CONNECTED and CONV_2D kernels are
bit-exact with TFLM over random sparsities and shapes, chosen only when smaller
and not slower (the cost model in ops/sparse.py)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.codegen.layer import Layer
from tinycomp.codegen.ops import sparse
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact, declared_arrays
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_int4_weights, random_int8, random_weights)

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


# --- --optimize size: the gap and bitmap formats (and offset-sparse) -----------

SPARSE_FORMATS = (sparse.FORMAT, sparse.GAP, sparse.BITMAP)
FORMATS_SHAPE = (1, 7, 6, 12)


def _formats_model(seed: int = 21) -> bytes:
    """One input, one output per layer, int8 and INT4 filters at random
    densities (5-70%): convs with padding, strides, dilation (height: index
    positions and window-row jumps; width: offset positions), groups, 1x1 and
    1xK (no jump), dense layers of 72 columns over 7 rows and of 504 columns
    (2-byte counts and offsets); in every filter an empty row and a row whose
    only nonzero is its last weight (the longest gap: escapes); one filter
    all zeros (no stream in gap / bitmap). Biases: none
    (no array: the kernel folds the input offset in), small, spanning more than
    int16 but less than 2^16 (int16 + a literal base), and cancelling the
    fold (the folded bias is the small one)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng, zero_point_range=(-128, -100))  # a large fold
    x = b.input(FORMATS_SHAPE, s_in, zp_in)
    outs, kinds = [], ["none", "small", "wide", "cancel"]

    def filt(shape, int4, per_channel):
        wq, ws = (random_int4_weights if int4 else random_weights)(rng, shape, axis=0 if per_channel else None)
        wq = np.where(rng.random(shape) < rng.uniform(0.05, 0.7), wq, 0).astype(np.int8)
        rows = wq.reshape(shape[0], -1)
        rows[0] = 0
        rows[1] = 0
        rows[1, -1] = -8 if int4 else 99
        return (b.const_int4 if int4 else b.const_int8)(wq, ws, axis=0), rows, ws

    def bias(rows, ws, kind):
        n = rows.shape[0]
        if kind == "none":
            return None
        q, bs = random_bias(rng, n, s_in, ws)
        if kind == "wide":
            q = rng.integers(20000, 60000, n)
        elif kind == "cancel":
            q = q + zp_in * rows.astype(np.int64).sum(axis=1)  # bias - in_offset * sum(w)
        return b.const_int32(np.asarray(q, np.int32), scales=bs)

    convs = [  # cout, (kh, kw), groups, stride, dilation, padding
        (9, (3, 3), 1, 1, 1, "SAME"), (5, (3, 3), 1, 2, 1, "VALID"), (7, (2, 3), 1, (1, 2), (2, 1), "SAME"),
        (6, (3, 2), 1, 1, (1, 2), "SAME"), (6, (3, 3), 3, 1, 1, "SAME"), (10, (1, 1), 1, (2, 1), 1, "VALID"),
        (4, (1, 3), 1, 1, 1, "SAME")]
    k = 0
    for int4 in (False, True):
        for cout, kernel, groups, stride, dilation, padding in convs:
            w, rows, ws = filt((cout, *kernel, FORMATS_SHAPE[3] // groups), int4, per_channel=k % 3 != 1)
            outs.append(b.conv2d(x, w, bias(rows, ws, kinds[k % 4]), *random_activation_quant(rng, (0.01, 1.0)),
                                 stride=stride, padding=padding, dilation=dilation,
                                 activation=ACTIVATIONS[k % 4]))
            k += 1
        for depth, units in ((72, 11), (504, 6)):  # INT4 FC per-tensor: TFLM refuses per-channel
            w, rows, ws = filt((units, depth), int4, per_channel=not int4 and depth == 72)
            outs.append(b.fully_connected(x, w, bias(rows, ws, kinds[k % 4]),
                                          *random_activation_quant(rng, (0.01, 1.0)), activation=ACTIVATIONS[k % 4]))
            k += 1
    # a conv whose filter is all zeros: no stream in gap / bitmap, each output its bias
    wq, ws = random_weights(rng, (5, 3, 3, FORMATS_SHAPE[3]), axis=0)
    outs.append(b.conv2d(x, b.const_int8(np.zeros_like(wq), ws, axis=0), bias(wq.reshape(5, -1), ws, "small"),
                         *random_activation_quant(rng, (0.01, 1.0))))
    b.output(*outs)
    return b.build()


def _formats_inputs(n: int = 8) -> np.ndarray:
    return _inputs(np.random.default_rng(5), FORMATS_SHAPE, n)


@pytest.fixture
def forced(monkeypatch):
    """force(fmt): every FC / CONV_2D layer stored in fmt (with --optimize
    size's bias choices), whichever is smaller."""
    def force(fmt: str):
        monkeypatch.setattr(sparse, "layer_format", lambda layer: fmt)
    return force


def _layer_bytes(model) -> dict[int, int]:
    """Bytes of each layer's arrays as tinycomp_weights.c declares them."""
    out: dict[int, int] = {}
    for name, (_, size) in declared_arrays(model).items():
        layer = re.match(r"tinycomp_w_l(\d+)_", name)
        if layer:
            out[int(layer[1])] = out.get(int(layer[1]), 0) + size
    return out


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_size_formats_bit_exact(fmt, forced):
    """Every layer of the formats model in one format, on the host."""
    buf = _formats_model()
    forced(fmt)
    text = generate(parse_tflite(buf), storage="size").files["tinycomp_model.c"]
    walks = {sparse.FORMAT: "x[p[", sparse.GAP: "pg[q >> 1]", sparse.BITMAP: "__builtin_ctz(m)"}
    assert [f for f, walk in walks.items() if walk in text] == [fmt]
    assert_bit_exact(buf, _formats_inputs(), "size")


def test_size_bias_choices_are_exercised():
    """The formats model's layers take each bias storage: no array, int16
    with a literal base, the raw bias with the input offset added per read,
    and the folded bias."""
    g = parse_tflite(_formats_model())
    contexts = [sparse._bias(Layer(g, n, storage="size"), g.tensor(n.inputs[1]).data.reshape(
        g.tensor(n.inputs[1]).shape[0], -1), -g.tensor(n.inputs[0]).zero_point, "bias_folded") for n in g.nodes]
    assert any(c["bias"] is None for c in contexts)
    assert any(c["bias"] and c["bias_base"] for c in contexts)
    assert any(c["bias"] and c["x_offset"] for c in contexts)
    assert any(c["bias"] and not c["x_offset"] for c in contexts)


def test_size_aim_picks_the_smallest_format(forced, monkeypatch):
    """Per layer, --optimize size's arrays take as few bytes as the smallest
    of the four formats forced on the whole model, a sparse one charged
    SPARSE_CODE_BYTES for its kernel; weights_bytes is the sum of the arrays
    tinycomp_weights.c declares; the model uses several formats."""
    g = parse_tflite(_formats_model())
    chosen = generate(g, storage="size")
    assert chosen.weights_bytes == sum(_layer_bytes(chosen).values())
    picked = sparse.compression_summary(g, "size")["layers"]
    per_format = {}
    with monkeypatch.context():
        for fmt in sparse.SIZE_FORMATS:
            forced(fmt)
            model = generate(g, storage="size")
            assert model.weights_bytes == sum(_layer_bytes(model).values())
            per_format[fmt] = _layer_bytes(model)
    mine = _layer_bytes(chosen)
    def charged(fmt, i):
        return per_format[fmt][i] + (0 if fmt == "dense" else sparse.SPARSE_CODE_BYTES)

    for layer in picked:
        i = layer["index"]
        best = min(charged(f, i) for f in sparse.SIZE_FORMATS)
        assert charged(layer["format"], i) == best and mine[i] == per_format[layer["format"]][i], layer
    assert {sparse.GAP, sparse.BITMAP} <= {l["format"] for l in picked}


def test_gap_and_bitmap_layout():
    w = np.array([[0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                   0, 0, 0, 0, 0, 0, 0, 0, -2],
                  [0] * 41,
                  [5] + [0] * 40], np.int8)
    pos = np.broadcast_to(np.arange(41), w.shape)
    stream, keys = sparse.encode_gap(w, pos)
    # counts 2, 0, 1; values 3, -2, 5; gaps 2 (code 1), 39 (15, 15, code 8), 1 (code 0), pad 0
    assert keys == {"count_bytes": 1, "values_at": 3, "gaps_at": 6}
    assert stream.tolist() == [2, 0, 1, 3, 254, 5, 0xF1, 0x8F, 0x00]
    stream, keys = sparse.encode_gap(w, pos, int4=True)
    assert stream.tolist() == [2, 0, 1, 0xE3, 0x05, 0xF1, 0x8F, 0x00]  # values 3, -2, 5 as nibbles
    stream, keys = sparse.encode_bitmap(w, pos)
    # 41 positions: 6 bytes a row; bit b of byte k is position 8k + b
    assert keys == {"row_bytes": 6, "values_at": 18}
    assert stream[:18].tolist() == [2, 0, 0, 0, 0, 1] + [0] * 6 + [1, 0, 0, 0, 0, 0]
    assert stream[18:].tolist() == [3, 254, 5]
    many = np.ones((1, 300), np.int8)  # 300 nonzeros: 2-byte counts
    stream, keys = sparse.encode_gap(many, np.arange(300)[None, :])
    assert keys["count_bytes"] == 2 and stream[:2].tolist() == [44, 1]
