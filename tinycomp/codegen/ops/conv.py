"""CONV_2D, and the window geometry it shares with DEPTHWISE_CONV_2D (NHWC, int8 activations, symmetric int8 weights).

TFLM's reference kernels compute, per output position and channel,
    acc = bias[c] + sum over in-bounds taps of w * (x - zp_in)
and skip out-of-bounds taps entirely (zero padding *after* the offset).
Folding zp_in into the bias is therefore only exact for output positions
whose whole window lies inside the input. The generated code splits the
output plane into an interior rectangle (no bounds checks, offset folded into
the bias at build time) and a border (bounds-checked taps, raw bias, offset
added per tap as TFLM does), both specialised with literal shapes.
"""
from __future__ import annotations

import numpy as np

from ...ir.shapes import conv_out_size
from ...passes.analysis import layer_macs
from ...passes.memory import align, align_down, read_floor
from ..layer import Constant, Layer
from . import conv_c1
from .common import (bias_const, channel_multipliers, check_filter_quant, folded_bias, fused_activation,
                     int4_weights, lag, uniform_pair)


def _pad_before(size: int, kernel: int, stride: int, dilation: int, out: int) -> int:
    # ComputePaddingWithOffset: TFLM applies it for VALID too (it is 0 there),
    # and keeps only the leading half; an odd remainder goes after the input.
    eff = (kernel - 1) * dilation + 1
    return max((out - 1) * stride + eff - size, 0) // 2


def _inside(out: int, size: int, kernel: int, stride: int, dilation: int, pad: int) -> tuple[int, int]:
    """[lo, hi) of the output positions whose every tap is inside the input
    (a contiguous range: both bounds are monotone in the position)."""
    ok = [o for o in range(out)
          if o * stride - pad >= 0 and o * stride - pad + (kernel - 1) * dilation < size]
    return (ok[0], ok[-1] + 1) if ok else (0, 0)


def check_io(layer: Layer) -> None:
    x, y = layer.input(), layer.output()
    if x.dtype != "int8" or y.dtype != "int8":
        raise layer.refuse(f"needs int8 input and output, not {x.dtype} -> {y.dtype}")
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise layer.refuse("input and output must be 4-D (NHWC)")


def check_weights(layer: Layer, axis: int, channels: int):
    w = layer.input(1)
    if not w.is_const or w.dtype not in ("int8", "int4") or len(w.shape) != 4:
        raise layer.refuse("filter must be a constant 4-D int8 or INT4 tensor")
    check_filter_quant(layer, w, axis, channels)
    if layer.has_input(2):
        b = layer.input(2)
        if not b.is_const or b.dtype != "int32" or b.size != channels:
            raise layer.refuse(f"bias must be a constant int32 vector of {channels}")
    return w


def window_geometry(layer: Layer, kh: int, kw: int, channels_out: int) -> dict:
    """Sizes, strides, dilations and leading padding of a window op (conv,
    depthwise, any activation type), checked against the output shape."""
    opts = layer.options
    n, h, w, _ = layer.input().shape
    padding = opts.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise layer.refuse(f"padding {padding} is not supported")
    sh, sw = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
    dh, dw = int(opts.get("dilation_h_factor", 1) or 1), int(opts.get("dilation_w_factor", 1) or 1)
    if min(sh, sw, dh, dw) < 1:
        raise layer.refuse(f"strides {sh}x{sw} and dilations {dh}x{dw} must be positive")
    oh, ow = conv_out_size(padding, h, kh, sh, dh), conv_out_size(padding, w, kw, sw, dw)
    expected = (n, oh, ow, channels_out)
    if oh < 1 or ow < 1 or tuple(layer.output().shape) != expected:
        raise layer.refuse(f"output shape {tuple(layer.output().shape)} does not match the "
                           f"computed {expected}")
    return {"batches": n, "in_h": h, "in_w": w, "out_h": oh, "out_w": ow,
            "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw,
            "pad_h": _pad_before(h, kh, sh, dh, oh), "pad_w": _pad_before(w, kw, sw, dw, ow)}


