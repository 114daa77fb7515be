"""AVERAGE_POOL_2D, MAX_POOL_2D (NHWC windows) and MEAN (reduction over axes).

Pooling works on raw int8 values: TFLM requires the output quantization to
equal the input's, so no rescaling happens; the average divides by the number
of taps inside the input (padding is never counted) and rounds half away from
zero. MEAN sums in int32 and requantizes once, with 1 / count folded into the
output multiplier (losing bits exactly as TFLM does). The TFLM we match takes
that path even when input and output quantization are identical (older TFLM
truncated sum / count there; measured against the reference, not assumed).
"""
from __future__ import annotations

from ..fixedpoint import INT8_MAX, INT8_MIN, f32, quantize_multiplier
from ..layer import Layer, c_type
from .common import fused_activation
from .elementwise import coalesce, index_expr


def _same_padding(in_size: int, filter_size: int, stride: int, out_size: int) -> int:
    # TFLM's ComputePaddingHeightWidth (dilation 1): the offset before the
    # input; any odd extra padding goes after it and needs no code.
    return max(((out_size - 1) * stride + filter_size - in_size) // 2, 0)


def _pool(layer: Layer) -> dict:
    x, y = layer.input(), layer.output()
    if x.dtype != y.dtype or x.dtype not in ("int8", "int16"):
        raise layer.refuse(f"{x.dtype} -> {y.dtype}: only int8 -> int8 and int16 -> int16 are supported")
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise layer.refuse(f"input and output must be 4D (NHWC), got {list(x.shape)} -> {list(y.shape)}")
    # TFLM's Prepare rejects pooling that changes the quantization.
    if abs(f32(x.scale) - f32(y.scale)) > 1e-6 or x.zero_point != y.zero_point:
        raise layer.refuse("output quantization differs from the input's (TFLM requires them equal)")
    opts = layer.options
    fh, fw = int(opts.get("filter_height", 1)), int(opts.get("filter_width", 1))
    sh, sw = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
    if min(fh, fw, sh, sw) < 1:
        raise layer.refuse(f"filter {fh}x{fw} and stride {sh}x{sw} must be positive")
    n, ih, iw, c = x.shape
    on, oh, ow, oc = y.shape
    padding = opts.get("padding", "VALID")
    if padding == "SAME":
        expect = (-(-ih // sh), -(-iw // sw))
        pad_h, pad_w = _same_padding(ih, fh, sh, oh), _same_padding(iw, fw, sw, ow)
    elif padding == "VALID":
        expect = ((ih - fh + sh) // sh, (iw - fw + sw) // sw)
        pad_h = pad_w = 0
    else:
        raise layer.refuse(f"padding {padding!r} is not supported")
    if (on, oc) != (n, c) or (oh, ow) != expect or min(expect) < 1:
        raise layer.refuse(f"output shape {list(y.shape)} does not follow from input {list(x.shape)}, "
                           f"filter {fh}x{fw}, stride {sh}x{sw}, {padding}")
    act_min, act_max = fused_activation(layer)
    return {
        "batches": n, "in_h": ih, "in_w": iw, "channels": c, "out_h": oh, "out_w": ow,
        "filter_h": fh, "filter_w": fw, "stride_h": sh, "stride_w": sw,
        "pad_h": pad_h, "pad_w": pad_w, "act_min": act_min, "act_max": act_max,
        # int16 (TFLM's int16 pools): the same arithmetic on wider values
        "ctype": c_type(x.dtype), "lowest": -128 if x.dtype == "int8" else -32768,
    }


def average_pool_2d(layer: Layer) -> dict:
    return _pool(layer)


def max_pool_2d(layer: Layer) -> dict:
    return _pool(layer)


def _resolve_axes(layer: Layer, rank: int) -> list[int]:
    t = layer.input(1)
    if not t.is_const:
        raise layer.refuse("the axis input must be constant")
    axes = []
    for a in t.data.reshape(-1).tolist():
        if not -rank <= a < rank:
            raise layer.refuse(f"axis {a} is out of range for a rank-{rank} input")
        a %= rank
        if a not in axes:
            axes.append(a)
    return axes


def mean(layer: Layer) -> dict:
    x, y = layer.input(), layer.output()
    if x.dtype != y.dtype or x.dtype not in ("int8", "int16"):
        raise layer.refuse(f"{x.dtype} -> {y.dtype}: only int8 -> int8 and int16 -> int16 are supported")
    if x.quant is None or y.quant is None or x.quant.per_channel or y.quant.per_channel:
        raise layer.refuse("input and output need one (per-tensor) scale and zero point")
    rank = len(x.shape)
    axes = _resolve_axes(layer, rank)
    kept_shape = [d for i, d in enumerate(x.shape) if i not in axes]
    if y.size != max(1, _prod(kept_shape)):
        raise layer.refuse(f"output shape {list(y.shape)} does not follow from reducing "
                           f"{list(x.shape)} over axes {axes}")
    count = _prod([x.shape[a] for a in axes])
    if count == 0 or x.size == 0:
        raise layer.refuse("empty reductions are not supported")
    if count * (128 if x.dtype == "int8" else 32768) >= 1 << 31:
        raise layer.refuse(f"a sum over {count} values may overflow int32")

    # Outer loops walk the kept axes in order (the output is contiguous in
    # that order); inner loops sum over the reduced axes.
    strides = _strides(x.shape)
    kept = coalesce([(x.shape[i], [strides[i]]) for i in range(rank) if i not in axes])
    reduced = coalesce([(x.shape[i], [strides[i]]) for i in range(rank) if i in axes])
    kept = [{"size": s, "strides": st} for s, st in kept]
    reduced = [{"size": s, "strides": st} for s, st in reduced]
    index = " + ".join(e for e in (index_expr(kept, 0, "k"), index_expr(reduced, 0, "r")) if e != "0") or "0"

    mult, shift = quantize_multiplier(f32(x.scale) / f32(y.scale))
    # TFLM folds 1 / count into the multiplier: multiply by 2**k (k = floor
    # log2 count, capped so the final shift stays >= -31 and the product fits
    # 64 bits), divide by count in integers, and shift k bits further right.
    k = min(count.bit_length() - 1, 32, 31 + shift)
    if k < 0:
        raise layer.refuse("input/output scale ratio is too small to represent")
    mult = (mult << k) // count
    return {"kept": kept, "reduced": reduced, "index": index, "count": count,
            "mult": mult, "shift": shift - k, "in_sum_offset": x.zero_point * count,
            "out_offset": y.zero_point, "ctype": c_type(y.dtype),
            "out_min": INT8_MIN if y.dtype == "int8" else -32768,
            "out_max": INT8_MAX if y.dtype == "int8" else 32767}


def _prod(values) -> int:
    p = 1
    for v in values:
        p *= int(v)
    return p


def _strides(shape) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]
