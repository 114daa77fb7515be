"""The blocked convolution's int16 unpacking on borrowed arena bytes
(conv.py: borrow_ram, generate._borrow_ram), bit-exact with TFLM on QEMU.

A balanced DSP build whose arena has no byte to spare for a layer's
unpacked rows and weights puts them where nothing lives while the layer
runs: the tail of its output (written in pixel order, so its last bytes hold
nothing until the last pairs; those pairs unpack in the loop) or the head of
an input that dies with the layer (read in pixel order: once the windows
have passed its first bytes, those hold nothing; the first pairs unpack in
the loop). The RAM grants are switched off here so that every blocked
convolution takes that path; one multi-output model covers 3x3 and 1x1
windows, stride 2, SAME and VALID padding, odd pixel counts (a lone last
pixel), channel counts that are not a multiple of the block (a lone last
channel), the residual ADD fused, and each layout (rows only, rows and
weights) on both sides. The replay test checks the phases against the
kernel's write and read order pixel by pixel.
"""
from __future__ import annotations

import numpy as np
import pytest

import tinycomp.codegen.generate as gen
import tinycomp.codegen.ops.conv as conv
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.passes.memory import busy_at, lifetimes, read_floor
from tests.host.test_fusion import _conv, _quant
from tests.qemu.test_kernels_dsp_gemm_paths import _inputs
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder, random_int8

pytestmark = pytest.mark.qemu

DSP = frozenset({"dsp"})


def _model(seed=3):
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    shape = (1, 11, 9, 16)  # 99 pixels: 49 pairs and a lone one
    x = b.input(shape, *_quant(rng))
    s = _conv(b, rng, x, 16, 16, k=1, activation="RELU")
    # IC's block: a conv whose output may not cover the live s (tail), then
    # one whose input dies with it, with s added in place (head)
    a1 = _conv(b, rng, s, 16, 16, k=3)
    a2 = _conv(b, rng, a1, 16, 16, k=3, activation="RELU")
    a2 = b.add(a2, s, *_quant(rng), activation="RELU")
    # 1x1 windows copied (15 channels: a lone last block), rows and weights
    c1 = _conv(b, rng, a2, 16, 15, k=1, per_channel=False)
    # stride 2, 13 channels: 30 pixels
    c2 = _conv(b, rng, c1, 15, 13, k=3, stride=2)
    # 1x1 stride 2 projection of a2 with the ADD fused
    p = _conv(b, rng, a2, 16, 13, k=1, stride=2)
    c3 = b.add(p, c2, *_quant(rng))
    # VALID 3x3 over 6x5: 12 pixels
    c4 = _conv(b, rng, c3, 13, 16, k=3, padding="VALID", activation="RELU6")
    out = _conv(b, rng, c4, 16, 4, k=1)
    b.output(out, c3)
    return b.build(), shape, rng


@pytest.fixture
def no_grants(monkeypatch):
    monkeypatch.setattr(gen, "_spend_spare_ram", lambda *args: None)


@pytest.fixture
def unpaired(monkeypatch):
    """Weights stored unpaired (as for a layer with a -128 weight): paired
    layers borrow for rows only and take no partial weights grant, so the
    weights' paths need plain packing to run."""
    monkeypatch.setattr(conv, "pairable", lambda *args: None)


def _layers(model):
    """(layers, contexts, plan) as generate() leaves them."""
    seen = {}
    orig = gen._borrow_ram

    def spy(graph, plan, layers, contexts):
        orig(graph, plan, layers, contexts)
        seen.update(graph=graph, plan=plan, layers=layers, contexts=contexts)
    gen._borrow_ram = spy
    try:
        gen.generate(parse_tflite(model), features=DSP)
    finally:
        gen._borrow_ram = orig
    return seen