def geometry(layer: Layer, kh: int, kw: int, channels_out: int) -> dict:
    """Spatial parameters shared by both ops, checked against the output shape."""
    g = window_geometry(layer, kh, kw, channels_out)
    h, w, oh, ow = g["in_h"], g["in_w"], g["out_h"], g["out_w"]
    sh, sw, dh, dw, ph, pw = g["stride_h"], g["stride_w"], g["dil_h"], g["dil_w"], g["pad_h"], g["pad_w"]
    ylo, yhi = _inside(oh, h, kh, sh, dh, ph)
    xlo, xhi = _inside(ow, w, kw, sw, dw, pw)
    if ylo == yhi or xlo == xhi:
        ylo = yhi = xlo = xhi = 0
    act_min, act_max = fused_activation(layer)
    return {
        **g,
        "y_lo": ylo, "y_hi": yhi, "x_lo": xlo, "x_hi": xhi,
        "has_interior": yhi > ylo,
        "has_border": not (ylo == 0 and yhi == oh and xlo == 0 and xhi == ow),
        "in_offset": -layer.input().zero_point,
        "out_offset": layer.output().zero_point,
        "act_min": act_min, "act_max": act_max,
    }


def biases(layer: Layer, geo: dict, weights_oc_first: np.ndarray) -> dict:
    """Folded bias for the interior, raw bias (or none) for the border;
    only the arrays the generated code uses are emitted."""
    out = {"folded_bias": None, "bias": None}
    if geo["has_interior"]:
        out["folded_bias"] = layer.const(
            "bias_folded", folded_bias(layer, weights_oc_first, 2, geo["in_offset"]), "int32_t")
    if geo["has_border"] and layer.has_input(2):
        out["bias"] = layer.const("bias", layer.input(2).data.reshape(-1), "int32_t")
    return out


