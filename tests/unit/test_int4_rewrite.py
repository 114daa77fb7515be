"""compress/int4.py: an INT8 .tflite's filters rewritten as packed INT4, without
TensorFlow: QAT's 16-level grids recovered exactly, other weights rounded,
biases rescaled; the result is what TFLM and tinycomp read as INT4, and
tinycomp's build of it equals TFLM."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights
from tinycomp.compress.int4 import grid_values, to_int4
from tinycomp.errors import ModelError
from tinycomp.frontends.tflite import parse_tflite


def _on_grid(rng, shape, axis):
    """int8 weights as the converter writes 16-level QAT weights: k in -8..7
    per channel, scaled so the largest |k| is 127."""
    k = rng.integers(-8, 8, shape)
    moved = np.moveaxis(k, axis, 0).reshape(shape[axis], -1)
    top = np.abs(moved).max(axis=1, keepdims=True).clip(1)
    q = np.round(moved * 127 / top).reshape(np.moveaxis(k, axis, 0).shape)
    return np.moveaxis(q, 0, axis).astype(np.int8), k


def _model(rng, grid: bool):
    b = ModelBuilder()
    x = b.input((1, 5, 5, 4), 0.05, -3)
    outs, ks = [], []
    for op, shape, axis in (("conv", (6, 3, 3, 4), 0), ("dw", (1, 3, 3, 4), 3)):
        q, k = _on_grid(rng, shape, axis) if grid else (random_weights(rng, shape, axis)[0], None)
        ws = rng.uniform(0.001, 0.02, shape[axis]).astype(np.float32)
        bq, bs = random_bias(rng, shape[axis], 0.05, ws)
        w, bias = b.const_int8(q, ws, axis=axis), b.const_int32(bq, scales=bs)
        y = (b.conv2d(x, w, bias, 0.1, 2) if op == "conv" else b.depthwise_conv2d(x, w, bias, 0.1, 2))
        outs.append(y)
        ks.append(k)
    q, k = _on_grid(rng, (5, 100), 0) if grid else (random_weights(rng, (5, 100), None)[0], None)
    q = q if not grid else np.round(k * 127 / max(np.abs(k).max(), 1)).astype(np.int8)  # one grid: per tensor
    ws = np.float32(0.01)
    bq, bs = random_bias(rng, 5, 0.05, ws)
    outs.append(b.fully_connected(x, b.const_int8(q, ws), b.const_int32(bq, scales=bs), 0.2, 0))
    ks.append(k)
    b.output(*outs)
    return b.build(), ks


def test_grid_recovered_exactly_and_bit_exact():
    rng = np.random.default_rng(0)
    buf, ks = _model(rng, grid=True)
    out, done = to_int4(buf)
    assert len(done) == 3 and all(exact for _, exact in done)
    graph = parse_tflite(out)
    filters = [graph.tensor(n.inputs[1]) for n in graph.nodes]
    assert [f.dtype for f in filters] == ["int4"] * 3
    for f, k in zip(filters[:2], ks[:2]):
        assert np.array_equal(f.data, k)
    x = rng.integers(-128, 128, (8, 1, 5, 5, 4), dtype=np.int8)
    assert_bit_exact(out, x)


def test_off_grid_weights_rounded_to_16_levels():
    rng = np.random.default_rng(1)
    buf, _ = _model(rng, grid=False)
    out, done = to_int4(buf, ["t6"])  # the depthwise layer only
    assert done == [("t6", False)]
    graph = parse_tflite(out)
    kinds = {n.op.value: graph.tensor(n.inputs[1]).dtype for n in graph.nodes}
    assert kinds == {"CONV_2D": "int8", "DEPTHWISE_CONV_2D": "int4", "FULLY_CONNECTED": "int8"}
    x = rng.integers(-128, 128, (8, 1, 5, 5, 4), dtype=np.int8)
    assert_bit_exact(out, x)


def test_grid_values():
    assert grid_values(np.array([-127, 111, 0, 16], np.int8))[1] == 8  # -8 .. 7 scaled by 127/8
    assert grid_values(np.array([-127, 127, 18, 0], np.int8))[1] == 7
    assert grid_values(np.array([-127, 5, 100], np.int8)) is None


def test_per_channel_fc_and_unknown_layer_refused():
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.input((1, 8), 0.05, 0)
    q, ws = random_weights(rng, (3, 8), 0)
    b.output(b.fully_connected(x, b.const_int8(q, ws, axis=0), None, 0.1, 0))
    with pytest.raises(ModelError, match="only per tensor"):
        to_int4(b.build(), ["t2"])
    assert to_int4(b.build())[1] == []  # all layers: the per-channel FC is left int8
    buf, _ = _model(rng, grid=True)
    with pytest.raises(ModelError, match="named 'nope'"):
        to_int4(buf, ["nope"])


def test_report_names_int4_layers_and_rounding():
    """What `compress --weight-bits 4` reports (steps.py fills int4_layers)."""
    from tinycomp.compress.report import Report

    r = Report("m")
    r.int4_layers, r.int8_accuracy = [("conv", True), ("dense", False)], 0.5
    text = r.markdown()
    assert "INT4 weights (TFLite's packed INT4, int8 activations) in 2 layers: `conv`, `dense` (rounded from int8)" \
        in text
    assert "INT8 activations, INT4 weights (converted) test accuracy: 50.00%" in text


def test_layers_to_int4_by_model_order():
    """Keras names map to the conv/depthwise/FC ops in order (the converter's
    tensor names are not Keras's); only the chosen layers become INT4."""
    from tinycomp.compress.int4 import layers_to_int4, weighted_ops

    rng = np.random.default_rng(3)
    buf, _ = _model(rng, grid=True)
    out, done = layers_to_int4(buf, ["conv", "dw", "fc"], ["fc", "conv"])
    assert done == [("conv", True), ("fc", True)]  # in model order
    assert [kind for _, kind in weighted_ops(out)] == [17, 9, 17]  # INT4, INT8, INT4
    again, done = layers_to_int4(out, ["conv", "dw", "fc"], ["conv"])  # already INT4: left as it is
    assert again == out and done == [("conv", True)]
    x = rng.integers(-128, 128, (8, 1, 5, 5, 4), dtype=np.int8)
    assert_bit_exact(out, x)
    with pytest.raises(ModelError, match="3 conv/dense ops for 2 conv/dense layers"):
        layers_to_int4(buf, ["conv", "dw"], ["conv"])
