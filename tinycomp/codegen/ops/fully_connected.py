"""FULLY_CONNECTED: out[b, o] = requant(bias[o] + sum_i (x[b, i] - zp_in) * w[o, i])."""
from __future__ import annotations

from ..layer import Layer
from .common import channel_multipliers, folded_bias, fused_activation


def fully_connected(layer: Layer) -> dict:
    weights = layer.input(1)
    if not weights.is_const or weights.dtype != "int8":
        raise layer.refuse("weights must be constant int8")
    units, depth = weights.shape
    if layer.input().size % depth:
        raise layer.refuse(f"input of {layer.input().size} values is not a multiple of {depth}")
    if any(weights.quant.zero_point):
        raise layer.refuse("weights must be symmetric (zero point 0)")
    act_min, act_max = fused_activation(layer)
    mult, shift = channel_multipliers(layer, weights.quant.scale, units,
                                      float_product=not weights.quant.per_channel)
    return {
        "batches": layer.input().size // depth,
        "depth": depth,
        "units": units,
        "weights": layer.const("weights", weights.data, "int8_t"),
        "bias": layer.const("bias", folded_bias(layer, weights.data, 2, -layer.input().zero_point), "int32_t"),
        "mult": mult,
        "shift": shift,
        "out_offset": layer.output().zero_point,
        "act_min": act_min,
        "act_max": act_max,
    }
