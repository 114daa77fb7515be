"""Paired GEMM weights (conv.py: pack_pairs, pairable): the arithmetic the
DSP kernels (conv_2d_gemm.c.j2: pair_*) do on the packed words, emulated
here with SMLAD's and SXTB16's definitions, gives both rows' dot products
exactly, with the odd rows' biases summed in ("early") or added after
("late"); rows the trick cannot take are refused."""
from __future__ import annotations

import numpy as np

from tinycomp.codegen.ops.conv import pack_pairs, pack_rows, pairable


def _halves(word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = word.astype(np.int64) & 0xFFFFFFFF
    lo, hi = u & 0xFFFF, u >> 16
    return np.where(lo >= 1 << 15, lo - (1 << 16), lo), np.where(hi >= 1 << 15, hi - (1 << 16), hi)


def _sxtb16(word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = word.astype(np.int64) & 0xFFFFFFFF
    b0, b2 = u & 0xFF, (u >> 16) & 0xFF
    return np.where(b0 >= 128, b0 - 256, b0), np.where(b2 >= 128, b2 - 256, b2)


def _wrap(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _paired_dots(rows: np.ndarray, x: np.ndarray, block: int, bias: np.ndarray) -> np.ndarray:
    """The kernel's sums for one pixel: per full block, pairs (b, b + 1)."""
    units, k = rows.shape
    words, kw = pack_pairs(rows, block)
    late = pairable(rows, block, bias) == "late"
    xs = np.zeros(kw * 4, np.int64)
    xs[:k] = x
    even, odd = xs[0::2].reshape(kw, 2), xs[1::2].reshape(kw, 2)  # SXTB16 of each activation word
    out = np.zeros(units, np.int64)
    for blk in range(units // block):
        w = words[blk * block * kw:(blk + 1) * block * kw].reshape(kw, block)
        for b in range(0, block, 2):
            c = blk * block + b
            a = _wrap(int(bias[c]) + (0 if late else 256 * int(bias[c + 1])))
            d = int(bias[c])
            for j in range(kw):
                for word, xv in ((w[j, b], even[j]), (w[j, b + 1], odd[j])):
                    lo, hi = _halves(np.array([word]))
                    a = _wrap(a + int(xv[0] * lo[0] + xv[1] * hi[0]))
                    r0, r2 = _sxtb16(np.array([word]))
                    d = _wrap(d + int(xv[0] * r0[0] + xv[1] * r2[0]))
            out[c], out[c + 1] = d, (_wrap(a - d) >> 8) + (int(bias[c + 1]) if late else 0)
    return out


def test_pairs_give_both_rows_exactly():
    rng = np.random.default_rng(3)
    for units, k, block in ((4, 21, 4), (6, 64, 2), (8, 9, 4), (2, 3, 2)):
        rows = rng.integers(-127, 128, size=(units, k)).astype(np.int8)
        rows[0, :3] = -127  # borrows: r < 0 under s = -127
        rows[1, :3] = -127
        for bias, mode in ((rng.integers(-50_000, 50_000, size=units), "early"),
                           (np.full(units, -(1 << 30)) + np.arange(units), "late")):  # pruned channels' biases
            assert pairable(rows, block, bias) == mode
            for x in (rng.integers(-128, 128, size=k), np.full(k, -128), np.full(k, 127)):
                want = bias + rows.astype(np.int64) @ x
                full = units // block * block
                assert np.array_equal(_paired_dots(rows, x, block, bias)[:full], want[:full])


def test_pairs_keep_the_bytes_and_the_remainder():
    rng = np.random.default_rng(4)
    rows = rng.integers(-127, 128, size=(7, 10)).astype(np.int8)
    paired, kw = pack_pairs(rows, 2)
    plain, kw2 = pack_rows(rows, 2)
    assert kw == kw2 and paired.size == plain.size
    assert np.array_equal(paired[-kw:], plain[-kw:])  # the lone last row as pack_rows has it


def test_rows_the_trick_cannot_take():
    rng = np.random.default_rng(5)
    rows = rng.integers(-127, 128, size=(4, 16)).astype(np.int8)
    bias = np.zeros(4, np.int64)
    assert pairable(rows, 2, bias) == "early"
    assert not pairable(rows, 3, bias)  # odd block
    assert not pairable(rows[:1], 2, bias[:1])  # no full block
    low = rows.copy()
    low[2, 5] = -128  # a high byte s - 1 would leave the byte
    assert not pairable(low, 2, bias)
    # s's sum 2^23 or more for some input: rows of 127s, 600 long
    assert not pairable(np.full((2, 600), 127, np.int8), 2, np.zeros(2))
    assert pairable(np.full((2, 500), 127, np.int8), 2, np.zeros(2)) == "early"
