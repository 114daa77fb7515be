"""The Markdown report: what each compression step cost and bought."""
from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import ideal_snr_db


@dataclass
class Step:
    name: str
    accuracy: float | None
    params: int
    macs: int
    note: str = ""


@dataclass
class Report:
    model: str
    steps: list[Step] = field(default_factory=list)
    weight_rows: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    int8_accuracy: float | None = None
    kl_float_int8: float | None = None

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def markdown(self) -> str:
        lines = [f"# Compression report: {self.model}", "", "## Steps", "",
                 "| step | test accuracy | change | parameters | MACs | note |",
                 "|---|---|---|---|---|---|"]
        first = self.steps[0].accuracy if self.steps else None
        for s in self.steps:
            acc = "-" if s.accuracy is None else f"{100 * s.accuracy:.2f}%"
            delta = "-" if s.accuracy is None or first is None else f"{100 * (s.accuracy - first):+.2f} pt"
            lines.append(f"| {s.name} | {acc} | {delta} | {s.params:,} | {s.macs:,} | {s.note} |")
        if self.int8_accuracy is not None:
            lines += ["", f"INT8 (converted) test accuracy: {100 * self.int8_accuracy:.2f}%"]
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
        if self.totals:
            t = self.totals
            lines += ["", "## Size in bits", "",
                      "| storage | bits | ratio vs float32 |", "|---|---|---|",
                      f"| float32 | {t['float_bits']:,} | 1.00x |",
                      f"| dense int8 | {t['dense_int8_bits']:,} | {t['ratio_dense']:.2f}x |",
                      f"| sparse int8 (bitmap + non-zeros) | {t['sparse_int8_bits']:,} | {t['ratio_sparse']:.2f}x |",
                      f"| entropy bound | {int(t['entropy_total_bits']):,} | {t['ratio_entropy']:.2f}x |"]
        return "\n".join(lines) + "\n"
