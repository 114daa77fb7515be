"""The blocked CONV_2D / FULLY_CONNECTED kernel's DSP variants
(conv_2d_gemm.c.j2) and the shared 3x3 depthwise kernel's border handling,
bit-exact with TFLM on QEMU.

For a target with DSP the context spends scratch on int16 copies: the rows
of each pixel pair (expand, word_q15) and, where they fit WEXP_BYTES and
enough pixel pairs reuse them, the weights (expand_weights); the output
offset rides in SMMLAR's rounding term (tc_requant_off) where the shifts
allow. The same C generated for a core without DSP (no scratch) and compiled
for the M4 takes the in-loop unpacking (word_dsp) and the depthwise border
pixels through tc_dw3_edge. One multi-output model covers every variant and
remainder: odd pixel counts (a lone last pixel), odd channel counts (a lone
last channel), rows of whole-unrolled and 4-unrolled lengths with and
without a remainder, unpacked and packed weights, a one-pixel layer, FC rows
with a partial word, and a requantization shift beyond SMMLAR's range.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinycomp.codegen.generate as gen
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.host.test_conv import _weights_and_bias
from tests.qemu.test_kernels_dsp_dw_add import _dw_chain_model
from tests.unit.test_codegen_dedup import _chain
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

pytestmark = pytest.mark.qemu

DSP = frozenset({"dsp"})


def _conv(b, rng, x, cout, k, stride=1, padding="SAME", per_channel=True, activation=None,
          scale=None):
    s_in = b.tensors[x].scale
    cin = b.tensors[x].shape[3]
    w, bias = _weights_and_bias(b, rng, s_in, (cout, *k, cin), 0, per_channel, True)
    s, z = random_activation_quant(rng, scale_range=(0.01, 1.0))
    return b.conv2d(x, w, bias, scale or s, z, stride=stride, padding=padding, activation=activation)


def _gemm_model(seed=0):
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    shape = (1, 7, 6, 8)
    x = b.input(shape, *random_activation_quant(rng))
    # 42 pixels, 1x1 in place, 13 channels (6 pairs + 1), rows of 2 words
    y1 = _conv(b, rng, x, 13, (1, 1), activation="RELU")
    # windows copied per pixel (13 input channels), rows of 30 words (4-unrolled,
    # remainder 2), per-tensor (literal) requantization
    y2 = _conv(b, rng, y1, 24, (3, 3), per_channel=False)
    # shared pair windows, weights too large to unpack (40 x 54 words)
    y3 = _conv(b, rng, y2, 40, (3, 3), activation="RELU6")
    # stride 2: 12 pixels, 7 channels, rows of 90 words, weights unpacked
    y4 = _conv(b, rng, y3, 7, (3, 3), stride=2)
    # a single pixel (no pair at all), rows of 16 words
    y5 = _conv(b, rng, y4, 5, (3, 3), stride=2, padding="VALID")
    # 21 pixels (10 pairs and a lone one) through copied 1x1 windows, and a
    # multiplier far below 2^-21: the bounded requantization without SMMLAR
    y6 = _conv(b, rng, x, 3, (1, 1), stride=(1, 2), padding="VALID", scale=3e4)
    # FC rows of 21 bytes (copied, a partial word) over y4's 84 values: 4 rows
    wq = rng.integers(-127, 128, size=(9, 21)).astype(np.int8)
    w = b.const_int8(wq, scales=[0.02])
    y7 = b.fully_connected(y4, w, None, 0.3, 5)
    b.output(y1, y2, y3, y4, y5, y6, y7)
    return b.build(), shape, rng


def _inputs(rng, shape, n=6):
    x = random_int8(rng, (n, *shape))
    x[0].fill(-128)
    x[1].fill(127)
    return x


def _code(model, features, storage="balanced"):
    return generate(parse_tflite(model), storage=storage, features=features).files["tinycomp_model.c"]


def test_gemm_int16_rows_and_weights_on_m4():
    """--optimize speed unpacks every layer's weights that fit; balanced only
    where the arena has room for them already (never a larger arena)."""
    model, shape, rng = _gemm_model()
    graph = parse_tflite(model)
    speed = generate(graph, storage="speed", features=DSP)
    code = speed.files["tinycomp_model.c"]
    assert code.count("weights unpacked once per inference") == 4  # y1, y2, y4, y6
    # every layer once, y6 twice (its pairs and its last pixel)
    assert code.count("rows unpacked per pixel pair") == 8
    assert "tc_requant_off(a" in code and "tc_requant_bounded(a" in code  # y6
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu", storage="speed")
    balanced = generate(graph, features=DSP)
    assert 0 < balanced.files["tinycomp_model.c"].count("weights unpacked once per inference") < 4
    assert balanced.arena_bytes < speed.arena_bytes
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu")


def test_gemm_without_scratch_on_m4():
    """C generated for a core without DSP, compiled and run on the M4."""
    model, shape, rng = _gemm_model()
    code = _code(model, frozenset())
    assert "rows unpacked per pixel pair" not in code and "weights unpacked once" not in code
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu", features=frozenset())


def test_gemm_plain_on_m3():
    model, shape, rng = _gemm_model()
    assert_bit_exact_on_board(model, _inputs(rng, shape), "qemu-mps2-an385")


@pytest.mark.parametrize("name", ["kws_like", "mobilenet_like", "tiny_spatial"])
def test_depthwise_3x3_border_pixels_without_scratch_on_m4(name):
    """The shared 3x3 kernel's border: bands in scratch for a DSP target
    (tests/qemu/test_kernels_dsp_dw_add.py), per-pixel edge taps when the
    C was generated for a core without DSP."""
    model, shape, rng = _dw_chain_model(name, 20)
    assert "tc_dw3_band_" in _code(model, DSP)
    code = _code(model, frozenset())
    assert "tc_dw3_edge_" in code and "tc_dw3_band_" not in code
    x = random_int8(rng, (6, *shape))
    x[0].fill(-128)
    assert_bit_exact_on_board(model, x, "qemu", features=frozenset())


def _pairs_model(seed=1):
    """Paired rows (conv.py: pack_pairs) and the rows they refuse, side by
    side: a 1x1 conv and an FC that pair; a conv with a -128 weight and an FC
    of long all-127 rows (s's sum could reach 2^23) that do not; a 1x1 conv
    whose odd channels have ~2^30 biases (paired, the bias added late); one
    whose even channels' biases are near -2^31 (paired; the plain path
    decodes the weights, A could leave int32)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    shape = (1, 6, 8, 12)
    x = b.input(shape, *random_activation_quant(rng))
    y1 = _conv(b, rng, x, 10, (1, 1), activation="RELU")
    wq = rng.integers(-127, 128, size=(6, 3, 3, 12)).astype(np.int8)
    wq[3, 1, 1, 4] = -128
    w = b.const_int8(wq, scales=list(rng.uniform(0.002, 0.02, 6)), axis=0)
    y2 = b.conv2d(x, w, None, 0.5, -3)
    flat = b.reshape(x, (1, 576))
    y3 = b.fully_connected(flat, b.const_int8(rng.integers(-127, 128, size=(8, 576)).astype(np.int8),
                                             scales=[0.002]), None, 0.4, 2)
    y4 = b.fully_connected(flat, b.const_int8(np.full((4, 576), 127, np.int8) * np.array([[1], [-1], [1], [1]],
                                                                                         np.int8),
                                             scales=[0.0005]), None, 2.0, 0)
    # odd channels with ~2^30 biases (a pruned channel's): paired, bias added late
    wq = rng.integers(-127, 128, size=(6, 1, 1, 12)).astype(np.int8)
    ws = list(rng.uniform(0.002, 0.02, 6))
    w = b.const_int8(wq, scales=ws, axis=0)
    s_in = b.tensors[x].scale
    bq = np.where(np.arange(6) % 2, -(1 << 30) + 7, rng.integers(-3000, 3000, 6)).astype(np.int32)
    bias = b.const_int32(bq, scales=[s_in * v for v in ws])
    y5 = b.conv2d(x, w, bias, 0.05, 4)
    # even channels' biases near -2^31: A = r + 256 s could leave int32, so
    # the plain path decodes each weight (pair_decode) instead of summing A
    wq = rng.integers(-127, 128, size=(4, 1, 1, 12)).astype(np.int8)
    ws = list(rng.uniform(0.002, 0.02, 4))
    bq = np.where(np.arange(4) % 2, rng.integers(-3000, 3000, 4), -(1 << 31) + (1 << 20)).astype(np.int32)
    y6 = b.conv2d(x, b.const_int8(wq, scales=ws, axis=0), b.const_int32(bq, scales=[s_in * v for v in ws]),
                  0.05, 4)
    b.output(y1, y2, y3, y4, y5, y6)
    return b.build(), shape, rng


