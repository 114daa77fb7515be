"""How few bytes a model's constants can take while every output stays
bit-exact with TFLM, for int8 weights stored whole (8 bits each): beside
TFLM's "weights + biases" (int8 filters plus int32 biases), the issue's
yardstick for our constants.

    python -m benchmarks.floor [--models kws,vww,ic,ad]

Per output channel the firmware needs its bias and its requantization (a
multiplier and a shift). The figure counts, per channel:
- bias: the bits of its two's-complement width (no length field counted);
- multiplier: the fewest significant bits of any multiplier that gives
  TFLM's output (requantized, zero point added, clamped to the fused
  activation) for every accumulator the channel can produce (its bias plus
  any int8 input against its weights), less the leading bit, which is always
  1. The multipliers that agree with TFLM's over that range form an interval
  around it (the output is monotone in the multiplier), so the one with the
  fewest bits is the multiple of 2^(31 - k) nearest below or above it for the
  least k that has one inside: found by bisection on k;
- shift: enough bits to tell apart the layer's shifts.
Layers whose channels share one multiplier and shift (per-tensor weights)
pay for them once. Only fixed-width fields per channel are counted, so an
entropy coder over all channels' fields could go a fraction of a bit lower
per field; going below the weights' 8 bits means decoding them at run time.
"""
from __future__ import annotations

import click
import numpy as np

from benchmarks.bench import model_bytes, pick_source, weights_and_biases
from tinycomp.codegen.layer import Layer
from tinycomp.codegen.ops.common import channel_multipliers, fused_activation
from tinycomp.reference.gemmlowp import multiply_by_quantized_multiplier

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def requantized(acc: np.ndarray, mult: int, shift: int, zp: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(multiply_by_quantized_multiplier(acc, mult, shift) + zp, lo, hi)


def multiplier_bits(acc_lo: int, acc_hi: int, mult: int, shift: int, zp: int, lo: int, hi: int) -> int:
    """Fewest significant bits of a multiplier with TFLM's outputs for every
    accumulator in [acc_lo, acc_hi] (see the module's docstring)."""
    if mult == 0:  # a dead channel: its output is a constant
        return 1
    real = mult * 2.0 ** (shift - 31)
    # outside [a, b] the output is clamped for every multiplier within 1% of
    # this one: only the accumulators between need comparing
    ends = [(lo - zp - 2) / real * f for f in (0.99, 1.01)] + [(hi - zp + 2) / real * f for f in (0.99, 1.01)]
    a = max(acc_lo, int(np.floor(min(ends))) - 2)
    b = min(acc_hi, int(np.ceil(max(ends))) + 2)
    if a > b:
        return 1
    acc = np.arange(a, b + 1, dtype=np.int64)
    want = requantized(acc, mult, shift, zp, lo, hi)

    def fits(k: int) -> bool:
        step = 1 << (31 - k)
        below = mult // step * step
        return any(m >= 1 << 30 and m < 1 << 31
                   and np.array_equal(requantized(acc, m, shift, zp, lo, hi), want)
                   for m in (below, below + step))

    low, high = 1, 31  # fits(31): TFLM's own multiplier
    while low < high:
        k = (low + high) // 2
        low, high = (low, k) if fits(k) else (k + 1, high)
    return low


def layer_floor(graph, node) -> tuple[int, int, int, int]:
    """(output channels, weight bytes, bits of the biases, bits of the requantization)."""
    layer = Layer(graph, node)
    w = graph.tensor(node.inputs[1])
    depthwise = node.op.value == "DEPTHWISE_CONV_2D"
    channels = w.shape[-1] if depthwise else w.shape[0]
    rows = (w.data.reshape(-1, channels).T if depthwise else w.data.reshape(channels, -1)).astype(np.int64)
    bias = (graph.tensor(node.inputs[2]).data.astype(np.int64) if len(node.inputs) > 2 and node.inputs[2] >= 0
            else np.zeros(channels, np.int64))
    mult_name, shift_name = channel_multipliers(layer, w.quant.scale, channels)
    values = {c.name: c.values for c in layer.constants}
    mult, shift = values[mult_name].astype(np.int64), values[shift_name].astype(np.int64)
    act_min, act_max = fused_activation(layer)
    x_lo, x_hi = -128 - layer.input().zero_point, 127 - layer.input().zero_point
    zp = layer.output().zero_point
    bias_bits = int(sum(int(abs(b)).bit_length() + 1 for b in bias))
    if len(set(mult.tolist())) == 1 and len(set(shift.tolist())) == 1:
        return channels, w.size, bias_bits, 32 + 8  # one pair for the layer
    shift_bits = int(np.ceil(np.log2(len(set(shift.tolist())))))
    mult_bits = 0
    for c in range(channels):
        lo_sum = int(np.minimum(rows[c] * x_lo, rows[c] * x_hi).sum())
        hi_sum = int(np.maximum(rows[c] * x_lo, rows[c] * x_hi).sum())
        mult_bits += multiplier_bits(int(bias[c]) + lo_sum, int(bias[c]) + hi_sum, int(mult[c]), int(shift[c]),
                                     zp, act_min, act_max) - 1
    return channels, w.size, bias_bits, mult_bits + shift_bits * channels


@click.command()
@click.option("--models", "names", default="kws,vww,ic,ad", show_default=True)
def main(names):
    """The fewest bytes of weights, biases and requantization that stay bit-exact, beside TFLM's w+b."""
    from tinycomp.frontends.tflite import parse_tflite

    source = pick_source("reference")
    click.echo(f"{'model':<6}{'channels':>9}{'weights B':>11}{'bias bits/ch':>14}{'requant bits/ch':>17}"
               f"{'floor B':>10}{'TFLM w+b B':>12}{'floor/w+b':>11}")
    for name in names.split(","):
        graph = parse_tflite(model_bytes(name, source), name=name)
        channels, weights, bias_bits, requant_bits = np.sum(
            [layer_floor(graph, node) for node in graph.nodes if node.op.value in WEIGHTED], axis=0)
        floor = weights + -(-(bias_bits + requant_bits) // 8)
        tflm = weights_and_biases(graph)
        click.echo(f"{name:<6}{channels:>9,}{weights:>11,}{bias_bits / channels:>14.1f}"
                   f"{requant_bits / channels:>17.1f}{floor:>10,}{tflm:>12,}{floor / tflm:>10.3f}x")
    click.echo(f"models: {source}")


if __name__ == "__main__":
    main()
