"""FULLY_CONNECTED: out[b, o] = requant(bias[o] + sum_i (x[b, i] - zp_in) * w[o, i]).

One input row against blocks of FC_BLOCK units (conv_2d_gemm.c.j2): the
input offset is folded into the bias, so the inner loop is a plain int8 dot
product; the packed weights are read once per inference, each unpacked
input word serves FC_BLOCK units.
"""
from __future__ import annotations

from ..layer import Layer
from .common import channel_multipliers, folded_bias
from .conv import gemm_context, reserve_xq

# 1 row x 4 units: 4 accumulators, the unpacked input word and one unpacked
# weight word live in registers; the 4 units' words are 16 adjacent bytes.
FC_BLOCK = 4
# Rows up to this depth are unpacked to int16 once (DSP targets, 2 bytes of
# scratch per input value; conv.reserve_xq): ~12% fewer instructions, but a
# long row would outweigh the rest of a small model's arena (AD's 640-value
# input: 768 -> 2,048 bytes), so longer rows unpack in the loop.
FC_XQ_DEPTH = 256


def fully_connected(layer: Layer) -> dict:
    weights = layer.input(1)
    if not weights.is_const or weights.dtype not in ("int8", "int4"):
        raise layer.refuse("weights must be constant int8 or INT4")
    units, depth = weights.shape
    if layer.input().size % depth:
        raise layer.refuse(f"input of {layer.input().size} values is not a multiple of {depth}")
    if any(weights.quant.zero_point):
        raise layer.refuse("weights must be symmetric (zero point 0)")
    mult, shift = channel_multipliers(layer, weights.quant.scale, units,
                                      float_product=not weights.quant.per_channel)
    bias = folded_bias(layer, weights.data, 2, -layer.input().zero_point)
    g = gemm_context(layer, weights.data.reshape(units, depth), FC_BLOCK, bias, mult, shift, depth)
    ctx = {"batches": layer.input().size // depth, "depth": depth, "units": units, "g": g,
           "shared_args": True,
           # a row whose length is not whole words is copied, so the kernel's
           # word loads never read past the input tensor
           "copy": depth % (8 if g["int4"] else 4) != 0}
    used = g["kw"] * 4 if ctx["copy"] else 0
    if depth <= FC_XQ_DEPTH:
        used = reserve_xq(layer, g, used, 1)
    if used:
        ctx["scratch_bytes"] = used
    return ctx
