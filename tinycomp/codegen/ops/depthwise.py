"""DEPTHWISE_CONV_2D: one filter per (input channel, multiplier); the window
geometry, padding split and bias folding are CONV_2D's (ops/conv.py)."""
from __future__ import annotations

from ...passes.memory import window_lag
from ..layer import Layer
from .common import channel_multipliers
from .conv import biases, check_io, check_weights, geometry

# Output channels accumulated together by the depthwise kernel: small enough
# for the accumulators to stay in registers or L1, large enough to amortise
# the window address arithmetic.
DW_BLOCK = 16


def depthwise_conv_2d(layer: Layer) -> dict:
    check_io(layer)
    w = layer.input(1)
    if len(w.shape) != 4 or w.shape[0] != 1:
        raise layer.refuse("filter must be 4-D (1, H, W, C*M)")
    _, kh, kw, oc = w.shape
    c = layer.input().shape[3]
    if oc % c:
        raise layer.refuse(f"{oc} output channels are not a multiple of {c} input channels")
    mult_depth = oc // c
    # TFLM loops over the option's multiplier, not the shapes': refuse a mismatch.
    opt_m = int(layer.options.get("depth_multiplier", mult_depth) or mult_depth)
    if opt_m != mult_depth:
        raise layer.refuse(f"depth_multiplier {opt_m} disagrees with {c} -> {oc} channels")
    check_weights(layer, 3, oc)
    geo = geometry(layer, kh, kw, oc)
    mult, shift = channel_multipliers(layer, w.quant.scale, oc)
    block = min(DW_BLOCK, oc)
    per_channel = w.data.reshape(kh * kw, oc).T  # (oc, taps) for the bias fold
    return {
        **geo, **biases(layer, geo, per_channel),
        "in_c": c, "out_c": oc, "depth_mult": mult_depth,
        "block": block, "full_blocks": oc // block, "tail": oc % block,
        "weights": layer.const("weights", w.data, "int8_t"),
        "mult": mult, "shift": shift,
        # pixels are produced in row-major order, each from a window read
        # before the next pixel: the output may trail the dying input by a
        # couple of rows instead of needing its own buffer
        "inplace_lag": window_lag(layer.input().shape, layer.output().shape, (kh, kw),
                                  (geo["stride_h"], geo["stride_w"]), (geo["pad_h"], geo["pad_w"]),
                                  (geo["dil_h"], geo["dil_w"])),
    }
