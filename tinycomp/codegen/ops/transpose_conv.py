"""TRANSPOSE_CONV int8, as TFLite Micro's reference integer kernel computes it.

Every input pixel scatters (x - zp_in) * w into an int32 accumulator of the
whole output (scratch in the arena); then each output value gets its bias,
the per-channel Q31 requantization, the output zero point and the fused
activation's clamp. The padding is the one a convolution from the output's
size back to the input's would have (TFLM's ComputePaddingHeightWidth on the
output dims), before-side only.
"""
from __future__ import annotations

import numpy as np

from ...ir.shapes import conv_out_size
from ..fixedpoint import quantize_multipliers
from ..layer import Layer
from .common import fused_activation


def _pad(padding: str, out_size: int, kernel: int, stride: int) -> int:
    size = conv_out_size(padding, out_size, kernel, stride)
    return max((size - 1) * stride + kernel - out_size, 0) // 2


def transpose_conv(layer: Layer) -> dict:
    w, x, out = layer.input(1), layer.input(2), layer.output()
    if w.dtype != "int8":
        raise layer.refuse(f"{w.dtype} weights are not supported (int8 only)")
    cout, kh, kw, cin = w.shape
    n, ih, iw, _ = x.shape
    _, oh, ow, _ = out.shape
    sh, sw = int(layer.options.get("stride_h", 1)), int(layer.options.get("stride_w", 1))
    padding = layer.options.get("padding", "SAME")
    scales = np.broadcast_to(np.asarray(w.quant.scale, dtype=np.float32), (cout,))
    # double(input scale) * double(filter scale) / double(output scale), as TFLM
    reals = [float(np.float32(x.scale)) * float(s) / float(np.float32(out.scale)) for s in scales]
    mult, shift = quantize_multipliers(reals)
    bias = layer.input(3).data.reshape(-1) if layer.has_input(3) else np.zeros(cout, np.int64)
    lo, hi = fused_activation(layer)
    return {
        "n": n, "ih": ih, "iw": iw, "cin": cin, "oh": oh, "ow": ow, "cout": cout, "kh": kh, "kw": kw,
        "sh": sh, "sw": sw, "ph": _pad(padding, oh, kh, sh), "pw": _pad(padding, ow, kw, sw),
        "zp_in": x.zero_point, "zp_out": out.zero_point, "lo": lo, "hi": hi,
        "w": layer.const("w", w.data, "int8_t"),
        "bias": layer.const("bias", bias, "int32_t"),
        "mult": layer.const("mult", mult, "int32_t"),
        "shift": layer.const("shift", shift, "int8_t"),
        "scratch_bytes": out.size * 4,
    }
