"""DEPTHWISE_CONV_2D: one filter per (input channel, multiplier); the window
geometry, padding split and bias folding are CONV_2D's (ops/conv.py)."""
from __future__ import annotations

import numpy as np

from ...reference.gemmlowp import multiply_by_quantized_multiplier
from ..layer import Constant, Layer
from .common import channel_multipliers, folded_bias, int4_weights, lag
from .conv import biases, check_io, check_weights, geometry

# Output channels accumulated together by the depthwise kernel: small enough
# for the accumulators to stay in registers or L1, large enough to amortise
# the window address arithmetic.
DW_BLOCK = 16
# Output pixels the shared 3x3 DSP kernel takes per group of 4 channels
# before the next group (depthwise_conv_2d_dsp3.c.j2: tc_dw3_px): a group's
# 136 bytes of parameters and weights come from flash once per chunk, not per
# pixel; the in-place lag grows by (chunk - 1) pixels
DW3_CHUNK = 8


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
    int4 = w.dtype == "int4"
    ctx = {
        **geo, **biases(layer, geo, per_channel),
        "in_c": c, "out_c": oc, "depth_mult": mult_depth, "dw3_band": "dsp" in layer.features,
        "block": block, "full_blocks": oc // block, "tail": oc % block,
        "int4": int4, "weights": None if int4 else layer.const("weights", w.data, "int8_t"),
        "mult": mult, "shift": shift,
        # pixels are produced in row-major order, each from a window read
        # before the next pixel: the output may trail the dying input by a
        # couple of rows instead of needing its own buffer
        "inplace_lag": lag(layer, geo),
    }
    if int4:  # its own layout (packed nibbles), the same in every storage aim
        ctx["raw_from_folded"], ctx["one_bias"] = False, False
        return _int4(layer, ctx, geo, per_channel, mult, shift)
    # --optimize size: the plain kernel only; the DSP path's doubled int16
    # weights and 5-word channel parameters take 2-4x the flash
    ctx.update(_dsp(layer, geo, per_channel, mult, shift, band=ctx["dw3_band"]) if layer.storage != "size"
               else {"dsp": False, "dw3": False})
    ctx["raw_from_folded"], ctx["one_bias"] = False, layer.storage == "size"
    if ctx["dw3"]:
        ctx["chunk"] = DW3_CHUNK
        if ctx["dw3_band"]:  # rows of pixels in chunks, each group over the chunk in turn
            ctx["inplace_lag"] = lag(layer, geo, block=DW3_CHUNK, row_blocks=True)
    if ctx["dw3"] and ctx["dw3_band"] and geo["has_border"]:
        # the shared 3x3 DSP kernel keeps the input rows of border rows here,
        # zero-point padded, a ring of three, and runs the interior kernel on them
        ctx["scratch_bytes"] = 3 * ((geo["out_w"] - 1) * geo["stride_w"] + 3) * c
    if ctx["one_bias"] and ctx["bias"] and ctx["folded_bias"]:
        # and one bias array: the border's raw bias is the folded one minus
        # the input offset times the filter's sum, derived per border pixel
        layer.constants[:] = [k for k in layer.constants if k.name != ctx["bias"]]
        ctx["bias"], ctx["raw_from_folded"] = None, True
    # cores without DSP: 3x3 layers share one plain function too
    # (depthwise_conv_2d_plain3.c.j2; its geometry fields are int16)
    # (tc_requant_fast there: not for a multiplier of INT32_MIN)
    mults = next(k.values for k in layer.constants if k.name == mult)
    ctx["plain3"] = (_shareable_3x3(geo, c) and mult_depth == 1
                     and not np.any(mults == np.iinfo(np.int32).min))
    if ctx["plain3"]:
        # its weights channel-major, (c, 3, 3), so one pointer walks the
        # channels and a channel's taps are immediate offsets (same bytes)
        i = next(i for i, k in enumerate(layer.constants) if k.name == ctx["weights"])
        k = layer.constants[i]
        layer.constants[i] = Constant(k.name, k.ctype, k.values.reshape(9, oc).T.reshape(-1).copy())
    return ctx