@pytest.mark.parametrize("board,features", [("qemu", DSP), ("qemu", frozenset()), ("qemu-mps2-an385", None)])
def test_gemm_paired_rows(board, features, monkeypatch):
    """Paired and refused rows bit-exact with int16 rows in scratch (M4),
    unpacked in the loop (C for a core without DSP on the M4) and on the M3's
    plain path. No RAM grants: a layer granted unpacked weights is unpaired."""
    monkeypatch.setattr(gen, "_spend_spare_ram", lambda *args: None)
    model, shape, rng = _pairs_model()
    code = _code(model, features or frozenset())
    bodies = code.split("static TC_LAYER_FN void ")[1:]
    paired = ["paired rows: the odd channels' sums" in body for body in bodies]
    assert paired == [True, False, True, False, True, True]  # y1 ... y6 (the RESHAPE is an alias)
    assert "+ k_bias_folded[c + 1];" in bodies[4]  # y5's late bias
    decoded = ["(int32_t)((uint32_t)r >> 31)" in body for body in bodies]
    assert decoded == [False] * 5 + [True]  # y6's plain path
    kwargs = {} if features is None else {"features": features}
    assert_bit_exact_on_board(model, _inputs(rng, shape), board, **kwargs)


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_shared_per_tensor_requant(board):
    """Same-shape per-tensor FC layers sharing one function, their
    multiplier and shift read from arrays (generate._share_requant)."""
    rng = np.random.default_rng(11)
    model, shape = _chain(rng, "fc", per_channel=False)
    assert _code(model, DSP).count("static TC_LAYER_FN void ") == 1
    assert_bit_exact_on_board(model, _inputs(rng, (1, 24)), board)
