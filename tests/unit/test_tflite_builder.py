"""Every op the builder supports builds, loads and runs in TFLM."""

import numpy as np
import pytest

from tests.support.tflite_builder import (
    FIXED_OUTPUT_QUANT, ModelBuilder, conv2d_output_shape, conv_output_size,
    quant_params_for_range, random_activation_quant, random_bias, random_int8,
    random_weights, same_padding)
from tests.support.tflm import run_tflm, run_tflm_all

N = 20


def _run(b, *ins):
    return run_tflm(b.build(), list(ins) if len(ins) > 1 else ins[0])


def _x(rng, shape):
    return random_int8(rng, (N,) + tuple(shape))


def test_shape_helpers():
    assert conv_output_size(8, 3, 2, "SAME") == 4
    assert conv_output_size(8, 3, 2, "VALID") == 3
    assert conv_output_size(9, 3, 1, "VALID", dilation=2) == 5
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(7, 3, 1) == (1, 1)
    assert conv2d_output_shape((1, 8, 8, 3), (3, 3), 5, 2, "SAME") == (1, 4, 4, 5)
    s, z = quant_params_for_range(-1.0, 3.0)
    assert abs(s - 4 / 255) < 1e-9 and -128 <= z <= 127


@pytest.mark.parametrize("padding,stride,dilation,act", [
    ("SAME", 2, 1, "RELU"), ("VALID", 1, 2, None), ("SAME", (1, 2), 1, "RELU6")])
def test_conv2d(padding, stride, dilation, act):
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    sx, zx = random_activation_quant(rng)
    x = b.input((1, 9, 8, 3), sx, zx)
    wq, ws = random_weights(rng, (5, 3, 3, 3), axis=0)
    bq, bs = random_bias(rng, 5, sx, ws)
    y = b.conv2d(x, b.const_int8(wq, ws, axis=0), b.const_int32(bq, bs),
                 0.05, 3, stride=stride, padding=padding, activation=act,
                 dilation=dilation)
    b.output(y)
    out = _run(b, _x(rng, (1, 9, 8, 3)))
    assert out.shape == (N,) + b.info(y).shape
    if act is not None:
        assert out.min() >= 3


@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_conv2d(mult):
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.input((1, 8, 8, 4), 0.02, -5)
    wq, ws = random_weights(rng, (1, 3, 3, 4 * mult), axis=3)
    bq, bs = random_bias(rng, 4 * mult, 0.02, ws)
    y = b.depthwise_conv2d(x, b.const_int8(wq, ws, axis=3), b.const_int32(bq, bs),
                           0.03, 0, stride=2, padding="SAME", depth_multiplier=mult)
    b.output(y)
    out = _run(b, _x(rng, (1, 8, 8, 4)))
    assert out.shape == (N, 1, 4, 4, 4 * mult)


@pytest.mark.parametrize("per_channel,keep", [(True, False), (False, False), (True, True)])
def test_fully_connected(per_channel, keep):
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.input((1, 2, 16), 0.05, 10)
    wq, ws = random_weights(rng, (7, 16), axis=0 if per_channel else None)
    bq, bs = random_bias(rng, 7, 0.05, ws)
    y = b.fully_connected(x, b.const_int8(wq, ws, axis=0), b.const_int32(bq, bs),
                          0.1, -2, keep_num_dims=keep)
    b.output(y)
    out = _run(b, _x(rng, (1, 2, 16)))
    assert out.shape == (N,) + ((1, 2, 7) if keep else (2, 7))


@pytest.mark.parametrize("name", ["add", "mul"])
@pytest.mark.parametrize("broadcast", [False, True])
def test_binary(name, broadcast):
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x1 = b.input((1, 4, 4, 3), 0.05, -3)
    shape2 = (1, 1, 1, 3) if broadcast else (1, 4, 4, 3)
    x2 = b.input(shape2, 0.07, 5)
    y = getattr(b, name)(x1, x2, 0.1, 1, activation="RELU")
    b.output(y)
    out = _run(b, _x(rng, (1, 4, 4, 3)), _x(rng, shape2))
    assert out.shape == (N, 1, 4, 4, 3)
    assert out.min() >= 1


def test_pools():
    rng = np.random.default_rng(5)
    for name in ["average_pool2d", "max_pool2d"]:
        for padding in ["SAME", "VALID"]:
            b = ModelBuilder()
            x = b.input((1, 7, 7, 2), 0.05, -3)
            y = getattr(b, name)(x, 3, stride=2, padding=padding)
            b.output(y)
            assert b.info(y).scale == b.info(x).scale
            out = _run(b, _x(rng, (1, 7, 7, 2)))
            assert out.shape == (N,) + b.info(y).shape
            const = np.full((N, 1, 7, 7, 2), 42, np.int8)
            assert (_run(b, const) == 42).all()


@pytest.mark.parametrize("shape,axis,keep", [
    ((1, 5, 6, 4), [1, 2], True), ((1, 5, 6, 4), [1, 2], False),
    ((1, 5, 6, 4), [3], True), ((1, 8, 3), [1], False)])