def _int4(layer: Layer, ctx: dict, geo: dict, w_oc_taps: np.ndarray, mult: str, shift: str) -> dict:
    """INT4 filters are stored once, packed, and every path reads the nibbles
    in place. Where the DSP path's conditions hold, in its layout (_dsp): per
    group of 4 channels, one word per two taps, byte b holding channel b's
    weight of the even tap in its top nibble and of the odd tap in its
    bottom nibble; the plain loop of cores without DSP then reads that
    layout too (int4_words). Otherwise TFLite's own packing (int4_at: an
    element by tc_int4)."""
    ctx.update(_dsp(layer, geo, w_oc_taps, mult, shift, int4=True))
    ctx["plain3"] = False
    oc, taps = w_oc_taps.shape
    ctx["int4_words"], ctx["int4_at"] = None, None
    if ctx["dsp"]:
        ctx["int4_words"] = -(-taps // 2)  # words per group of 4 channels
    else:
        name = int4_weights(layer, w_oc_taps.T)  # (taps, oc): the file's (1, kh, kw, oc) order
        ctx["int4_at"] = f"tc_int4({name}, ({{t}}) * {oc} + ({{c}}))"
    return ctx


def _int4_words(w_oc_taps: np.ndarray) -> np.ndarray:
    """The DSP layout of INT4 weights (see _int4) as int32 words."""
    oc, taps = w_oc_taps.shape
    pairs = -(-taps // 2)
    w = np.zeros((oc, 2 * pairs), np.int64)
    w[:, :taps] = w_oc_taps
    nib = w.reshape(oc // 4, 4, pairs, 2) & 0xF  # (group, channel, word, even/odd tap)
    byte = (nib[..., 0] << 4) | nib[..., 1]  # (group, channel, word)
    words = sum(byte[:, b, :] << (8 * b) for b in range(4)).reshape(-1)  # (group, word)
    return np.where(words >= 1 << 31, words - (1 << 32), words)


def _shareable_3x3(geo: dict, channels: int) -> bool:
    fields = [geo[k] for k in ("batches", "in_h", "in_w", "out_h", "out_w", "stride_h", "stride_w",
                               "pad_h", "pad_w")] + [channels]
    return (geo["k_h"], geo["k_w"], geo["dil_h"], geo["dil_w"]) == (3, 3, 1, 1) and max(fields) < 1 << 15


def _dsp(layer: Layer, geo: dict, w_oc_taps: np.ndarray, mult_name: str, shift_name: str,
         int4: bool = False, band: bool = False) -> dict:
    """Constants of the DSP path (depthwise_conv_2d_dsp.c.j2), or dsp=False
    where its arithmetic shortcuts would not be exact: depth multiplier 1,
    channels a multiple of 4, every channel shifting right by >= 1 bit, and
    accumulators provably inside the ranges its shortcuts need.
    INT4 (int4=True): the nibbles are masked into the top of their bytes, so
    the products are 16 x w x x and the accumulator starts at 16 x bias; it
    must then stay below 2^31 (|acc| < 2^27), and the kernel shifts it right
    by 3 to the doubled accumulator SMMULR takes. No shared 3x3 kernel.
    band: the shared 3x3 kernel reads border rows from zero-point bands, so
    every pixel starts from the folded bias and its block holds no raw bias."""
    oc, taps = w_oc_taps.shape
    values = {c.name: c.values for c in layer.constants}
    mult = values[mult_name].astype(np.int64)
    shift = values[shift_name].astype(np.int64)
    # channels with all-zero weights are given their own recipe below, whatever their shift
    dead = ~w_oc_taps.any(axis=1)
    if layer.input().shape[3] != oc or oc % 4 or (shift[~dead] > -1).any():
        return {"dsp": False, "dw3": False}
    off, out_off = geo["in_offset"], geo["out_offset"]
    folded = folded_bias(layer, w_oc_taps, 2, off).astype(np.int64)
    raw = (layer.input(2).data.astype(np.int64).reshape(-1) if layer.has_input(2)
           else np.zeros(oc, np.int64))
    wsum = np.abs(w_oc_taps.astype(np.int64)).sum(axis=1)
    e = -shift
    # A channel whose weights are all zero (a pruned filter) outputs a constant,
    # TFLM's requantized bias. Its scale is often tiny (shift -27 and the like),
    # so out_off * 2^e would overflow the rounding term and veto the whole
    # layer's DSP path; instead give it an equivalent exact recipe: zero
    # accumulator, multiplier 0, shift 1 and rounding term 2 * constant, which
    # yields (0 + 0 + 2y) >> 1 = y, clamped as every channel is.
    if dead.any():
        const = np.array([int(multiply_by_quantized_multiplier(np.int32(b), int(m), int(s))) + out_off
                          for b, m, s in zip(raw[dead], mult[dead], shift[dead])], np.int64)
        folded, raw, mult, e = folded.copy(), raw.copy(), mult.copy(), e.copy()
        folded[dead] = raw[dead] = mult[dead] = 0
        e[dead] = 1
    acc_max = np.maximum(np.abs(folded) + 128 * wsum, np.abs(raw) + 255 * wsum)
    rnd = (1 << (e - 1)) + out_off * (1 << e)
    if dead.any():
        rnd[dead] = 2 * const
    if (acc_max >= 1 << 30).any() or (acc_max + 1 + np.abs(rnd) >= 1 << 31).any():
        return {"dsp": False, "dw3": False}
    if int4 and (acc_max >= 1 << 27).any():
        return {"dsp": False, "dw3": False}
    groups = oc // 4
    scale = 16 if int4 else 2
    # per group and tap: channels 0, 2, 1, 3 as int16, doubled
    w2 = (2 * w_oc_taps.astype(np.int64)).reshape(groups, 4, taps)[:, [0, 2, 1, 3], :]
    w2 = w2.transpose(0, 2, 1).reshape(-1)
    c, iw = layer.input().shape[3], layer.input().shape[2]
    offsets = [(ky * geo["dil_h"] * iw + kx * geo["dil_w"]) * c
               for ky in range(geo["k_h"]) for kx in range(geo["k_w"])]
    lane = off & 0xFFFF
    # 3x3 layers without dilation share one DSP function per model
    # (depthwise_conv_2d_dsp3.c.j2)
    dw3 = _shareable_3x3(geo, c) and not int4
    full_range = (geo["act_min"], geo["act_max"]) == (-128, 127)
    columns = [folded * scale, mult, rnd, e] if dw3 and band else [folded * scale, raw * scale, mult, rnd, e]
    params = np.stack(columns, axis=1)  # (oc, 4 or 5)
    k = len(columns)
    params = params.reshape(groups, 4, k).transpose(0, 2, 1).reshape(groups, 4 * k)  # per group: k x 4
    if dw3:
        # one array, per group its 16 or 20 parameters then its 9 taps' weight
        # pairs as aligned int32 words (two pairs in one LDRD): the kernel
        # walks it with one pointer
        params = np.concatenate([params, _pairs_as_words(w2).reshape(groups, 18)], axis=1)
    return {
        "dw3": dw3, "dw3_variant": "s" if full_range else "c",
        "dw3_qm": 4 * (k - 3),  # a group's words before its multipliers: its biases
        "dsp": True,
        "dsp_params": layer.const("dsp_params", params.reshape(-1), "int32_t"),
        # the specialised kernel reads the weights as int16
        "dsp_weights": (layer.const("dsp_weights4", _int4_words(w_oc_taps), "int32_t") if int4
                        else None if dw3 else layer.const("dsp_weights", w2, "int16_t")),
        "tap_offsets": offsets,
        "off2": f"(int32_t)0x{(lane << 16) | lane:08x}u",
        "zp4": f"(int32_t)0x{(-off & 0xFF) * 0x01010101:08x}u",
    }


def _pairs_as_words(values: np.ndarray) -> np.ndarray:
    """int16 values (even count) as int32 words holding (v[2i] low, v[2i+1]
    high), the little-endian layout of the int16 array they replace."""
    v = values.astype(np.int64).reshape(-1, 2) & 0xFFFF
    words = v[:, 0] | (v[:, 1] << 16)
    return np.where(words >= 1 << 31, words - (1 << 32), words)
