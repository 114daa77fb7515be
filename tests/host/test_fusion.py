"""CONV_2D + residual ADD fused into one kernel (tinycomp/passes/fuse.py),
bit-exact with TFLM's two separate ops on the host (plain C path).

Random residual blocks: strides, kernel sizes, channel counts (multiples of
4 and not), per-channel or per-tensor weights, activations on the conv and on
the ADD, both ADD operand orders, the skip being the conv's own input, odd
and even pixel counts (the pair kernel's single last pixel), and the cases
that must stay unfused (the conv's output read twice, broadcast ADD).
"""
from __future__ import annotations

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import (ModelBuilder, random_bias, random_int8,
                                          random_weights)

ACTIVATIONS = [None, "RELU", "RELU6", "RELU_N1_TO_1"]


def _quant(rng):
    return float(rng.uniform(0.01, 0.08)), int(rng.integers(-30, 30))


def _conv(b, rng, x, cin, cout, k=3, stride=1, padding="SAME", activation=None, per_channel=True):
    wq, ws = random_weights(rng, (cout, k, k, cin), axis=0 if per_channel else None)
    bq, bs = random_bias(rng, cout, 0.05, ws)
    return b.conv2d(x, b.const_int8(wq, scales=ws, axis=0), b.const_int32(bq, scales=bs),
                    *_quant(rng), stride=stride, padding=padding, activation=activation)


def residual_block(seed: int, skip_is_input: bool = False):
    """input -> stem conv -> [conv (stride s) -> conv] + skip -> 1x1 conv -> output.
    The skip is the stem's output (through a strided 1x1 projection when
    s = 2), or, with skip_is_input, the fused conv's own input."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    cin, c = int(rng.integers(1, 6)), int(rng.choice([1, 3, 4, 5, 6, 8, 12, 16]))
    stride = 1 if skip_is_input else int(rng.integers(1, 3))
    k = int(rng.choice([1, 3])) if not skip_is_input else int(rng.choice([1, 3]))
    act = lambda: ACTIVATIONS[int(rng.integers(len(ACTIVATIONS)))]  # noqa: E731
    b = ModelBuilder()
    x = b.input((1, h, w, cin), 0.05, int(rng.integers(-10, 10)))
    x0 = _conv(b, rng, x, cin, c, k=3, activation=act())
    if skip_is_input:
        y = _conv(b, rng, x0, c, c, k=k, activation=act(), per_channel=bool(rng.integers(2)))
        skip = x0
    else:
        y = _conv(b, rng, x0, c, c, k=3, stride=stride, activation=act())
        y = _conv(b, rng, y, c, c, k=k, activation=act(), per_channel=bool(rng.integers(2)))
        skip = x0 if stride == 1 else _conv(b, rng, x0, c, c, k=1, stride=2)
    pair = (y, skip) if rng.integers(2) else (skip, y)
    z = b.add(*pair, *_quant(rng), activation=act())
    z = _conv(b, rng, z, c, 4, k=1)
    b.output(z)
    return b.build(), (1, h, w, cin)


def _inputs(rng, shape, n=10):
    x = random_int8(rng, (n, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    return x


def fused_ops(model: bytes) -> list[str]:
    return [row["op"] for row in generate(parse_tflite(model)).layers]


@pytest.mark.parametrize("seed", range(16))
def test_fused_residual_block_is_bit_exact(seed):
    model, shape = residual_block(seed)
    assert "CONV_2D+ADD" in fused_ops(model)
    assert_bit_exact(model, _inputs(np.random.default_rng(seed), shape))


@pytest.mark.parametrize("seed", range(4))
def test_skip_is_the_fused_convs_own_input(seed):
    """ADD(conv(x), x): in0 and in1 are one tensor; out keeps clear of both readings."""
    model, shape = residual_block(100 + seed, skip_is_input=True)
    assert "CONV_2D+ADD" in fused_ops(model)
    assert_bit_exact(model, _inputs(np.random.default_rng(seed), shape))


def test_conv_read_twice_is_not_fused():
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 4), 0.05, 0)
    x0 = _conv(b, rng, x, 4, 4)
    y = _conv(b, rng, x0, 4, 4)
    z = b.add(y, x0, *_quant(rng))
    b.output(b.add(z, y, *_quant(rng)))  # y read by both ADDs
    model = b.build()
    assert "CONV_2D+ADD" not in fused_ops(model)  # y and x0 both have two readers
    assert_bit_exact(model, _inputs(rng, (1, 6, 6, 4)))


def test_broadcast_add_is_not_fused():
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.input((1, 5, 5, 4), 0.05, 0)
    y = _conv(b, rng, x, 4, 4)
    z = b.add(y, _conv(b, rng, b.average_pool2d(x, 5), 4, 4, k=1), *_quant(rng))
    b.output(z)
    model = b.build()
    assert "CONV_2D+ADD" not in fused_ops(model)
    assert_bit_exact(model, _inputs(rng, (1, 5, 5, 4)))


def test_manifest_rows_name_both_ops():
    model, _ = residual_block(3)
    rows = generate(parse_tflite(model)).layers
    fused = [r for r in rows if r["op"] == "CONV_2D+ADD"]
    assert len(fused) == 1 and fused[0]["fused"][0]["op"] == "ADD"
    assert not any(r["op"] == "ADD" for r in rows)


def test_inspect_lists_the_fused_layer_once_with_its_own_output(tmp_path):
    from tinycomp.inspect import describe

    model, _ = residual_block(3)
    (tmp_path / "block.tflite").write_bytes(model)
    text = describe(tmp_path / "block.tflite")
    rows = [line.split() for line in text.splitlines() if line[:3].strip().isdigit()]
    assert [r[1] for r in rows].count("CONV_2D+ADD") == 1
    assert len(rows) == len(fused_ops(model))  # one row per function
    graph = parse_tflite(model)
    out_shape = str(list(graph.tensor(graph.outputs[0]).shape)).replace(" ", "")
    last = text.splitlines()[[i for i, l in enumerate(text.splitlines()) if l[:3].strip().isdigit()][-1]]
    assert out_shape in last.replace(", ", ","), last  # each row shows its own layer's output
