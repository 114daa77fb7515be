"""The Markdown report: what each compression step cost and bought."""
from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import ideal_snr_db


def largest_device_drop(rows: list[dict]) -> tuple[dict, float] | None:
    """(row, dB) where the on-device SNR falls most from the tensor before it: in a
    chain, the layer that adds the most error (weights, bias or requantization)."""
    best = None
    for prev, row in zip(rows, rows[1:]):
        lost = prev["device_snr_db"] - row["device_snr_db"]
        if lost > 0 and (best is None or lost > best[1]):
            best = (row, lost)
    return best


def _ratio(predicted: float, measured: float) -> str:
    return f"{predicted / measured:.2f}x" if measured > 0 else "-"


@dataclass
class Step:
    name: str
    accuracy: float | None
    params: int
    macs: int
    note: str = ""


def _short(tensor: str) -> str:
    """A converter's tensor name without the ';'-joined names of the ops it fused."""
    return tensor.split(";")[0]


@dataclass
class Report:
    model: str
    steps: list[Step] = field(default_factory=list)
    weight_rows: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    int8_accuracy: float | None = None
    # --weight-bits 4: (layer, exact) per filter written as INT4 (exact: on QAT's 16 levels)
    int4_layers: list[tuple[str, bool]] = field(default_factory=list)
    kl_float_int8: float | None = None
    int16_tensors: list[str] = field(default_factory=list)  # --int16: the activations kept in int16
    int16_rows: list[dict] = field(default_factory=list)    # int16.choose: every candidate's measured error
    activation_rows: list[dict] = field(default_factory=list)  # analysis.activation_report
    activation_samples: int = 0
    sensitivity: dict | None = None  # sensitivity.layer_sensitivity; None: not computed
    over_budget: str | None = None  # why the result missed --max-drop (then no model is written)
    search: list[str] = field(default_factory=list)  # search.table's lines, when the search chose this model
    distill_temperature: float | None = None  # fine-tuning was taught by the input model at this T
    prediction: dict | None = None  # noise.predict: the additive-noise model's figures
    measured: dict | None = None    # noise.measured: the same figures from the INT8 model

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def markdown(self) -> str:
        lines = [f"# Compression report: {self.model}", "", "## Steps", "",
                 "| step | test accuracy | change | parameters | MACs | note |",
                 "|---|---|---|---|---|---|"]
        lines[1:1] = self.search
        first = self.steps[0].accuracy if self.steps else None
        for s in self.steps:
            acc = "-" if s.accuracy is None else f"{100 * s.accuracy:.2f}%"
            delta = "-" if s.accuracy is None or first is None else f"{100 * (s.accuracy - first):+.2f} pt"
            lines.append(f"| {s.name} | {acc} | {delta} | {s.params:,} | {s.macs:,} | {s.note} |")
        if self.distill_temperature is not None:
            from .distill import ALPHA

            lines += ["", f"Fine-tuning was distilled from the input model: loss = {ALPHA:g} x cross-entropy "
                      f"to the labels + {1 - ALPHA:g} x T² x cross-entropy to its outputs softened at "
                      f"T = {self.distill_temperature:g}."]
        if self.int4_layers:
            lines += ["", f"INT4 weights (TFLite's packed INT4, int8 activations) in {len(self.int4_layers)} "
                          "layers: " + ", ".join(f"`{n}`" + ("" if exact else " (rounded from int8)")
                                                  for n, exact in self.int4_layers)]
        if self.int16_rows:
            lines += self._int16()
        if self.int8_accuracy is not None:
            what = "INT8 activations, INT4 weights" if self.int4_layers else "INT8"
            what += ", int16 where kept" if self.int16_tensors else ""
            lines += ["", f"{what} (converted) test accuracy: {100 * self.int8_accuracy:.2f}%"]
        if self.over_budget:
            lines += ["", f"**Over the accuracy budget, no model written:** {self.over_budget}"]
        if self.kl_float_int8 is not None:
            lines += [f"KL divergence, float vs INT8 output distribution: {self.kl_float_int8:.5f} nats"]
        if self.weight_rows:
            rule = ideal_snr_db(8)
            lines += ["", "## Weights", "",
                      f"Quantization SNR against the 6.02·B + 1.76 = {rule:.2f} dB rule for B = 8 "
                      "(layers short of it are flagged).", "",
                      "| layer | weights | sparsity | SNR dB | short of rule | entropy bits/weight |",
                      "|---|---|---|---|---|---|"]
            for r in self.weight_rows:
                lines.append(f"| {r['layer']} | {r['weights']:,} | {100 * r['sparsity']:.1f}% | "
                             f"{r['snr_db']:.1f} | {'yes' if r['short_of_rule'] else 'no'} | "
                             f"{r['entropy_bits']:.2f} |")
            short = [f"{r['layer']} ({r['snr_db']:.1f} dB)" for r in self.weight_rows if r["short_of_rule"]]
            lines += ["", f"Short of the rule: {', '.join(short) if short else 'none'}."]
        if self.activation_rows:
            lines += self._activations()
        if self.prediction is not None and self.measured is not None:
            lines += self._prediction()
        lines += self._sensitivity()
        if self.totals:
            t = self.totals
            lines += ["", "## Size in bits", "",
                      "| storage | bits | ratio vs float32 |", "|---|---|---|",
                      f"| float32 | {t['float_bits']:,} | 1.00x |",
                      f"| dense int8 | {t['dense_int8_bits']:,} | {t['ratio_dense']:.2f}x |",
                      f"| sparse int8 estimate (a presence bit per weight + non-zeros) | {t['sparse_int8_bits']:,} | {t['ratio_sparse']:.2f}x |",
                      f"| entropy bound | {int(t['entropy_total_bits']):,} | {t['ratio_entropy']:.2f}x |"]
        return "\n".join(lines) + "\n"

    def _int16(self) -> list[str]:
        base = self.int16_rows[0]["int8_error"]
        lines = ["", "## int16 activations", "",
                 "Each activation tensor that can stay int16 (its writer and readers run TFLite's 16x8 "
                 "kernels, with QUANTIZE to and from the int8 rest), tried alone: the mean squared error of "
                 f"the outputs against the float model's on held-out samples (tensors by the first of their names) (all int8: {base:.3g}). Kept: "
                 f"{', '.join(f'`{_short(n)}`' for n in self.int16_tensors) or 'none (no tensor lowered the error)'}.",
                 "", "| tensor | output error with it int16 | change | kept |", "|---|---|---|---|"]
        for r in self.int16_rows:
            lines.append(f"| `{_short(r['tensor'])}` | {r['error']:.3g} | {100 * (r['error'] - base) / max(base, 1e-30):+.1f}% | "
                         f"{'yes' if r['tensor'] in self.int16_tensors else ''} |")
        return lines

    def _activations(self) -> list[str]:
        rule = ideal_snr_db(8)
        lines = ["", "## Activations", "",
                 f"Quantization SNR of each tensor of the INT8 model on {self.activation_samples} test samples, "
                 f"against the {rule:.2f} dB rule. *SNR* is the tensor's own rounding and clipping: its float "
                 "values through the model's scale and zero point. *On device* compares the float values with "
                 "what the INT8 model computed there (TFLite Micro reference kernels, which the build equals bit "
                 "for bit), so it also carries every earlier layer's error: a large gap between the two means "
                 "the damage came from upstream. *Clipped*: values outside the representable range.", "",
                 "| layer | op | scale | zero point | range | clipped | SNR dB | on device dB | short of rule |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self.activation_rows:
            lo, hi = r["range"]
            lines.append(f"| {r['layer']} | {r['op']} | {r['scale']:.5g} | {r['zero_point']} | "
                         f"[{lo:.3g}, {hi:.3g}] | {100 * r['clipped']:.2f}% | {r['snr_db']:.1f} | "
                         f"{r['device_snr_db']:.1f} | {'yes' if r['short_of_rule'] else 'no'} |")
        short = [f"{r['layer']} ({r['snr_db']:.1f} dB)" for r in self.activation_rows if r["short_of_rule"]]
        lines += ["", f"Short of the rule: {', '.join(short) if short else 'none'}."]
        drop = largest_device_drop(self.activation_rows)
        if drop is not None:
            r, lost = drop
            lines += [f"Largest loss on the device: {r['layer']} ({r['op']}), {lost:.1f} dB below the tensor "
                      f"before it (its own rounding: {r['snr_db']:.1f} dB); the INT8 error grows most there."]
        return lines

    def _prediction(self) -> list[str]:
        p, m = self.prediction, self.measured
        measured_db = {r["layer"]: r["device_snr_db"] for r in self.activation_rows}
        lines = ["", "## Predicted against measured", "",
                 f"Before the INT8 model runs, the additive-noise model predicts its error: every rounding is "
                 "noise of variance step²/12 (activations at their tensor's scale, weights at their channel's), "
                 "carried through the float layers and summed. Measured: the INT8 model on the same "
                 f"{self.activation_samples} samples (TFLite Micro's kernels, which the build equals bit for bit). "
                 "Not modelled: clipping, and roundings that are not independent.", "",
                 "| tensor | predicted SNR dB | measured SNR dB | error dB |", "|---|---|---|---|"]
        for r in p["layers"]:
            if r["layer"] in measured_db:
                got = measured_db[r["layer"]]
                lines.append(f"| {r['layer']} | {r['snr_db']:.1f} | {got:.1f} | {r['snr_db'] - got:+.1f} |")
        drop_p = 100 * (p["float_accuracy"] - p["accuracy"])
        drop_m = 100 * (m["float_accuracy"] - m["accuracy"])
        lines += ["", "| figure | predicted | measured | error |", "|---|---|---|---|",
                  f"| accuracy drop, float to INT8 | {drop_p:.2f} pt | {drop_m:.2f} pt | {drop_p - drop_m:+.2f} pt |",
                  f"| KL divergence of the outputs | {p['kl']:.5f} nats | {m['kl']:.5f} nats | "
                  f"{_ratio(p['kl'], m['kl'])} |"]
        return lines

    def _sensitivity(self) -> list[str]:
        s = self.sensitivity
        if s is None:
            return ["", "## Sensitivity", "", "Not computed: run `tinycomp compress` with `--sensitivity` for "
                    "the accuracy each layer costs when it alone is quantized or pruned."]
        has_acc = s["float_accuracy"] is not None
        metric = "test accuracy" if has_acc else "output error"
        lines = ["", "## Sensitivity", "",
                 f"The input model's {metric} with one layer changed and every other layer float"
                 + (f" (float: {100 * s['float_accuracy']:.2f}%)" if has_acc else "")
                 + ". *INT8*: that layer's weights quantized to int8 with the device's scheme (activations "
                 f"stay float); *pruned*: that layer alone magnitude-pruned to S={s['sparsity']:g}, no "
                 "fine-tuning. Sorted by damage, worst first. Output error: relative L2 distance of the "
                 "model's outputs from the float model's.", ""]
        if has_acc:
            lines += ["| layer | weights | INT8: accuracy | change | output error | "
                      f"pruned S={s['sparsity']:g}: accuracy | change | output error |",
                      "|---|---|---|---|---|---|---|---|"]
        else:
            lines += [f"| layer | weights | INT8: output error | pruned S={s['sparsity']:g}: output error |",
                      "|---|---|---|---|"]

        def cells(m):
            if not has_acc:
                return f"{m['output_error']:.4f}"
            return (f"{100 * m['accuracy']:.2f}% | {100 * (m['accuracy'] - s['float_accuracy']):+.2f} pt | "
                    f"{m['output_error']:.4f}")

        for r in s["rows"]:
            lines.append(f"| {r['layer']} | {r['weights']:,} | {cells(r['int8'])} | {cells(r['pruned'])} |")
        if s["rows"] and "fisher" in s["rows"][0]:
            lines += ["", "Second-order prediction of the same changes, from the Fisher diagonal F (the mean "
                      "squared gradient of the loss per weight, one sample at a time): the loss increase "
                      "F·Δw²/2 summed over the layer's weights, Δw the rounding to int8 or the pruned "
                      "weights themselves. `--allocation fisher` spreads `--prune` by this saliency.", "",
                      "| layer | Fisher trace | INT8: predicted Δloss | pruned: predicted Δloss |",
                      "|---|---|---|---|"]
            for r in s["rows"]:
                f = r["fisher"]
                lines.append(f"| {r['layer']} | {f['fisher_trace']:.4g} | {f['int8']:.3g} | {f['pruned']:.3g} |")
        n = sum(r["weights"] for r in s["rows"])
        lines.append(f"| all layers at once | {n:,} | {cells(s['all_int8'])} | {cells(s['all_pruned'])} |")
        if s["rows"]:
            worst = s["rows"][0]
            which = "pruned" if (worst["pruned"]["output_error"] >= worst["int8"]["output_error"]) else "INT8"
            if has_acc:
                which = ("pruned" if worst["pruned"]["accuracy"] <= worst["int8"]["accuracy"] else "INT8")
            lines += ["", f"Most sensitive: {worst['layer']} ({which}). Layers at the top of the table are "
                      "the ones to prune less or keep out of pruning."]
        return lines
