"""The [timing] table of a board file: the core's instruction timings from its
Technical Reference Manual, and the memory system's costs (flash wait states,
cache) at the board's clock. Boards are data; nothing here is board-specific."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..boards import Board
from ..errors import BoardError


@dataclass(frozen=True)
class CoreTiming:
    """Cycles per instruction class (Cortex-M4 TRM, table 3-1 and "Load/store
    timings"). N is the number of registers moved, P the pipeline refill."""
    core: str
    alu: int = 1                 # data processing, MUL/MLA, long multiplies, all DSP ops (SMLAD, SXTB16)
    div: int = 12                # SDIV/UDIV take 2-12 depending on the operands
    load: int = 2                # LDR/STR single (any size); 1 when pipelined after an LDR
    store_imm: int = 1           # STR Rx,[Ry,#imm] (no writeback) is always one cycle
    double: int = 3              # LDRD/STRD
    multiple: int = 1            # LDM/STM/PUSH/POP: multiple + N
    branch: int = 1              # B/BL/BX/CBZ, conditional branch not taken
    refill: int = 2              # P, added when a branch is taken (1-3 in the TRM)
    table_branch: int = 2        # TBB/TBH: table_branch + P
    address_dependency: int = 1  # load/store whose address the previous ALU instruction wrote
    unaligned: int = 1           # per unaligned access
    it: int = 1                  # IT (folding onto the previous instruction not assumed)
    fp: int = 1                  # FPv4-SP arithmetic, VMOV, VCVT
    fp_load: int = 2             # VLDR/VSTR
    fp_div: int = 14             # VDIV/VSQRT


@dataclass(frozen=True)
class MemoryTiming:
    """Costs of the memory system seen from the core, at clock_hz.

    Code fetch is assumed free (prefetch buffer and instruction cache, or
    zero-wait memory). Data reads from flash go through a fully associative
    LRU cache of dcache_lines lines of dcache_line_bytes; a miss stalls the
    core for dcache_miss_cycles. Without a cache (dcache_lines = 0) every
    flash read misses."""
    clock_hz: int
    flash_wait_states: int = 0
    dcache_lines: int = 0
    dcache_line_bytes: int = 32
    dcache_miss_cycles: int = 0
    assumptions: str = ""


@dataclass(frozen=True)
class Timing:
    board: str
    core: CoreTiming
    memory: MemoryTiming

    def with_refill(self, refill: int) -> "Timing":
        return replace(self, core=replace(self.core, refill=refill))


def _ints(cls, table: dict, skip: tuple[str, ...]) -> dict:
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
    out = {}
    for key, value in table.items():
        if key in skip:
            out[key] = value
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} = {value!r} must be a non-negative integer")
        else:
            out[key] = value
    return out


def load_timing(board: Board) -> Timing:
    """The timing of `board`'s core and memory, from its board file."""
    table = board.raw.get("timing")
    if table is None or board.core is None:
        raise BoardError(f"board {board.name} has no [timing] table: no cycle model for it")
    try:
        core = dict(table.get("core", {}))
        memory = dict(table.get("memory", {}))
        ct = CoreTiming(**_ints(CoreTiming, core, ("core",)))
        mt = MemoryTiming(clock_hz=board.core.core_hz, **_ints(MemoryTiming, memory, ("assumptions",)))
    except (TypeError, ValueError) as exc:
        raise BoardError(f"board {board.name}: [timing] {exc}") from None
    if ct.core != board.core.cpu:
        raise BoardError(f"board {board.name}: [timing.core] is for {ct.core}, the board's core is "
                         f"{board.core.cpu}")
    if mt.dcache_line_bytes & (mt.dcache_line_bytes - 1) or not 0 <= mt.dcache_lines <= 64:
        raise BoardError(f"board {board.name}: [timing.memory] needs a power-of-two line size "
                         "and at most 64 lines")
    return Timing(board.name, ct, mt)
