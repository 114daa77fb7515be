"""Cycles from instructions: the cost of each instruction in a straight run
through a block (with the rules that depend on the previous instruction),
plus taken-branch refills, flash data-cache misses and unaligned accesses
counted by the tracer.

What the model includes: the TRM's per-instruction timings; back-to-back
loads pipelined (a load or store right after an LDR costs one cycle less
unless its address uses the LDR's result or either one updates its base); an
address register written by the previous data-processing instruction (+1);
taken branches (+P); unaligned accesses (+1 each); flash data reads that miss
the data cache model (+miss cycles). What it ignores: rules across block
boundaries (a block's first instruction is costed as if nothing preceded it),
IT folding, conditional instructions that fail their condition (costed as if
they ran), write-buffer stalls, bus contention, interrupts, and code fetch
from flash (assumed hidden by prefetch and the instruction cache).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .thumb import Insn
from .timing import CoreTiming, Timing

_MEMORY = ("load", "store", "double", "multiple", "fp_load", "fp_multiple", "table_branch")
_DATA_PROCESSING = ("alu", "div", "fp")


def _pipelined(prev: Insn | None, insn: Insn) -> bool:
    """TRM "Load/store timings": LDR [any] pipelines into a following single
    load or store unless that one's address needs the loaded value; a base
    update load is not pipelined, and nothing pipelines after a store."""
    return (prev is not None and prev.kind == "load" and not prev.writeback and not prev.writes_pc
            and insn.kind in ("load", "store") and not insn.writeback
            and not (insn.addr_regs & prev.dests))


def insn_cost(prev: Insn | None, insn: Insn, core: CoreTiming) -> int:
    """Cycles of `insn` after `prev` (None at a block start), a branch not taken."""
    kind = insn.kind
    if kind == "load":
        cost = core.load - (1 if _pipelined(prev, insn) else 0)
    elif kind == "store":
        if insn.imm_offset and not insn.writeback:
            cost = core.store_imm
        else:
            cost = core.load - (1 if _pipelined(prev, insn) else 0)
    elif kind == "double":
        cost = core.double
    elif kind in ("multiple", "fp_multiple"):
        cost = core.multiple + insn.nregs
    elif kind in ("branch", "cbz"):
        cost = core.branch
    else:
        cost = {"table_branch": core.table_branch, "it": core.it, "div": core.div, "fp": core.fp,
                "fp_load": core.fp_load, "fp_div": core.fp_div}.get(kind, core.alu)
    if (kind in _MEMORY and prev is not None and prev.kind in _DATA_PROCESSING
            and insn.addr_regs & prev.dests):
        cost += core.address_dependency
    return cost


def straight_cycles(insns: Sequence[Insn], core: CoreTiming) -> int:
    """Cycles of one run through a block, its final branch not taken."""
    return sum(insn_cost(insns[i - 1] if i else None, insn, core) for i, insn in enumerate(insns))


def always_taken(insn: Insn) -> bool:
    """A branch that cannot fall through: B, BL, BX, TBB, POP {pc}, LDR pc."""
    return insn.is_branch and not insn.conditional


@dataclass
class Block:
    """One translated block as the tracer saw it, counts per phase."""
    vaddr: int
    insns: tuple[Insn, ...]
    executions: tuple[int, ...]
    fallthrough: tuple[int, ...]                # next block started right after this one
    flash_reads: tuple[tuple[int, ...], ...] = ()    # per instruction, per phase
    flash_misses: tuple[tuple[int, ...], ...] = ()
    unaligned: tuple[tuple[int, ...], ...] = ()


@dataclass
class Cycles:
    """Estimated cost of one phase (a layer)."""
    instructions: int = 0
    core: int = 0              # instruction timings, branches not taken
    branch: int = 0            # refills of taken branches
    unaligned: int = 0
    flash: int = 0             # flash data-cache miss stalls
    taken_branches: int = 0
    flash_reads: int = 0
    flash_misses: int = 0

    @property
    def total(self) -> int:
        return self.core + self.branch + self.unaligned + self.flash

    def add(self, other: "Cycles") -> None:
        for name in ("instructions", "core", "branch", "unaligned", "flash", "taken_branches",
                     "flash_reads", "flash_misses"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def block_cycles(block: Block, phase: int, timing: Timing) -> Cycles:
    """The cost of `block`'s executions in `phase`."""
    core = timing.core
    runs = block.executions[phase]
    c = Cycles()
    if runs == 0:
        return c
    c.instructions = runs * len(block.insns)
    c.core = runs * straight_cycles(block.insns, core)
    last = block.insns[-1]
    if last.is_branch:
        taken = runs if always_taken(last) else runs - block.fallthrough[phase]
        c.taken_branches = taken
        c.branch = taken * core.refill
    for i in range(len(block.insns)):
        if block.unaligned:
            c.unaligned += block.unaligned[i][phase] * core.unaligned
        if block.flash_misses:
            c.flash_reads += block.flash_reads[i][phase]
            c.flash_misses += block.flash_misses[i][phase]
    c.flash = c.flash_misses * timing.memory.dcache_miss_cycles
    return c


def estimate(blocks: Sequence[Block], phases: Sequence[int], timing: Timing) -> list[Cycles]:
    """One Cycles per phase in `phases`."""
    out = []
    for phase in phases:
        total = Cycles()
        for block in blocks:
            total.add(block_cycles(block, phase, timing))
        out.append(total)
    return out
