"""The sparse CONV_2D / FULLY_CONNECTED kernels (offset-sparse, and
--optimize size's gap and bitmap) and the depthwise DSP path on QEMU (an386 = Cortex-M4 with DSP, an385 = Cortex-M3 without), bit for
bit against TFLM, over random sparsities and shapes (forced sparse wherever
the format is smaller, so the kernels are exercised beyond the cost model's
choice)."""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.codegen.ops import depthwise, sparse
from tinycomp.codegen.layer import Layer
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact_on_board, declared_arrays
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_weights)
from tests.unit.test_sparse import (SPARSE_FORMATS, _conv, _fc, _formats_inputs, _formats_model, _inputs,
                                    forced)  # noqa: F401 (a fixture)

BOARDS = ["qemu-mps2-an386", "qemu-mps2-an385"]


@pytest.fixture
def speed_ignored(monkeypatch):
    monkeypatch.setitem(sparse.COST, "dense_mac", {"CONV_2D": 1e9, "FULLY_CONNECTED": 1e9})


def _model(seed):
    """One model with a sparse conv (seed even: padded SAME, 1- or 2-byte
    offsets; odd: VALID, strided, dilated, grouped) feeding nothing else, or a
    sparse fully connected layer."""
    rng = np.random.default_rng(300 + seed)
    sparsity = [0.75, 0.85, 0.95][seed % 3]
    if seed == 4:
        return _fc(rng, 1, int(rng.integers(20, 200)), int(rng.integers(3, 20)), sparsity, True, "RELU", True)
    if seed == 5:
        return _fc(rng, 1, 600, 6, sparsity, False, None, False)  # 2-byte column offsets
    cin = [16, 13, 24, 8][seed % 4]
    groups = 2 if seed == 3 else 1
    hw = {2: (9, 9), 3: (5, 8)}.get(seed) or (int(rng.integers(3, 7)), int(rng.integers(3, 7)))
    return _conv(rng, hw, cin, int(rng.integers(2, 20)) * groups, [(3, 3), (1, 1), (3, 3), (2, 3)][seed % 4],
                 stride=(1, 1) if seed % 2 == 0 else (2, 1), dilation=(1, 2) if seed == 3 else (1, 1),
                 padding="SAME" if seed % 2 == 0 else "VALID", sparsity=sparsity,
                 activation=[None, "RELU6"][seed % 2], with_bias=True, groups=groups)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("seed", range(6))
def test_sparse_kernels_bit_exact_on_qemu(seed, board, speed_ignored):
    buf, shape = _model(seed)
    assert "_values" in generate(parse_tflite(buf)).files["tinycomp_weights.c"]
    assert_bit_exact_on_board(buf, _inputs(np.random.default_rng(seed), shape, n=6), board)


def _depthwise_with_dead_channels():
    """A 3x3 depthwise layer whose channels 2 and 5 are pruned to zero with a
    tiny scale (shift -27 or so): the case that vetoed the DSP path."""
    rng = np.random.default_rng(11)
    b = ModelBuilder()
    s_in, zp_in = random_activation_quant(rng)
    x = b.input((1, 6, 6, 8), s_in, zp_in)
    wq, ws = random_weights(rng, (1, 3, 3, 8), axis=3)
    wq[..., [2, 5]] = 0
    ws = np.asarray(ws, np.float64).copy()
    ws[[2, 5]] = 1e-9
    w = b.const_int8(wq, scales=ws, axis=3)
    bq, bs = random_bias(rng, 8, s_in, ws)
    bias = b.const_int32(bq, scales=bs)
    s_out, zp_out = random_activation_quant(rng, scale_range=(0.01, 1.0))
    b.output(b.depthwise_conv2d(x, w, bias, s_out, zp_out, activation="RELU"))
    return b.build(), (1, 6, 6, 8)


@pytest.mark.parametrize("board", BOARDS)
def test_depthwise_dsp_path_survives_pruned_channels(board):
    buf, shape = _depthwise_with_dead_channels()
    g = parse_tflite(buf)
    (node,) = [n for n in g.nodes if n.op.value == "DEPTHWISE_CONV_2D"]
    ctx = depthwise.depthwise_conv_2d(Layer(g, node))
    assert ctx["dsp"]  # a pruned channel no longer forces the plain kernel
    assert_bit_exact_on_board(buf, _inputs(np.random.default_rng(3), shape[1:], n=6).reshape(6, *shape), board)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_size_formats_bit_exact_on_qemu(fmt, board, forced):
    """tests/unit/test_sparse.py's formats model (int8 and INT4 filters, every
    conv geometry, empty rows, escapes, 2-byte counts, each bias storage)
    with every layer in one format."""
    forced(fmt)
    assert_bit_exact_on_board(_formats_model(), _formats_inputs(), board, "size")


def test_weights_bytes_is_what_the_firmware_stores(tmp_path):
    """--optimize size on the formats model (gap, bitmap and offset-sparse
    layers): the linked tinycomp_w_* symbols (nm) are exactly the arrays
    generate() counts in weights_bytes, byte for byte."""
    from tinycomp.boards import load_board
    from tinycomp.pipeline import build_graph
    from tinycomp.sweep import weight_symbols

    buf = _formats_model()
    graph = parse_tflite(buf, name="formats")
    model = generate(graph, storage="size")
    info = build_graph(graph, buf, tmp_path, "qemu-mps2-an386", optimize="size")
    symbols = weight_symbols(load_board("qemu-mps2-an386"), tmp_path / info["firmware"]["elf"])
    declared = {name: size for name, (_, size) in declared_arrays(model).items()}
    assert symbols == declared
    assert sum(symbols.values()) == model.weights_bytes
    assert {l["format"] for l in info["compression"]["layers"]} >= {sparse.GAP, sparse.BITMAP}
