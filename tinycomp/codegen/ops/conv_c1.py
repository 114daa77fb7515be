"""CONV_2D with one input channel (and so the single-channel depthwise layers
of audio models, which passes/depthwise_as_conv.py turns into CONV_2D).

With one input channel a window is only KH*KW taps, too short for the
blocked kernel's per-window overhead (a copy into scratch, the row padded to
a multiple of four). Here each output pixel gathers its window once into
registers, minus the input zero point (0 outside the input: TFLM skips
those taps, so no bias folding is needed), and every filter takes its dot
product with it, unrolled: on cores with DSP two taps per SMLAD against
filters packed as int16 pairs at build time. QEMU, M = 8: an386 4.62 / 2.80 /
2.88 instructions per MAC (3x3 / 10x4 s2 / 5x5), against 5.27 / 2.66 /
3.06 through the blocked CONV_2D kernel; an385 6.83 / 4.42 / 4.49 against
9.75 / 5.42 / 6.22. Used for the depthwise layers rewritten as CONV_2D with
at most MAX_TAPS taps (a plain one-channel CONV_2D, such as KWS's first
layer with 64 filters, keeps the blocked kernel, which the benchmarks
measure).
"""
from __future__ import annotations

import numpy as np

from ..layer import Layer
from .common import lag


def pack_pairs(rows: np.ndarray) -> np.ndarray:
    """Int8 rows (filters, taps) as int32 words of two int16 taps each, the
    even tap in the low half (by value, so on any host), odd rows padded with 0."""
    filters, taps = rows.shape
    padded = np.zeros((filters, taps + taps % 2), np.int64)
    padded[:, :taps] = rows
    lo, hi = padded[:, 0::2] & 0xFFFF, padded[:, 1::2] & 0xFFFF
    words = lo | (hi << 16)
    return np.where(words >= 1 << 31, words - (1 << 32), words).reshape(-1)


# Taps held in registers and unrolled. At 40 taps (10x4) the blocked kernel
# is as fast on a Cortex-M4 (2.66 against 2.80 instructions per MAC) and
# the unrolled code 1.8 KB larger, so longer windows stay there.
MAX_TAPS = 32


def fits(w) -> bool:
    oc, kh, kw, ci = w.shape
    return ci == 1 and kh * kw <= MAX_TAPS


def conv_2d_c1(layer: Layer, geo: dict, w, mult: str, shift: str) -> dict:
    oc, kh, kw, _ = w.shape
    taps = kh * kw
    rows = w.data.reshape(oc, taps)
    bias = layer.input(2).data.reshape(-1) if layer.has_input(2) else np.zeros(oc, np.int64)
    dy = [ky * geo["dil_h"] for ky in range(kh) for _ in range(kw)]
    dx = [kx * geo["dil_w"] for _ in range(kh) for kx in range(kw)]
    # tc_requant_bounded needs a right shift on every channel and |acc| < 2^30
    shifts = next(k.values for k in layer.constants if k.name == shift)
    bound = int(np.abs(rows.astype(np.int64)).sum(axis=1).max()) * 255 + int(np.abs(bias).max(initial=0))
    right = None
    if shifts.max() <= -1 and bound < 1 << 30:
        right = layer.const("right", -shifts, "uint8_t")
    return {
        **geo,
        "template": "kernels/conv_2d_c1.c.j2",
        "out_c": oc, "taps": taps, "pairs": (taps + 1) // 2,
        "dy": dy, "dx": dx, "offsets": [a * geo["in_w"] + b for a, b in zip(dy, dx)], "right": right,
        "in_zp": -geo["in_offset"],
        "weights": layer.const("weights", rows, "int8_t"),
        "weight_pairs": layer.const("weight_pairs", pack_pairs(rows), "int32_t"),
        "bias": layer.const("bias", bias, "int32_t"),
        "mult": mult, "shift": shift,
        # each pixel's window is gathered before any of its outputs is written
        "inplace_lag": lag(layer, geo, read_first=True),
    }
