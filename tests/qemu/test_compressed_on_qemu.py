"""A magnitude-pruned digits CNN on QEMU: bit-exact with TFLM, and its
offset-sparse weights make the linked image smaller than the dense build.

The pruned model is the project's INT8 digits CNN with the smallest 80% of
each FULLY_CONNECTED / CONV_2D filter's weights set to int8 zero: what
magnitude pruning leaves after conversion, without TensorFlow in the test.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.codegen.ops import sparse
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph
from tests.support.harness import assert_bit_exact_on_board
from tests.support.models import digits_model
from tests.support.pruning import pruned_tflite


def _weight_arrays(build_dir, info) -> int:
    """Bytes of the weight arrays (dense weights, sparse offset/value streams) in
    the linked firmware, from nm; biases and requantization constants excluded."""
    from tinycomp.boards import load_board
    from tinycomp.sweep import weight_symbols

    symbols = weight_symbols(load_board(info["board"]), build_dir / info["firmware"]["elf"])
    return sum(v for k, v in symbols.items() if k.endswith(("_weights", "_bitmap", "_values")))


@pytest.fixture(scope="module")
def pruned():
    return pruned_tflite(digits_model().tflite)


@pytest.mark.parametrize("storage", ["balanced", "size"])
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-mps2-an385"])
def test_pruned_digits_bit_exact_on_qemu(pruned, board, storage):
    """Balanced: offset-sparse where it pays. Size: bitmap and gap layers,
    unfolded int16 biases, and the 1x1 bitmap conv writing over its input
    (its declared lag), in a real chain of layers."""
    d = digits_model()
    graph = parse_tflite(pruned)
    t = graph.tensors[graph.inputs[0]]
    x = np.clip(np.round(d.x_test[:40] / t.scale) + t.zero_point, -128, 127).astype(np.int8)
    if storage == "size":
        model = generate(graph, storage="size")
        assert model.plan.overlapped
        assert {sparse.GAP, sparse.BITMAP} <= {l["format"] for l in sparse.compression_summary(graph, "size")["layers"]}
    out = assert_bit_exact_on_board(pruned, x.reshape(40, 1, 8, 8, 1), board, storage)
    assert out.shape == (40, 10)


def test_sparse_build_is_smaller_by_the_linker(pruned, tmp_path, monkeypatch):
    graph = parse_tflite(pruned, name="pruned")
    sparse_info = build_graph(graph, pruned, tmp_path / "sparse", "qemu")
    with monkeypatch.context() as m:
        m.setattr(sparse, "pays", lambda layer: False)  # the same model stored dense
        dense_info = build_graph(graph, pruned, tmp_path / "dense", "qemu")
    saved = _weight_arrays(tmp_path / "dense", dense_info) - _weight_arrays(tmp_path / "sparse", sparse_info)
    comp = sparse_info["compression"]
    expected = comp["int8_dense_weight_bytes"] - comp["stored_weight_bytes"]
    # nm-measured weight symbols shrink by at least what tinycomp.json says the
    # format saves over plain int8 (dense kernels may also pad rows to words)
    assert saved >= expected - 16 and saved > 0.4 * comp["int8_dense_weight_bytes"]
    assert sparse_info["flash_bytes"] < dense_info["flash_bytes"] - 0.4 * comp["int8_dense_weight_bytes"]
    assert json.loads((tmp_path / "sparse" / "tinycomp.json").read_text())["compression"]["sparsity"] > 0.5
    assert "compression" in sparse_info and any(l["format"] == sparse.FORMAT for l in comp["layers"])
