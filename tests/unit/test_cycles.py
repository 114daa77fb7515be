"""The cycle estimator on short instruction sequences whose cycles are worked
out by hand from the Cortex-M4 Technical Reference Manual (ARM DDI 0439,
table 3-1 and "Load/store timings"), with the timing table of the
nucleo-l4r5zi board file (P = 2, 20-cycle flash data-cache misses)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from tinycomp.boards import load_board
from tinycomp.cycles.model import Block, block_cycles, estimate, straight_cycles
from tinycomp.cycles.thumb import classify
from tinycomp.cycles.timing import load_timing
from tinycomp.cycles.trace import parse_trace
from tinycomp.errors import BoardError, TargetError

TIMING = load_timing(load_board("nucleo-l4r5zi"))
CORE = TIMING.core


def cycles(*lines: str) -> int:
    return straight_cycles([classify(x) for x in lines], CORE)


def run(lines, executions, fallthrough=0, **counts) -> int:
    """Cycles of a block executed `executions` times in phase 0."""
    insns = tuple(classify(x) for x in lines)
    block = Block(0x100, insns, (executions,), (fallthrough,), **counts)
    return block_cycles(block, 0, TIMING).total


def test_board_table_is_the_trm():
    assert (CORE.alu, CORE.load, CORE.double, CORE.multiple, CORE.branch) == (1, 2, 3, 1, 1)
    assert 1 <= CORE.refill <= 3 and CORE.address_dependency == 1 and CORE.unaligned == 1
    assert TIMING.memory.clock_hz == 120_000_000 and TIMING.memory.flash_wait_states == 5


@pytest.mark.parametrize("lines, expected", [
    # One LDR: 2.
    (["ldr r0, [r1]"], 2),
    # TRM's own examples of pipelined loads and stores.
    (["ldr r0, [r1]", "ldr r1, [r2]"], 3),                              # 2 + 1
    (["ldr r0, [r1, r2]", "str r0, [r3, #20]"], 3),                     # 2 + STR [Rn,#imm] 1
    (["ldr r0, [r1, r2]", "str r1, [r3, r2]"], 3),                      # 2 + pipelined 1
    (["ldr r0, [r1, r5]", "ldr r1, [r2]", "ldr r2, [r3, #4]"], 4),      # 2 + 1 + 1
    # Eight back-to-back independent loads: 2 + 7 x 1.
    ([f"ldr.w r{i}, [r9, #{4 * i}]" for i in range(8)], 9),
    # The second address needs the first load's value: no pipelining, 2 + 2.
    (["ldr r0, [r1]", "ldr r2, [r0, #4]"], 4),
    # Base-update loads are not pipelined: 2 + 2.
    (["ldr.w r4, [r0], #4", "ldr.w r5, [r1], #4"], 4),
    # Nothing pipelines after a store: STR [Rn, Rm] 2, then LDR 2.
    (["str r0, [r1, r2]", "ldr r3, [r4]"], 4),
    # Address from the previous ALU result: 1 + (2 + 1).
    (["adds r1, #4", "ldr r0, [r1]"], 4),
    # ... but not when the ALU result is not in the address: 1 + 2.
    (["adds r2, #4", "ldr r0, [r1]"], 3),
    # LDRD/STRD 3 each; the second LDRD's base came from ADD: +1.
    (["ldrd r0, r1, [r2]", "strd r0, r1, [r3, #8]"], 6),
    (["add.w r2, r2, #8", "ldrd r0, r1, [r2]"], 5),
    # LDM/STM/PUSH 1 + N.
    (["ldmia r0!, {r1, r2, r3, r4}"], 5),
    (["push {r4, r5, r6, r7, lr}"], 6),
    (["stmdb sp!, {r4, r5, r6, r7, r8, r9, sl, fp, lr}"], 10),
    # DSP and multiplies: 1 each, whatever the dependences between them.
    (["sxtb16 r6, r4", "sxtb16 r4, r4, ror #8", "smlad r8, r6, r7, r8", "smlad r8, r4, r5, r8",
      "mul r0, r1, r2", "mla r0, r1, r2, r0", "smull r0, r1, r2, r3", "ssat r0, #8, r0"], 8),
    # IT and its conditional instructions (costed as executed).
    (["cmp r0, #0", "it lt", "movlt r0, #0"], 3),
])
def test_straight_sequences(lines, expected):
    assert cycles(*lines) == expected


def test_conditional_branch_taken_and_not_taken():
    # A counting loop: SUBS 1 + BNE 1, taken 9 of 10 times: 10 x 2 + 9 x P(2) = 38.
    assert run(["subs r2, #1", "bne.n 100"], 10, fallthrough=1) == 38
    # Never taken: 10 x 2.
    assert run(["subs r2, #1", "bne.n 100"], 10, fallthrough=10) == 20
    # CBZ taken 3 of 5: 5 x 1 + 3 x 2.
    assert run(["cbz r0, 120"], 5, fallthrough=2) == 11


def test_unconditional_branches_always_pay_the_refill():
    assert run(["b.n 100"], 4) == 4 * 3                       # 1 + P
    assert run(["bl 2000"], 1) == 3                           # 1 + P
    assert run(["bx lr"], 2) == 2 * 3                         # 1 + P
    assert run(["pop {r4, r5, pc}"], 1) == 1 + 3 + 2          # 1 + N + P
    assert run(["ldr.w pc, [sp], #4"], 1) == 2 + 2            # LDR pc: 2 + P (TRM: at least 4)
    # Even when the target happens to be the next block.
    assert run(["b.n 102"], 1, fallthrough=1) == 3


def test_smlad_loop():
    """A 2x2 MAC inner loop as CMSIS-style kernels write it, 16 iterations:
    2 + 2 (base-update loads) + 4 x SXTB16 + 2 x SMLAD + SUBS + BNE = 12 a
    pass, 15 taken branches x P = 2: 16 x 12 + 30 = 222."""
    loop = ["ldr.w r4, [r0], #4", "ldr.w r5, [r1], #4", "sxtb16 r6, r4", "sxtb16 r4, r4, ror #8",
            "sxtb16 r7, r5", "sxtb16 r5, r5, ror #8", "smlad r8, r6, r7, r8", "smlad r8, r4, r5, r8",
            "subs r2, #1", "bne.n 100"]
    assert run(loop, 16, fallthrough=1) == 222
    # The same loop with offset loads then one pointer bump: the second load
    # pipelines (2 + 1), ADDs are 1 each: 13 a pass, 16 x 13 + 30 = 238.
    loop2 = ["ldr r4, [r0, #0]", "ldr r5, [r1, #0]", "adds r0, #4", "adds r1, #4", "sxtb16 r6, r4",
             "sxtb16 r4, r4, ror #8", "sxtb16 r7, r5", "sxtb16 r5, r5, ror #8",
             "smlad r8, r6, r7, r8", "smlad r8, r4, r5, r8", "subs r2, #1", "bne.n 100"]
    assert run(loop2, 16, fallthrough=1) == 238


def test_unaligned_and_flash_misses_add_stalls():
    lines = ["ldr r0, [r1]", "ldrh r2, [r3]"]
    # 10 runs x (2 + 1) = 30; 4 unaligned halfwords +4; 3 flash misses x 20 = 60.
    got = run(lines, 10, unaligned=((0,), (4,)), flash_reads=((10,), (0,)), flash_misses=((3,), (0,)))
    assert got == 30 + 4 + 60


def test_estimate_sums_blocks_per_phase():
    body = tuple(classify(x) for x in ("ldr r0, [r1]", "ldr r2, [r3]", "subs r4, #1", "bne.n 100"))
    tail = tuple(classify(x) for x in ("bx lr",))
    blocks = [Block(0x100, body, (0, 8, 3), (0, 1, 1)), Block(0x200, tail, (0, 1, 1), (0, 0, 0))]
    layer1, layer2 = estimate(blocks, (1, 2), TIMING)
    # body: 2 + 1 + 1 + 1 = 5 a pass; tail: 1 + P.
    assert layer1.total == 8 * 5 + 7 * 2 + 3 and layer1.instructions == 8 * 4 + 1
    assert layer2.total == 3 * 5 + 2 * 2 + 3 and layer2.taken_branches == 2 + 1


@pytest.mark.parametrize("text, kind, dests, addr, wb", [
    ("ldr.w r0, [r3], #4", "load", {"r0", "r3"}, {"r3"}, True),
    ("ldrsb.w r1, [r2, #-1]!", "load", {"r1", "r2"}, {"r2"}, True),
    ("ldrbls.w r1, [ip, r2]", "load", {"r1"}, {"r12", "r2"}, False),
    ("str.w r1, [r3], #4", "store", {"r3"}, {"r3"}, True),
    ("strex r0, r1, [r2]", "store", {"r0"}, {"r2"}, False),
    ("ldrd r4, r5, [sp, #8]", "double", {"r4", "r5"}, {"sp"}, False),
    ("pop {r4, r5, r6, pc}", "multiple", {"r4", "r5", "r6", "pc", "sp"}, {"sp"}, True),
    ("umlal r0, r1, r2, r3", "alu", {"r0", "r1"}, set(), False),
    ("smlad ip, ip, r6, r5", "alu", {"r12"}, set(), False),
    ("cmp.w r3, #256", "alu", set(), set(), False),
    ("udiv r0, r1, r2", "div", {"r0"}, set(), False),
    ("pld [r0, #64]", "alu", set(), set(), False),
])
def test_classify(text, kind, dests, addr, wb):
    insn = classify(text)
    assert (insn.kind, set(insn.dests), set(insn.addr_regs), insn.writeback) == (kind, dests, addr, wb)


def test_branch_kinds():
    assert classify("bne.n 13f2 <tc_conv+0x3a>").conditional
    assert not classify("b.w 1400").conditional and classify("b.w 1400").is_branch
    assert classify("bls.n 20").conditional and not classify("bl 2000").conditional
    assert classify("tbb [pc, r3]").kind == "table_branch"
    assert not classify("bic.w r0, r0, #3").is_branch and not classify("bfi r0, r1, #0, #8").is_branch


def test_bad_timing_tables_are_refused():
    board = load_board("nucleo-l4r5zi")
    bad = replace(board, raw={**board.raw, "timing": {"core": {"core": "cortex-m4", "load": -2}}})
    with pytest.raises(BoardError, match="load"):
        load_timing(bad)
    bad = replace(board, raw={**board.raw, "timing": {"core": {"core": "cortex-m7"}}})
    with pytest.raises(BoardError, match="cortex-m7"):
        load_timing(bad)
    with pytest.raises(BoardError, match="no \\[timing\\]"):
        load_timing(load_board("nucleo-f746zg"))


def test_truncated_trace_is_refused():
    with pytest.raises(TargetError, match="incomplete"):
        parse_trace("phases 3\ntb 100 104 2 0 1 0 0 0 0\n")
