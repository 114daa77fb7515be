"""TRANSPOSE_CONV int8 on the host, bit-exact with TFLM: seeded random
shapes, strides, paddings, per-tensor and per-channel weights, with and
without bias, fused activations, input zero points at both ends; many layers
in one build."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.harness import assert_bit_exact, extreme_samples
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_bias, random_weights
from tinycomp.errors import ModelError
from tinycomp.frontends.tflite import parse_tflite

LAYERS = 12


def transpose_conv_model(seed: int, layers: int = LAYERS) -> bytes:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    for k in range(layers):
        n = int(rng.integers(1, 3))
        ih, iw, cin = (int(v) for v in rng.integers(1, 6, 3))
        cout = int(rng.integers(1, 6))
        kh, kw = (int(v) for v in rng.integers(1, 5, 2))
        sh, sw = (int(v) for v in rng.integers(1, 4, 2))
        padding = ["SAME", "VALID"][k % 2]
        if padding == "SAME":
            oh, ow = ih * sh, iw * sw
        else:
            oh, ow = (ih - 1) * sh + kh, (iw - 1) * sw + kw
        zp = [-128, 127][k % 2] if k % 5 == 4 else None
        s_in, z_in = random_activation_quant(rng, (0.01, 0.2))
        x = b.input((n, ih, iw, cin), s_in, z_in if zp is None else zp)
        axis = None if k % 3 == 0 else 0
        w, ws = random_weights(rng, (cout, kh, kw, cin), axis=axis)
        bias = None
        if k % 4 != 3:
            bq, bs = random_bias(rng, cout, s_in, ws)
            bias = b.const_int32(bq, bs)
        # output scale near the accumulators' spread: some values saturate
        spread = 60 * float(np.max(ws)) * s_in * 64 * np.sqrt(kh * kw * cin)
        s_out = float(spread * rng.uniform(0.005, 0.03))
        y = b.transpose_conv(x, b.const_int8(w, ws, axis=0), bias, (n, oh, ow, cout), s_out,
                             int(rng.integers(-40, 41)), stride=(sh, sw), padding=padding,
                             activation=[None, "RELU", "RELU6", None][k % 4])
        b.output(y)
    return b.build()


@pytest.mark.parametrize("seed", range(3))
def test_transpose_conv_bit_exact(seed):
    buf = transpose_conv_model(seed)
    assert_bit_exact(buf, extreme_samples(buf, seed, 6))


def test_output_shape_tensor_must_match():
    b = ModelBuilder()
    x = b.input((1, 3, 3, 2), 0.1, 0)
    w, ws = random_weights(np.random.default_rng(0), (4, 3, 3, 2))
    y = b.transpose_conv(x, b.const_int8(w, ws, axis=0), None, (1, 6, 6, 4), 0.2, 0, stride=2)
    shape_t = b._operators[-1].inputs[0]  # the output shape operand says 6x5, the tensor 6x6
    b._buffers[b._tensor_ts[shape_t].buffer].data = np.frombuffer(np.array([1, 6, 5, 4], np.int32).tobytes(),
                                                            np.uint8)
    b.output(y)
    with pytest.raises(ModelError, match="output shape tensor"):
        parse_tflite(b.build())
