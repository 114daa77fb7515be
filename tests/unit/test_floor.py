"""benchmarks.floor: the fewest significant bits of a multiplier that keeps
every output of a channel, checked against a brute-force search."""
import numpy as np

from benchmarks.floor import multiplier_bits, requantized


def _any_with_bits(k, acc, want, shift, zp, lo, hi):
    step = 1 << (31 - k)
    return any(np.array_equal(requantized(acc, m, shift, zp, lo, hi), want)
               for m in range(1 << 30, 1 << 31, step))


def test_multiplier_bits_is_the_least_that_keeps_the_outputs():
    rng = np.random.default_rng(4)
    for _ in range(4):
        mult = int(rng.integers(1 << 30, 1 << 31))
        shift = int(rng.integers(-9, -5))
        zp = int(rng.integers(-20, 20))
        lo, hi = (-128, 127) if rng.random() < 0.5 else (zp, 127)  # none or a fused RELU
        acc_lo, acc_hi = sorted(int(v) for v in rng.integers(-2500, 2500, 2))
        acc = np.arange(acc_lo, acc_hi + 1)
        want = requantized(acc, mult, shift, zp, lo, hi)
        k = multiplier_bits(acc_lo, acc_hi, mult, shift, zp, lo, hi)
        assert 1 < k < 16
        assert _any_with_bits(k, acc, want, shift, zp, lo, hi)
        assert not _any_with_bits(k - 1, acc, want, shift, zp, lo, hi)