def pack_rows(rows: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """Int8 rows (units, k) as int32 words for the blocked kernels
    (conv_2d_gemm.c.j2): each row zero-padded to kw = ceil(k / 4) words,
    bytes little-endian in a word (the kernels take them apart by value, so
    this holds on any host), words interleaved per block of `block` rows, the
    leftover rows as blocks of one. Same byte count as the weights, plus the
    padding; int32 also makes the array word-aligned."""
    units, k = rows.shape
    kw = -(-k // 4)
    padded = np.zeros((units, kw * 4), np.int8)
    padded[:, :k] = rows
    words = padded.view("<u4").astype(np.int64)
    words = np.where(words >= 1 << 31, words - (1 << 32), words)  # as int32
    full = units // block * block
    head = words[:full].reshape(-1, block, kw).transpose(0, 2, 1).reshape(-1)
    return np.concatenate([head, words[full:].reshape(-1)]), kw


def pack_pairs(rows: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """pack_rows with each even/odd pair of a full block's rows (r, s)
    merged: the pair's two words at activation word j hold, as int16 halves,
    h_i = r_i + 256 s_i for i = 4j, 4j + 2 (the first word) and 4j + 1,
    4j + 3 (the second), stored as bytes (r_i, s_i - [r_i < 0]) so that the
    low byte sign-extends to r_i and the halfword reads as h_i exactly. One
    SMLAD of an activation pair with such a word adds two MACs of row r and
    two of row s (times 256), one SMLAD of its SXTB16 adds row r's: the block
    (conv_2d_gemm.c.j2: pair_*) unpacks half the weight words a plain packing
    needs, then takes s = (A - r) / 256. Same bytes as pack_rows; the caller
    checks pairable() first."""
    units, k = rows.shape
    kw = -(-k // 4)
    padded = np.zeros((units, kw * 4), np.int64)
    padded[:, :k] = rows
    full = units // block * block
    r, s = padded[0:full:2], padded[1:full:2]
    hi = s - (r < 0)  # the borrow the signed low byte takes from the high one
    quads = np.stack([r, hi], axis=-1).reshape(r.shape[0], kw, 2, 2, 2)  # (pair, word, i%4 // 2, i%2, byte)
    even_odd = quads.transpose(0, 1, 3, 2, 4).reshape(r.shape[0], kw, 2, 4)  # word 2j: i even, 2j+1: i odd
    merged = np.zeros((full, kw * 4), np.int64)
    merged[0:full:2], merged[1:full:2] = even_odd[:, :, 0].reshape(-1, kw * 4), even_odd[:, :, 1].reshape(-1, kw * 4)
    out = padded.copy()
    out[:full] = merged
    return pack_rows(out.astype(np.int8), block)


def _pair_reach(rows: np.ndarray, block: int, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the full blocks: 128 x sum|w| (its sum's reach over int8
    inputs) and |bias|."""
    full = rows.shape[0] // block * block
    return 128 * np.abs(rows[:full].astype(np.int64)).sum(axis=1), np.abs(np.asarray(bias, np.int64)[:full])


def pairable(rows: np.ndarray, block: int, bias: np.ndarray) -> str | None:
    """How pack_pairs' rows can run paired exactly, or None: they need an
    even block and int8 weights of -127..127 (a high byte s - 1 must stay a
    byte). The DSP kernel's A sums r + 256 s modulo 2^32 (SMLAD wraps), so
    (A - r) / 256 is exact while |s's sum| < 2^23:
    "early" when that holds with s's bias in A from the start, "late" when
    only without it (the bias added after the split: a load and an add per
    channel and pixel; a pruned channel's bias can be ~2^30)."""
    if block % 2 or rows.shape[0] < block or int(rows.min(initial=0)) < -127:
        return None
    macs, b = _pair_reach(rows, block, bias)
    if int((macs[1::2] + b[1::2]).max()) < 1 << 23:
        return "early"
    return "late" if int(macs[1::2].max()) < 1 << 23 else None


def pair_sums_fit(rows: np.ndarray, block: int, bias: np.ndarray, mode: str) -> bool:
    """Whether every pair's A (r + 256 s, with s's bias for "early") stays
    within int32 for any int8 input: the plain path then sums A in int32
    instead of decoding each weight (conv_2d_gemm.c.j2: pair_plain)."""
    macs, b = _pair_reach(rows, block, bias)
    s_part = macs[1::2] + (b[1::2] if mode == "early" else 0)
    return int((macs[0::2] + b[0::2] + 256 * s_part).max()) < 1 << 31


def pack_rows4(rows: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """INT4 rows (units, k) as int32 words for the blocked kernels, 8 weights
    a word: byte b of word j holds weight 8j + b in its low nibble and weight
    8j + 4 + b in its high one. So `(v << 4) & 0xF0F0F0F0` and
    `v & 0xF0F0F0F0` are the weights of activation words 2j and 2j + 1 as
    signed bytes times 16, in the byte order SXTB16 takes them (DSP path);
    the plain path takes nibbles by shifts. Rows are zero-padded to whole
    words (kw8 = ceil(k / 8)) and interleaved per block as pack_rows does.
    Half the bytes of the int8 words."""
    units, k = rows.shape
    kw8 = -(-k // 8)
    padded = np.zeros((units, kw8 * 8), np.int64)
    padded[:, :k] = rows
    nib = padded.reshape(units, kw8, 2, 4) & 0xF  # (unit, word, low/high, byte)
    packed = (nib[:, :, 0, :] | (nib[:, :, 1, :] << 4)).astype(np.uint8)
    return pack_rows(packed.view(np.int8).reshape(units, kw8 * 4), block)[0], kw8


def gemm_context(layer: Layer, rows: np.ndarray, block: int, bias: np.ndarray,
                 mult: str, shift: str, rstride: int) -> dict:
    """Numbers for the blocked kernels: packed weights, folded bias, and the
    requantization constants, as literals when one pair serves every channel
    (per-tensor weights) so they cost no loads. INT4 weights (the layer's
    filter is "int4") are packed 8 a word (pack_rows4); kw then counts the
    activation words a row is read in (2 per weight word, wwords)."""
    units, k = rows.shape
    int4 = layer.input(1).dtype == "int4"
    paired, pair_fits, plain_words = None, False, None
    if int4:
        words, wwords = pack_rows4(rows, block)
        kw = 2 * wwords
        # The DSP path sums 16 x w x x (the nibbles taken in place, see
        # pack_rows4) and divides by 16 at the end: exact while that sum
        # cannot wrap, i.e. 16 * 128 * sum|w| < 2^31 (some 130,000 taps).
        if int(np.abs(rows.astype(np.int64)).sum(axis=1).max(initial=0)) * 16 * 128 >= 1 << 31:
            raise layer.refuse("INT4 rows too long for the kernel's 16x scaled accumulator")
    else:
        paired = pairable(rows, block, bias)
        pair_fits = bool(paired) and pair_sums_fit(rows, block, bias, paired)
        words, kw = (pack_pairs if paired else pack_rows)(rows, block)
        plain_words = lambda: pack_rows(rows, block)[0]  # noqa: E731 (reserve_wexp)
        wwords = kw
    by_name = {c.name: c for c in layer.constants}
    m, s = by_name[mult].values, by_name[shift].values
    if np.any(m == np.iinfo(np.int32).min):
        raise layer.refuse("requantization multiplier INT32_MIN")  # tc_requant_fast excludes it
    # Every channel shifting right (the usual case) gets the branch-free
    # tc_requant_right, its shifts stored as positive right-shift counts.
    right = bool(np.all(s <= -1))
    # |accumulator| bound over every int8 input: when twice it still fits in
    # int32, the DSP path's high multiply is one SMMULR of the doubled
    # accumulator (tc_requant_bounded).
    reach = np.abs(np.asarray(bias, np.int64)) + 128 * np.abs(rows.astype(np.int64)).sum(axis=1)
    bounded = right and int(reach.max(initial=0)) < 1 << 30
    # and the output offset inside the rounding term (tc_requant_off): one
    # SMMLAR for the multiply, the rounding and the offset
    offset_in_round = bounded and bool(np.all(m >= 0)) and int(-s.min(initial=-1)) <= 21
    pair = uniform_pair(layer, mult, shift)
    if pair:
        m0, s0 = pair[0], -pair[1] if right else pair[1]
        mult_of, shift_of = (lambda i: str(m0)), (lambda i: str(s0))
    else:
        if right:
            layer.constants.remove(by_name[shift])
            shift = layer.const("right", -s, "uint8_t")
        mult_of, shift_of = (lambda i: f"{mult}[{i}]"), (lambda i: f"{shift}[{i}]")
    act_min, act_max = fused_activation(layer)
    return {
        "unroll": gemm_unroll(layer, kw, layer.output().size * k),
        # reserve_xq, reserve_wexp set these (borrow_ram: other bases than the scratch)
        "xq_off": None, "wexp": False, "wexp_off": None, "xq_base": "scratch", "wexp_base": "scratch",
        "wexp_units": units,  # the channels whose weights are unpacked, with wexp
        "units": units, "k": k, "kw": kw, "wwords": wwords, "int4": int4, "block": block, "paired": paired,
        "pair_fits": pair_fits, "plain_words": plain_words,
        "nfull": units // block, "rest": units % block, "rstride": rstride, "right": right,
        "bounded": bounded, "offset_in_round": offset_in_round, "fuse": None,  # _conv_2d_add sets the residual ADD
        "weights": layer.const("weights", words, "int32_t"),
        "bias": bias_const(layer, "bias_folded", bias),
        "mult": mult_of, "shift": shift_of,
        "out_offset": layer.output().zero_point, "act_min": act_min, "act_max": act_max,
    }


# Activation words per step of the DSP int8 inner loop (its loop overhead
# is then one compare and branch per 16 x np x block MACs).
GEMM_UNROLL = 4
GEMM_FULL_UNROLL = 16
# Below this many MACs a layer's loop overhead is a few hundred instructions
# (IC's 64 -> 10 classifier was 1,952 B of code for 640 MACs)
GEMM_SMALL_MACS = 4096


def gemm_unroll(layer: Layer, kw: int, macs: int) -> int:
    """Row words per step of the inner loop. Short rows unrolled whole (no
    loop counter to keep in a register), but only in a layer that does a
    tenth of the model's MACs or more (any under --optimize speed): each
    copy of the step costs ~60 B of flash, which elsewhere outweighs the
    loop's instructions (VWW: 1,100 B for 0.8% more instructions). A layer
    of few MACs (a classifier head) loops word by word."""
    if macs < GEMM_SMALL_MACS:
        return 1
    hot = layer.storage == "speed" or macs * 10 >= sum(layer_macs(layer.graph, n) for n in layer.graph.nodes)
    return kw if kw <= GEMM_FULL_UNROLL and hot else GEMM_UNROLL


def reserve_xq(layer: Layer, g: dict, used: int, np_: int) -> int:
    """Scratch bytes for a kernel that already uses `used` bytes, plus the
    int8 DSP path's unpacked activations (conv_2d_gemm.c.j2: expand): two
    int32 words per activation word and pixel, 8-byte aligned for LDRD (the
    planner's scratch offsets are). Only for a target with DSP (elsewhere
    the bytes would go unused), in a balanced build only where generate()
    grants the RAM (Layer.spare_ram); INT4 rows unpack in the loop: nothing."""
    if g["int4"] or "dsp" not in layer.features or (layer.storage == "balanced" and layer.spare_ram < 1):
        return used
    g["xq_off"] = align(used)
    return g["xq_off"] + 8 * g["kw"] * np_


# RAM the DSP path of a convolution may spend on its weights unpacked to
# int16 (reserve_wexp): 8 bytes per weight word instead of 4 in flash.
WEXP_BYTES = 8192


def reserve_wexp(layer: Layer, g: dict, used: int, pixel_pairs: int) -> int:
    """Scratch bytes with room for the unpacked weights (conv_2d_gemm.c.j2:
    expand_weights) when they fit WEXP_BYTES and are reused by enough pixel
    pairs: unpacking once costs about 4 instructions a word, and saves 2 a
    word for every pixel pair after. Under --optimize speed always; balanced
    only on RAM the arena has spare (Layer.spare_ram 2: generate() grants it
    where the arena does not grow); never under size. Balanced may unpack
    only the first Layer.wexp_units channels (whole blocks, generate() picks
    the most the arena has room for); the rest unpack in the loop."""
    units = g["units"]
    if layer.storage == "balanced" and layer.wexp_units is not None:
        units = layer.wexp_units
        if units < 1 or units % g["block"] or units >= g["nfull"] * g["block"]:
            return used
    need = 8 * units * g["kw"]
    spend = layer.storage == "speed" or (layer.storage == "balanced" and layer.spare_ram >= 2)
    if g["xq_off"] is None or not spend or need > WEXP_BYTES or pixel_pairs < 4:
        return used
    unpair(layer, g)
    g["wexp"], g["wexp_off"], g["wexp_units"] = True, align(used), units
    return g["wexp_off"] + need


def unpair(layer: Layer, g: dict) -> None:
    """A layer whose weights get unpacked to int16 (expand_weights) stores
    them in pack_rows' order, not paired: the unpacking takes plain words."""
    if g["paired"]:
        i = next(i for i, c in enumerate(layer.constants) if c.name == g["weights"])
        layer.constants[i] = Constant(g["weights"], "int32_t", g["plain_words"]().astype(np.int32))
        g["paired"] = None


# Output channels per step of the blocked convolution (x 2 pixels): 2x2 keeps
# 4 accumulators, 4 unpacked activations and 2 unpacked weights in registers.
CONV_BLOCK = 2


def conv_2d(layer: Layer) -> dict:
    if "residual_add" in layer.options:
        return _conv_2d_add(layer)
    check_io(layer)
    w = layer.input(1)
    if len(w.shape) != 4:
        raise layer.refuse("filter must be 4-D (O, H, W, I)")
    oc, kh, kw, ci = w.shape
    c = layer.input().shape[3]
    if ci < 1 or c % ci or oc % (c // ci):
        raise layer.refuse(f"{c} input channels do not split into groups of {ci} "
                           f"for {oc} filters")
    check_weights(layer, 0, oc)
    geo = geometry(layer, kh, kw, oc)
    mult, shift = channel_multipliers(layer, w.quant.scale, oc)
    if layer.options.get("depthwise_as_conv") and c == 1 and conv_c1.fits(w) and w.dtype == "int8":
        return conv_c1.conv_2d_c1(layer, geo, w, mult, shift)
    if c == ci:
        return _conv_2d_fast(layer, geo, w, mult, shift)
    # conv_2d.c.j2 walks pixels in row-major order (interior and border
    # loops of a row in column order), each pixel's channels reading its
    # window as they go: the plain window bound
    return {
        "inplace_lag": lag(layer, geo),
        **geo, **biases(layer, geo, w.data),
        "in_c": c, "out_c": oc, "filter_c": ci,
        "groups": c // ci, "filters_per_group": oc // (c // ci),
        "int4": w.dtype == "int4",
        "weights": int4_weights(layer, w.data) if w.dtype == "int4" else layer.const("weights", w.data, "int8_t"),
        "mult": mult, "shift": shift,
    }


def _conv_2d_fast(layer: Layer, geo: dict, w, mult: str, shift: str) -> dict:
    """Ungrouped CONV_2D through the blocked kernel (conv_2d_fast.c.j2)."""
    oc, kh, kw, ci = w.shape
    k = kh * kw * ci
    word = 8 if w.dtype == "int4" else 4  # activation bytes per weight word
    kp = -(-k // word) * word
    # In place only for 1x1, stride 1, no padding, whole words per pixel:
    # the last pixel's word loads then stay inside the tensor.
    direct = (kh == kw == 1 and geo["stride_h"] == geo["stride_w"] == 1
              and geo["pad_h"] == geo["pad_w"] == 0 and k % word == 0)
    # Shared window: the two pixels of a pair (same output row: out_w even)
    # have windows sw columns apart that overlap when sw < kw. With the
    # dot product's k taken column by column (filter reordered to O,W,H,I at
    # build time), pixel 1's row is pixel 0's shifted by sw columns, so the
    # copy holds kw + sw columns once instead of 2 * kw: less scratch and
    # fewer bytes copied. Whole words per tap column (in_c % 4 == 0) keep the
    # rows word-sized with no pad bytes between them.
    shared = (not direct and geo["dil_w"] == 1 and geo["stride_w"] < kw and ci % 4 == 0
              and geo["out_w"] % 2 == 0)
    if shared:
        rows = w.data.transpose(0, 2, 1, 3).reshape(oc, k)
        rstride = geo["stride_w"] * kh * ci
    else:
        rows = w.data.reshape(oc, k)
        rstride = ci if direct else kp
    bias = folded_bias(layer, w.data, 2, geo["in_offset"])
    g = gemm_context(layer, rows, CONV_BLOCK, bias, mult, shift, rstride)
    ctx = {**geo, "in_c": ci, "out_c": oc, "g": g, "im2col": not direct, "shared": shared,
           "phases": None, "single_g": None,  # borrow_ram sets these
           "pixels": geo["batches"] * geo["out_h"] * geo["out_w"],
           "template": "kernels/conv_2d_fast.c.j2", "shared_args": True}
    if shared:
        # pixel 1's row is read up to its whole words (kp bytes, INT4: k + 4)
        used = (kw + geo["stride_w"]) * kh * ci + kp - k
    else:
        used = 0 if direct else 2 * kp
    used = reserve_xq(layer, g, used, 2 if ctx["pixels"] >= 2 else 1)
    used = reserve_wexp(layer, g, used, ctx["pixels"] // 2)
    if used:
        ctx["scratch_bytes"] = used
    # Pixels go in pairs, in row-major order. The window copy reads both
    # windows of a pair into scratch before the pair's first write; the
    # direct path reads the pair's input rows again for every channel block,
    # between writes of the pair, so the pair's rows must outlive them.
    ctx["inplace_lag"] = lag(layer, geo, block=2, read_first=not direct)
    return ctx


def _conv_2d_add(layer: Layer) -> dict:
    """A CONV_2D with the residual ADD that reads its output folded in
    (tinycomp/passes/fuse.py). Both halves come from their own contexts on
    the original nodes (constants land in this layer's list). Per output
    element the blocked kernel requantizes its accumulator to the conv's int8
    value v (TFLM rounds and saturates there too), then does add_fast's
    arithmetic on v and the skip value s (in1): t_conv[v] + t_skip[s], one
    output rescale, the ADD's clamp. Build-time folds that make it cheaper
    than the two kernels apart: the conv's activation clamp is folded into
    t_conv (t_conv[v] = T[clamp(v)] for every int8 v), and both tables are
    doubled so the sum is already SMMULR's 2 * sum (add_fast's bound keeps
    |2 * sum| < 2^31)."""
    from .elementwise import add

    fused = layer.options["residual_add"]
    conv, node = fused["conv"], fused["add"]
    # the fused layer's aim, core and RAM grant hold for both halves
    conv_layer = Layer(layer.graph, conv, layer.constants, storage=layer.storage, features=layer.features,
                       spare_ram=layer.spare_ram, wexp_units=layer.wexp_units)
    ctx = conv_2d(conv_layer)
    a = add(Layer(layer.graph, node, layer.constants, storage=layer.storage, features=layer.features))
    if ctx.get("template") != "kernels/conv_2d_fast.c.j2" or a.get("template") != "kernels/add_fast.c.j2":
        raise layer.refuse("residual ADD folded into a convolution that cannot take it")
    first = node.inputs[0] == conv.outputs[0]  # the conv's value is the ADD's first operand
    by_name = {k.name: k for k in layer.constants}
    t_conv = by_name[a["a_table"] if first else a["b_table"]]
    t_skip = by_name[a["b_table"] if first else a["a_table"]]
    for k in (t_conv, t_skip):
        layer.constants.remove(k)
    g = ctx["g"]
    v = np.clip(np.arange(-128, 128), g["act_min"], g["act_max"]) + 128
    g["fuse"] = {
        "t_conv": layer.const("add_conv_table", 2 * t_conv.values.astype(np.int64)[v], "int32_t"),
        "t_skip": layer.const("add_skip_table", 2 * t_skip.values.astype(np.int64), "int32_t"),
        "mult": a["out_mult"], "rnd": a["out_rnd"], "e": a["out_e"],
        "act_min": a["act_min"], "act_max": a["act_max"],
    }
    g["act_min"], g["act_max"] = -128, 127  # folded into t_conv
    # Pixel 0 of a pair is written as its channels are computed, each output
    # byte right after its skip byte was read, in increasing order; pixel 1's
    # bytes go to a stack buffer and out only after the pair's channels
    # (conv_2d_fast.c.j2): no write of the pair precedes a skip read of the
    # pair at a higher index, so out may lie anywhere at or below in1 (lag 0).
    # On in0 the conv's own order is unchanged: its own lag.
    direct = not ctx["im2col"]
    ctx["inplace_lag"] = lag(conv_layer, ctx, block=2, read_first=not direct)
    ctx["inplace_lags"] = {1: 0}
    return ctx


def borrow_ram(layer: Layer, ctx: dict, tail, head) -> None:
    """Unpacked rows and weights (the spare_ram 1 and 2 paths) on arena bytes
    that hold nothing yet or nothing any more while this layer runs, for a
    balanced DSP build whose arena has no bytes to spare (no grant): the
    arena does not grow by a byte.

    tail = (arena offset of the output, free), when the output is in the
    arena: pixel pairs are written in order, so the output's last bytes hold
    nothing until the pairs that write them; the regions sit at the output's
    end and serve the pairs before those, the rest run without them.
    head = (arena offset of in0, free), when in0 dies here: a pair reads no
    input pixel below read_floor, so in0's first bytes hold nothing needed
    once the pairs have passed them; the regions sit at in0's start and serve
    the pairs after that. free(start, end): no other live tensor and not the
    layer's scratch holds those arena bytes (generate._borrow_ram).

    The pairs are cut into phases of one level each (0: rows unpacked in the
    loop, 1: rows unpacked once per pair, 2: weights unpacked too, once, at
    the start of their phase); a layout is kept only where its estimated
    instructions saved beat the weights' unpacking."""
    g = ctx["g"]
    if g["int4"] or g["xq_off"] is not None or "dsp" not in layer.features or layer.storage != "balanced":
        return
    pixels, oc, ic = ctx["pixels"], ctx["out_c"], ctx["in_c"]
    if pixels < 2:
        return
    kw, units = g["kw"], g["units"]
    xbytes, wbytes = 16 * kw, 8 * units * kw
    blocks = g["nfull"] + g["rest"]
    # per pair and activation word: a pixel word unpacked once instead of per
    # block (4 instructions a block, the unpacking about 9), then a weight word
    # loaded unpacked instead of unpacked (3 a block); the weights' unpacking
    # costs about 5 a word once
    gain = (0, kw * (4 * blocks - 9), kw * (4 * blocks - 9 + 3 * g["nfull"]))
    wcost = 5 * units * kw
    starts = list(range(0, pixels - 1, 2)) + ([pixels - 1] if pixels % 2 else [])
    ends = [min(px + 2, pixels) for px in starts]  # a step's pixels: [px, end)
    options = []
    # paired weights: rows only (unpacking the weights would unpair every
    # phase's for one instruction in 13, and add a phase's copy of the loop)
    weights = not g["paired"]
    if tail:
        o, free = tail
        xq = align_down(o + pixels * oc - xbytes)
        for wx in (None, align_down(xq - wbytes)) if weights else (None,):
            regions = [(xq, xbytes)] + ([(wx, wbytes)] if wx is not None else [])
            if any(r < o or not free(r, r + n) for r, n in regions):
                continue
            # a step may use a region while all its writes lie below it
            levels = [sum(o + e * oc <= r for r, n in regions) if o + e * oc <= xq else 0 for e in ends]
            options.append(("out", o, xq, wx, levels))
    if head:
        i, free = head
        floor = read_floor((ctx["batches"], ctx["in_h"], ctx["in_w"], ic),
                           (ctx["batches"], ctx["out_h"], ctx["out_w"], oc),
                           (ctx["k_h"], ctx["k_w"]), (ctx["stride_h"], ctx["stride_w"]),
                           (ctx["pad_h"], ctx["pad_w"]), (ctx["dil_h"], ctx["dil_w"]))
        in_bytes = ctx["batches"] * ctx["in_h"] * ctx["in_w"] * ic
        xq = i
        for wx in (None, i + align(xbytes)) if weights else (None,):
            regions = [(xq, xbytes)] + ([(wx, wbytes)] if wx is not None else [])
            if any(r + n > i + in_bytes or not free(r, r + n) for r, n in regions):
                continue
            # a step may use a region once no read from it on lies inside it
            levels = [sum(i + int(floor[px]) * ic >= r + n for r, n in regions)
                      if i + int(floor[px]) * ic >= xq + xbytes else 0 for px in starts]
            options.append(("((int8_t *)in0)", i, xq, wx, levels))
    best, best_gain = None, 0
    for opt in options:
        levels = opt[4]
        total = sum(gain[v] for v in levels) - (wcost if 2 in levels else 0)
        if total > best_gain:
            best, best_gain = opt, total
    if best is None:
        return
    base, at, xq, wx, levels = best
    if 2 in levels:
        unpair(layer, g)
    variants = [dict(g), {**g, "xq_off": xq - at, "xq_base": base}]
    if wx is not None:
        variants.append({**variants[1], "wexp": True, "wexp_off": wx - at, "wexp_base": base})
    phases = []
    for px, v in zip(starts, levels):
        if px == pixels - 1 and pixels % 2:
            # the weights are unpacked only at the start of a level-2 phase
            ctx["single_g"] = variants[1 if v == 2 and phases[-1]["level"] != 2 else v]
        elif phases and phases[-1]["level"] == v:
            phases[-1]["end"] = px + 1
        else:
            phases.append({"level": v, "start": px, "end": px + 1, "g": variants[v],
                           "expand_w": v == 2})
    ctx["phases"] = phases
