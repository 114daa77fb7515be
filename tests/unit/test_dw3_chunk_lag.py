"""The shared 3x3 depthwise DSP kernel runs a row's pixels in chunks, each
group of 4 channels over the whole chunk before the next group
(depthwise_conv_2d_dsp3.c.j2: tc_dw3_px; ops/depthwise.py: DW3_CHUNK), so
its in-place lag is window_lag's for blocks of DW3_CHUNK pixels starting at
every row. A byte-level replay of that order (reads straight from the input,
as interior rows do) over every output placement from the declared lag on:
no window reads a byte an output already took; with the pixel-at-a-time
lag some placements do."""
from __future__ import annotations

import numpy as np

from tinycomp.codegen.ops.depthwise import DW3_CHUNK
from tinycomp.passes.memory import window_lag


def _clobbers(in_shape, out_shape, stride, pad, d, chunk) -> bool:
    """Whether the chunked order reads an input byte after an output byte
    (placed d bytes below the input) has been written over it."""
    n, h, w, c = in_shape
    _, oh, ow, _ = out_shape
    written = np.zeros(n * h * w * c, bool)
    for b in range(n):
        for oy in range(oh):
            for ox0 in range(0, ow, chunk):
                for g in range(0, c, 4):
                    for ox in range(ox0, min(ox0 + chunk, ow)):
                        for ky in range(3):
                            for kx in range(3):
                                iy, ix = oy * stride[0] - pad[0] + ky, ox * stride[1] - pad[1] + kx
                                at = ((b * h + iy) * w + ix) * c + g
                                if 0 <= iy < h and 0 <= ix < w and written[at:at + 4].any():
                                    return True
                        at = ((b * oh + oy) * ow + ox) * c + g - d
                        written[max(at, 0):max(at + 4, 0)] = True
    return False


def _geometry(h, w, c, s, padding):
    if padding == "VALID":
        (oh, ow), pad = ((h - 3) // s + 1, (w - 3) // s + 1), (0, 0)
    else:
        oh, ow = -(-h // s), -(-w // s)
        pad = (max((oh - 1) * s + 3 - h, 0) // 2, max((ow - 1) * s + 3 - w, 0) // 2)
    return (1, h, w, c), (1, oh, ow, c), (s, s), pad


def test_chunked_order_is_safe_from_its_lag_on():
    unsafe_below = 0
    for h, w, c, s, padding in [(6, 19, 8, 1, "VALID"), (6, 21, 12, 2, "VALID"), (5, 11, 16, 1, "SAME"),
                                (7, 13, 4, 1, "SAME"), (4, 9, 8, 1, "VALID"), (3, 8, 4, 1, "VALID")]:
        i, o, st, pad = _geometry(h, w, c, s, padding)
        lag = window_lag(i, o, (3, 3), st, pad, block=DW3_CHUNK, row_blocks=True)
        for d in range(lag, lag + 4 * c + 1, 4):  # the planner may place the output lower still
            assert not _clobbers(i, o, st, pad, d, DW3_CHUNK), (h, w, c, s, padding, d)
        pixel_lag = window_lag(i, o, (3, 3), st, pad)
        assert not _clobbers(i, o, st, pad, pixel_lag, 1)
        unsafe_below += any(_clobbers(i, o, st, pad, d, DW3_CHUNK) for d in range(pixel_lag, lag, 4))
    assert unsafe_below >= 4  # the chunk's share of the lag is needed