@pytest.mark.parametrize("paired", [True, False])
def test_borrowed_unpacking_replays_safely(no_grants, monkeypatch, paired):
    """Every phase's regions replayed against the kernel's order: a step
    (pixel pair, or the lone last pixel) that unpacks into a region neither
    wrote any of its output bytes there before nor reads input bytes there
    from then on, the regions hold no other live tensor and not the
    scratch, and the weights are unpacked at the start of their only phase."""
    if not paired:
        monkeypatch.setattr(conv, "pairable", lambda *args: None)
    seen = _layers(_model()[0])
    graph, plan = seen["graph"], seen["plan"]
    find, _, _, _, last = lifetimes(graph)
    sides = set()
    for layer, ctx in zip(seen["layers"], seen["contexts"]):
        if not ctx.get("phases"):
            continue
        pixels, oc, ic = ctx["pixels"], ctx["out_c"], ctx["in_c"]
        out_at = plan.places[find(layer.node.outputs[0])][1]
        in0 = find(layer.node.inputs[0])
        in_at = plan.places[in0][1]
        busy = busy_at(graph, plan, layer.node.index, ctx.get("scratch_bytes", 0))
        floor = read_floor((1, ctx["in_h"], ctx["in_w"], ic), (1, ctx["out_h"], ctx["out_w"], oc),
                           (ctx["k_h"], ctx["k_w"]), (ctx["stride_h"], ctx["stride_w"]),
                           (ctx["pad_h"], ctx["pad_w"]))
        steps = [(px, min(px + 2, pixels), ph["g"]) for ph in ctx["phases"]
                 for px in range(ph["start"], ph["end"], 2)]
        if pixels % 2:
            steps.append((pixels - 1, pixels, ctx["single_g"] or ctx["g"]))
        assert [s[0] for s in steps] == list(range(0, pixels, 2))  # every pixel once, in order
        wexp_phases = [ph for ph in ctx["phases"] if ph["g"]["wexp"]]
        assert len(wexp_phases) <= 1 and all(ph["expand_w"] for ph in wexp_phases)
        for px, end, g in steps:
            regions = []
            if g["xq_off"] is not None:
                regions.append((g["xq_base"], g["xq_off"], 8 * g["kw"] * (end - px)))
            if g["wexp"]:
                regions.append((g["wexp_base"], g["wexp_off"], 8 * g["units"] * g["kw"]))
            for base, off, n in regions:
                if base == "out":
                    sides.add("tail")
                    start = out_at + off
                    owner = find(layer.node.outputs[0])
                    assert out_at + end * oc <= start  # this step's writes and every earlier one below it
                else:
                    assert base == "((int8_t *)in0)"
                    sides.add("head")
                    start = in_at + off
                    owner = in0
                    assert last[in0] == plan.steps.index(layer.node.index)  # in0 dies here
                    assert in_at + int(floor[px]) * ic >= start + n  # no read from here on inside it
                assert start % 8 == 0
                for s0, e0, k in busy:
                    assert k == owner or e0 <= start or start + n <= s0, (layer.node.index, k)
    assert sides == {"tail", "head"}


def test_borrowed_unpacking_on_m4(no_grants, unpaired):
    model, shape, rng = _model()
    code = gen.generate(parse_tflite(model), features=DSP).files["tinycomp_model.c"]
    assert "(int32_t *)(void *)(out + " in code and "(int32_t *)(void *)(((int8_t *)in0) + " in code
    assert "weights unpacked once per inference" in code
    x = _inputs(rng, shape)
    assert_bit_exact_on_board(model, x, "qemu")


def test_borrowed_unpacking_plain_on_m3(no_grants, unpaired):
    """The C the borrowing produces for a DSP core, compiled for one without
    (every phase takes the plain loop)."""
    model, shape, rng = _model()
    x = random_int8(rng, (6, *shape))
    x[0].fill(-128)
    assert_bit_exact_on_board(model, x, "qemu-mps2-an385", features=DSP)


def test_some_weights_unpacked_on_m4(unpaired):
    """With the grants on (the default balanced build), a convolution whose
    unpacked weights do not all fit in the arena's spare bytes unpacks the
    first whole blocks (conv.reserve_wexp: Layer.wexp_units), here 10 of 15
    channels (a lone last one) and 10 of 16; the others unpack in the loop."""
    model, shape, rng = _model()
    graph = parse_tflite(model)
    generated = gen.generate(graph, features=DSP)
    assert generated.files["tinycomp_model.c"].count("the other channels' weights packed") >= 2
    assert generated.arena_bytes == gen.generate(graph).arena_bytes
    x = _inputs(rng, shape)
    assert_bit_exact_on_board(model, x, "qemu")
    assert_bit_exact_on_board(model, x, "qemu-mps2-an385", features=DSP)


def test_borrowed_rows_with_paired_weights_on_m4(no_grants):
    """Paired weights (conv.pack_pairs): the borrowed bytes hold rows only,
    the weights stay paired in every phase."""
    model, shape, rng = _model()
    code = gen.generate(parse_tflite(model), features=DSP).files["tinycomp_model.c"]
    assert "(int32_t *)(void *)(out + " in code and "(int32_t *)(void *)(((int8_t *)in0) + " in code
    assert "weights unpacked once per inference" not in code and "paired rows" in code
    x = _inputs(rng, shape)
    assert_bit_exact_on_board(model, x, "qemu")
    assert_bit_exact_on_board(model, x, "qemu-mps2-an385", features=DSP)
