"""SVDF, int8 input and output with an int16 activation state and int16 time
weights, or an int8 state and int8 time weights, as TFLite Micro's integer
reference (EvalIntegerSvdfReference) computes it.

Per inference, per batch row b:
1. the whole state (batch, filters, memory) moves one place towards the
   front (a flat shift: the first value of each filter's row falls into the
   previous row's last slot, which step 2 overwrites);
2. each filter f's feature dot sum_c wf[f, c] * (x[b, c] - zp_in) is
   requantized by scale_in * scale_wf / scale_state (float32 products, as
   C++ computes them), clamped to the state's type and written to the newest slot,
   state[b, f, memory - 1];
3. each unit u sums bias[u] and, for its `rank` filters, the time dot
   sum_m wt[f, m] * state[b, f, m]; that is requantized by
   scale_state * scale_wt / scale_out, offset by zp_out, clamped to int8.
TFLM's integer path applies no fused activation (it reads none): neither
does this kernel, to stay bit-exact. The state is a variable tensor with its
own static buffer (passes/memory.py), zero until the first inference and
after tinycomp_reset_state().
"""
from __future__ import annotations

import numpy as np

from ..fixedpoint import f32, quantize_multiplier
from ..layer import Layer


def svdf(layer: Layer) -> dict:
    x, wf, wt, state, out = layer.input(0), layer.input(1), layer.input(2), layer.input(4), layer.output()
    if (wt.dtype, state.dtype) not in (("int16", "int16"), ("int8", "int8")):
        # TFLite Micro runs these two pairs (a mixed pair crashes its interpreter)
        raise layer.refuse(f"{wt.dtype} time weights with an {state.dtype} state are not supported "
                           "(TFLite Micro runs int16 with int16, or int8 with int8)")
    if wf.dtype != "int8" or wf.quant is None or wf.quant.per_channel or wt.quant is None \
            or wt.quant.per_channel:
        raise layer.refuse(f"weights must be int8 (feature) and {wt.dtype} (time), quantized per tensor")
    if state.zero_point != 0:
        raise layer.refuse(f"the {state.dtype} state has zero point {state.zero_point}; it must be 0")
    if not layer.has_input(3):
        # TFLM reads the bias scale unconditionally in its integer Prepare
        raise layer.refuse("the integer SVDF needs a bias (TFLite Micro reads its scale)")
    bias = layer.input(3)
    if bias.dtype != "int32" or bias.quant is None:
        raise layer.refuse("the bias must be a quantized int32 vector")
    time_scale = f32(np.float32(state.scale) * np.float32(wt.scale))
    if not abs(float(bias.scale) - time_scale) < 1e-5:
        raise layer.refuse(f"bias scale {bias.scale:.6g} is not state scale x time weight scale "
                           f"({time_scale:.6g}); TFLite Micro refuses it")
    batch, depth = x.shape
    filters, memory = wt.shape
    rank = int(layer.options["rank"])
    units = filters // rank
    # C++: float * float / float, then widened to double
    m1, s1 = quantize_multiplier(f32(np.float32(np.float32(x.scale) * np.float32(wf.scale))
                                     / np.float32(state.scale)))
    m2, s2 = quantize_multiplier(f32(np.float32(np.float32(state.scale) * np.float32(wt.scale))
                                     / np.float32(out.scale)))
    w = wf.data.astype(np.int64)
    # sum_c w * (x - zp) == sum_c w * x - zp * sum_c w, exactly in int32
    feature_bias = -x.zero_point * w.sum(axis=1)
    return {
        "batch": batch, "depth": depth, "filters": filters, "memory": memory, "rank": rank,
        "units": units, "state_size": batch * filters * memory,
        "wf": layer.const("wf", w, "int8_t"),
        "fbias": layer.const("fbias", feature_bias, "int32_t"),
        "wt": layer.const("wt", wt.data, f"{wt.dtype}_t"),
        "state_t": f"{state.dtype}_t", "wt_t": f"{wt.dtype}_t",
        "state_min": int(np.iinfo(state.dtype).min), "state_max": int(np.iinfo(state.dtype).max),
        "bias": layer.const("bias", bias.data, "int32_t"),
        "m1": m1, "s1": s1, "m2": m2, "s2": s2, "zp_out": out.zero_point,
    }
