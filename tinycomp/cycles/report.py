"""`tinycomp profile --cycles`: per-layer instructions and estimated cycles,
and milliseconds at the timing board's clock."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..boards import load_board
from ..errors import BoardError, ModelError
from ..pipeline import model_samples, read_manifest
from .model import Cycles, estimate
from .timing import Timing, load_timing
from .trace import run_traced

_PASSIVE = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")   # no code, no layer mark


def timing_for(build_board: str, as_board: str | None) -> Timing:
    """The cycle model of as_board (default: the build's board) for a build made for build_board."""
    built = load_board(build_board)
    target = load_board(as_board or build_board)
    if built.kind != "qemu":
        raise BoardError(f"cycle estimates need a QEMU build; {built.name} is a {built.kind} board"
                         + (" (its profile already counts cycles with DWT)" if built.kind == "device" else ""))
    if target.core is None or target.core.cpu != built.core.cpu or target.core.dsp != built.core.dsp:
        core = target.core.cpu if target.core else "no core"
        raise BoardError(f"{target.name} ({core}) cannot stand in for {built.name} ({built.core.cpu}): "
                         "the cycle model needs the same core")
    return load_timing(target)


def _row(c: Cycles, clock_hz: int) -> dict:
    return {"instructions": c.instructions, "cycles": c.total, "core_cycles": c.core,
            "branch_cycles": c.branch, "unaligned_cycles": c.unaligned, "flash_cycles": c.flash,
            "taken_branches": c.taken_branches, "flash_reads": c.flash_reads,
            "flash_misses": c.flash_misses, "ms": round(1000.0 * c.total / clock_hz, 4)}


def profile_cycles(build_dir: Path, samples: np.ndarray | None = None, as_board: str | None = None,
                   refills: tuple[int, ...] = ()) -> dict:
    """Profile one inference in QEMU with the tracer and estimate its cycles.
    refills: extra values of P to report the total with (the TRM gives 1-3)."""
    info = read_manifest(build_dir)
    timing = timing_for(info["board"], as_board)
    x = model_samples(samples, info)[0] if samples is not None else np.zeros(info["input"]["shape"], np.int8)
    steps = [row for row in info["layers"] if row["op"] not in _PASSIVE]
    if not steps:
        raise ModelError(f"{build_dir}: the model has no layer that runs code; nothing to time")
    trace = run_traced(load_board(info["board"]), build_dir,
                       np.ascontiguousarray(x, np.int8).tobytes(), len(steps), timing)
    phases = range(1, trace.phases)
    per_layer = estimate(trace.blocks, phases, timing)
    clock = timing.memory.clock_hz
    layers = []
    for row, c, systick in zip(steps, per_layer, trace.systick_layers):
        layers.append({"index": row["index"], "name": row["name"], "op": row["op"], "macs": row["macs"],
                       "systick_instructions": systick, **_row(c, clock)})
    total = Cycles()
    for c in per_layer:
        total.add(c)
    ranges = {}
    for p in refills:
        t = timing.with_refill(p)
        ranges[p] = sum(c.total for c in estimate(trace.blocks, phases, t))
    return {
        "build_board": info["board"], "timing_board": timing.board, "clock_hz": clock,
        "macs": info["macs"], "systick_instructions": trace.systick_total,
        **_row(total, clock),
        "cycles_by_refill": {str(p): v for p, v in ranges.items()},
        "assumptions": assumptions(timing),
        "layers": layers,
    }


def assumptions(timing: Timing) -> str:
    c, m = timing.core, timing.memory
    return (f"{c.core} timing ({timing.board}): ALU/MUL/DSP {c.alu}, LDR/STR {c.load} "
            f"(pipelined after an LDR: {c.load - 1}; STR [Rn,#imm] {c.store_imm}), LDRD/STRD {c.double}, "
            f"LDM/STM {c.multiple}+N, branch {c.branch}+P when taken with P = {c.refill}, "
            f"address from the previous ALU result +{c.address_dependency}, unaligned +{c.unaligned}, "
            f"IT {c.it}, SDIV {c.div}; {m.clock_hz / 1e6:g} MHz, {m.flash_wait_states} flash wait states: "
            f"{m.assumptions}. Ignored: rules across block boundaries, IT folding, failed conditional "
            "instructions (costed as executed), write-buffer and bus stalls, interrupts.")


def format_cycles(p: dict) -> str:
    lines = [f"{'#':>3}  {'op':<18} {'MACs':>11} {'instructions':>13} {'cycles':>12} {'cyc/MAC':>7} "
             f"{'flash cyc':>10} {'ms':>9}  name"]
    for r in p["layers"]:
        per = f"{r['cycles'] / r['macs']:.2f}" if r["macs"] else "-"
        lines.append(f"{r['index']:>3}  {r['op']:<18} {r['macs']:>11,} {r['instructions']:>13,} "
                     f"{r['cycles']:>12,} {per:>7} {r['flash_cycles']:>10,} {r['ms']:>9.3f}  {r['name'][:40]}")
    per = f"{p['cycles'] / p['macs']:.2f}" if p["macs"] else "-"
    lines.append(f"     {'total':<18} {p['macs']:>11,} {p['instructions']:>13,} {p['cycles']:>12,} {per:>7} "
                 f"{p['flash_cycles']:>10,} {p['ms']:>9.3f}")
    lines += ["", f"{p['build_board']} instruction stream, {p['timing_board']} timing at "
              f"{p['clock_hz'] / 1e6:g} MHz: {p['cycles']:,} cycles = {p['ms']:.3f} ms per inference "
              f"({p['taken_branches']:,} taken branches, {p['flash_misses']:,} flash data-cache misses)",
              f"assumptions: {p['assumptions']}"]
    return "\n".join(lines)