def test_mean(shape, axis, keep):
    rng = np.random.default_rng(6)
    b = ModelBuilder()
    x = b.input(shape, 0.05, -3)
    y = b.mean(x, axis, keep_dims=keep, scale=0.04, zero_point=2)
    b.output(y)
    out = _run(b, _x(rng, shape))
    assert out.shape == (N,) + b.info(y).shape
    same = ModelBuilder()
    x = same.input(shape, 0.05, -3)
    same.output(same.mean(x, axis, keep_dims=keep))
    const = np.full((N,) + shape, -7, np.int8)
    assert (_run(same, const) == -7).all()


def test_shape_ops():
    rng = np.random.default_rng(7)
    b = ModelBuilder()
    x = b.input((1, 4, 4, 2), 0.05, -3)
    r = b.reshape(x, (1, 32))
    e = b.expand_dims(r, 1)            # (1, 1, 32)
    s = b.squeeze(e, [1])              # (1, 32)
    b.output(s)
    data = _x(rng, (1, 4, 4, 2))
    out = _run(b, data)
    assert out.shape == (N, 1, 32)
    assert (out == data.reshape(N, 1, 32)).all()


def test_concatenation_and_pad():
    rng = np.random.default_rng(8)
    b = ModelBuilder()
    x1 = b.input((1, 3, 3, 2), 0.05, -3)
    x2 = b.input((1, 3, 3, 5), 0.05, -3)
    c = b.concatenation([x1, x2], axis=-1)
    p = b.pad(c, [[0, 0], [1, 2], [0, 1], [0, 0]])
    b.output(p)
    a1, a2 = _x(rng, (1, 3, 3, 2)), _x(rng, (1, 3, 3, 5))
    out = _run(b, a1, a2)
    assert out.shape == (N, 1, 6, 4, 7)
    assert (out[:, :, 1:4, 0:3, :2] == a1).all()
    assert (out[:, :, 0] == -3).all()  # pad value is the zero point


@pytest.mark.parametrize("name", ["softmax", "logistic", "tanh", "relu", "relu6",
                                  "hard_swish"])
def test_activations(name):
    rng = np.random.default_rng(9)
    b = ModelBuilder()
    x = b.input((1, 4, 10), 0.1, -4)
    if name in ("relu", "relu6", "hard_swish"):
        y = getattr(b, name)(x, scale=0.05, zero_point=-20)
    else:
        y = getattr(b, name)(x)
        assert (b.info(y).scale, b.info(y).zero_point) == FIXED_OUTPUT_QUANT[name.upper()]
    b.output(y)
    out = _run(b, _x(rng, (1, 4, 10)))
    assert out.shape == (N, 1, 4, 10)
    if name in ("relu", "relu6"):
        assert out.min() >= -20
    if name == "softmax":
        probs = (out.astype(np.float64) + 128) / 256
        assert np.allclose(probs.sum(-1), 1.0, atol=0.05)


def test_quantize_requant():
    rng = np.random.default_rng(10)
    b = ModelBuilder()
    x = b.input((1, 16), 0.05, -3)
    y = b.quantize(x, 0.1, 4)
    b.output(y)
    data = _x(rng, (1, 16))
    out = _run(b, data)
    want = np.clip(np.round((data.astype(float) + 3) * 0.5) + 4, -128, 127)
    assert np.abs(out - want).max() <= 1


def test_chain_and_intermediates():
    rng = np.random.default_rng(11)
    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), 0.05, -3)
    wq, ws = random_weights(rng, (4, 3, 3, 3), axis=0)
    bq, bs = random_bias(rng, 4, 0.05, ws)
    c = b.conv2d(x, b.const_int8(wq, ws), b.const_int32(bq, bs), 0.05, -10,
                 activation="RELU")
    p = b.max_pool2d(c, 2)
    r = b.reshape(p, (1, 64))
    wq2, ws2 = random_weights(rng, (10, 64), axis=0)
    bq2, bs2 = random_bias(rng, 10, 0.05, ws2)
    f = b.fully_connected(r, b.const_int8(wq2, ws2), b.const_int32(bq2, bs2), 0.1, 0)
    s = b.softmax(f)
    b.output(s)
    buf = b.build()
    data = _x(rng, (1, 8, 8, 3))
    out = run_tflm(buf, data)
    allt = run_tflm_all(buf, data)
    assert set(allt) == {x, c, p, r, f, s}
    assert (allt[s] == out).all()
    assert allt[c].shape == (N, 1, 8, 8, 4) and allt[c].min() >= -10
    assert (allt[p] == allt[c].reshape(N, 1, 4, 2, 4, 2, 4).max(axis=(3, 5))).all()


def test_multi_output():
    rng = np.random.default_rng(12)
    b = ModelBuilder()
    x = b.input((1, 6), 0.05, -3)
    b.output(b.relu(x), b.logistic(x))
    out = run_tflm(b.build(), _x(rng, (1, 6)))
    assert isinstance(out, list) and [o.shape for o in out] == [(N, 1, 6)] * 2
