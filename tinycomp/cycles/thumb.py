"""Thumb-2 instructions as the cycle model needs them: class, registers
written, registers forming a memory address, registers moved, writeback.

The text comes from arm-none-eabi-objdump (unified syntax), so decoding the
encodings is left to binutils; this module only reads its mnemonics and
operands."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError

CONDS = "eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al"
_ALIASES = {"sb": "r9", "sl": "r10", "fp": "r11", "ip": "r12", "r13": "sp", "r14": "lr", "r15": "pc"}
_REG = re.compile(r"\b(r1[0-5]|r[0-9]|sb|sl|fp|ip|sp|lr|pc)\b")
_BRANCH = re.compile(rf"^(b|bl|blx|bx)({CONDS})?$")
_SINGLE = re.compile(rf"^(ldr|str)(ex)?(b|h|sb|sh)?(ex)?(t)?({CONDS})?$")
_DOUBLE = re.compile(rf"^(ldr|str)(ex)?d({CONDS})?$")
_MULTI = re.compile(rf"^(ldm|stm)(ia|ib|da|db|fd|fa|ed|ea)?({CONDS})?$|^(push|pop)({CONDS})?$")
_VMULTI = re.compile(rf"^(vldm|vstm)(ia|db)?({CONDS})?$|^(vpush|vpop)({CONDS})?$")
_NO_DEST = {"cmp", "cmn", "tst", "teq", "nop", "dsb", "dmb", "isb", "wfi", "wfe", "sev", "bkpt",
            "cpsid", "cpsie", "svc", "msr", "yield", "pld", "pli"}
_TWO_DEST = {"umull", "smull", "umlal", "smlal", "umaal", "smlald", "smlaldx", "smlsld", "smlsldx",
             "smlalbb", "smlalbt", "smlaltb", "smlaltt"}

# Mnemonics that end in letters that look like a condition (umlAL, smlAL).
_KNOWN = _NO_DEST | _TWO_DEST | {"sdiv", "udiv", "vdiv", "vsqrt"}


@dataclass(frozen=True)
class Insn:
    """One instruction. kind: alu, div, load, store, double, multiple, branch,
    cbz, table_branch, it, fp, fp_load, fp_multiple, fp_div."""
    text: str
    kind: str
    dests: frozenset[str] = frozenset()        # core registers written (incl. base writeback)
    addr_regs: frozenset[str] = frozenset()    # registers of the memory address
    nregs: int = 0                             # registers moved by LDM/STM/PUSH/POP/VLDM
    writeback: bool = False                    # base register updated
    imm_offset: bool = False                   # [Rn, #imm] or [Rn] addressing
    conditional: bool = False                  # a branch that may fall through
    writes_pc: bool = False                    # ends in a branch (taken when it runs)

    @property
    def is_load(self) -> bool:
        return self.kind == "load"

    @property
    def is_branch(self) -> bool:
        return self.kind in ("branch", "cbz", "table_branch") or self.writes_pc


def _regs(text: str) -> list[str]:
    return [_ALIASES.get(r, r) for r in _REG.findall(text)]


def _strip_cond(base: str) -> str:
    m = re.match(rf"^(.+?)({CONDS})$", base)
    return m.group(1) if m and len(m.group(1)) >= 2 else base


def _reglist(ops: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", ops)
    if not m:
        return []
    out = []
    for part in m.group(1).split(","):
        part = part.strip()
        if "-" in part:   # r4-r7 or s16-s31
            lo, hi = (p.strip() for p in part.split("-"))
            out += [f"{lo[0]}{i}" for i in range(int(lo[1:]), int(hi[1:]) + 1)]
        elif part:
            out.append(_ALIASES.get(part, part))
    return out


def classify(text: str) -> Insn:
    """Classify one instruction in objdump's syntax, e.g. "ldr.w r0, [r3], #4"."""
    text = re.split(r"\s[@;]", text.strip())[0].strip()
    mnem, _, ops = text.partition(" ")
    mnem = mnem.lower()
    ops = ops.strip().lower()
    base = mnem.split(".")[0]
    regs = _regs(ops)

    m = _BRANCH.match(base)
    if m:
        conditional = m.group(1) == "b" and m.group(2) not in (None, "al")
        return Insn(text, "branch", dests=frozenset({"lr"}) if m.group(1) in ("bl", "blx") else frozenset(),
                    conditional=conditional)
    if base in ("cbz", "cbnz"):
        return Insn(text, "cbz", conditional=True)
    if base in ("tbb", "tbh"):
        return Insn(text, "table_branch", addr_regs=frozenset(regs))
    if re.fullmatch(r"it[te]{0,3}", base):
        return Insn(text, "it")

    m = _SINGLE.match(base) or _DOUBLE.match(base)
    if m and "[" in ops:
        before, _, address = ops.partition("[")
        inside, _, after = address.partition("]")
        writeback = after.startswith("!") or after.strip().startswith(",")
        addr = frozenset(_regs(inside))
        moved = _regs(before)
        if m.group(1) == "str" and m.group(2) == "ex":   # strex rd, rt, [rn]: rd is a status result
            moved, status = moved[1:], moved[:1]
        else:
            status = []
        is_load = m.group(1) == "ldr"
        dests = set(moved if is_load else status)
        base_reg = _regs(inside)[:1]
        if writeback:
            dests |= set(base_reg)
        kind = "double" if base.startswith(("ldrd", "strd", "ldrexd", "strexd")) else (
            "load" if is_load else "store")
        imm = len(_regs(inside)) == 1   # [Rn], [Rn, #imm]: no offset register
        return Insn(text, kind, dests=frozenset(dests), addr_regs=addr, writeback=writeback,
                    imm_offset=imm, writes_pc="pc" in dests)

    m = _MULTI.match(base)
    if m:
        listed = _reglist(ops)
        if m.group(4):   # push / pop
            is_load, base_reg, writeback = m.group(4) == "pop", "sp", True
        else:
            is_load = m.group(1) == "ldm"
            first = ops.split(",")[0].strip()
            base_reg, writeback = _ALIASES.get(first.rstrip("!"), first.rstrip("!")), first.endswith("!")
        dests = set(listed if is_load else ()) | ({base_reg} if writeback else set())
        return Insn(text, "multiple", dests=frozenset(dests), addr_regs=frozenset({base_reg}),
                    nregs=len(listed), writeback=writeback, writes_pc="pc" in dests)

    m = _VMULTI.match(base)
    if m:
        listed = _reglist(ops)
        n = sum(2 if r.startswith("d") else 1 for r in listed)
        base_reg = "sp" if m.group(4) else _regs(ops.split(",")[0])[0]
        return Insn(text, "fp_multiple", addr_regs=frozenset({base_reg}), nregs=n,
                    writeback=bool(m.group(4)) or "!" in ops.split(",")[0])
    if base.startswith(("vldr", "vstr")):
        inside = ops.partition("[")[2].partition("]")[0]
        return Insn(text, "fp_load", addr_regs=frozenset(_regs(inside)))
    plain = base if base in _KNOWN else _strip_cond(base)
    if plain in ("vdiv", "vsqrt"):
        return Insn(text, "fp_div")
    if plain.startswith("v"):
        # VMOV/VCVT to core registers write the first operand when it is one.
        first = ops.split(",")[0].strip()
        dest = _regs(first) if _REG.fullmatch(first) else []
        return Insn(text, "fp", dests=frozenset(dest))

    # Everything else is a single-cycle data-processing, multiply or DSP op.
    kind = "div" if plain in ("sdiv", "udiv") else "alu"
    if plain in _NO_DEST or plain.startswith(("cmp", "cmn", "tst", "teq")) or not regs:
        dests = frozenset()
    elif plain in _TWO_DEST:
        dests = frozenset(regs[:2])
    else:
        dests = frozenset(regs[:1])
    return Insn(text, kind, dests=dests, writes_pc="pc" in dests)


_LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f]{4}(?: [0-9a-f]{4})?)\s*\t(.*)$")


def disassemble(elf: Path, objdump: str = "arm-none-eabi-objdump") -> dict[int, tuple[int, str]]:
    """address -> (size in bytes, instruction text) for every instruction of the ELF."""
    try:
        out = subprocess.run([objdump, "-d", str(elf)], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise BuildError(f"{objdump} not found; install gcc-arm-none-eabi") from None
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{objdump} could not read {elf}: {exc.stderr.strip()[:200]}") from None
    table = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        if m and not m.group(3).startswith("."):
            size = 2 * len(m.group(2).split())
            table[int(m.group(1), 16)] = (size, m.group(3).replace("\t", " ").strip())
    return table
