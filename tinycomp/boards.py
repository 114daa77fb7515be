"""Boards are data: one TOML file per board under boards/, loaded into a Board.

`host` boards only need a compiler and flags. `qemu` and `device` boards also
describe the core, the memory map, the UART, the instruction/cycle counter,
the register writes that set up clocks and pins, and how to run them (a QEMU
machine, or a flash tool and a serial port). The firmware build turns this
data into a linker script and a C header; nothing about a board is hard-coded
in C or Python.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import BoardError
from .resources import data_dir

DEFAULT_BOARD = "qemu-mps2-an386"

KINDS = ("host", "qemu", "device")
UART_KINDS = ("cmsdk", "stm32-usart-v1", "stm32-usart-v2", "stm32-lpuart")
COUNTER_KINDS = ("icount", "dwt")
REG_OPS = ("write", "set", "clear", "field", "wait", "delay")
FLASH_TOOLS = ("openocd", "st-flash", "pyocd")


@dataclass(frozen=True)
class Core:
    cpu: str                 # -mcpu
    float_abi: str = "soft"  # -mfloat-abi
    fpu: str | None = None   # -mfpu, None without an FPU
    dsp: bool = False
    mve: str | None = None   # Helium: "int" (MVE-I) or "float" (MVE-I and MVE-F), None without
    opt: str = "-O2"
    core_hz: int = 0         # SysTick clock (CLKSOURCE = processor clock)

    @property
    def features(self) -> frozenset[str]:
        """What the code generator may choose kernels by (codegen/table.py)."""
        return frozenset(f for f, on in (("dsp", self.dsp), ("mve", self.mve)) if on)

    @property
    def vector_extension(self) -> str:
        """For `tinycomp boards`: the SIMD the core offers."""
        if self.mve:
            return "Helium (MVE-I)" if self.mve == "int" else "Helium (MVE-I, MVE-F)"
        return "DSP (32-bit SIMD)" if self.dsp else "none"

    def cflags(self) -> tuple[str, ...]:
        flags = [f"-mcpu={self.cpu}", "-mthumb", f"-mfloat-abi={self.float_abi}"]
        if self.fpu and self.float_abi != "soft":
            flags.append(f"-mfpu={self.fpu}")
        return tuple(flags)


@dataclass(frozen=True)
class Region:
    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass(frozen=True)
class Memory:
    flash: Region
    ram: Region
    vector_table: int
    stack_bytes: int = 8192


@dataclass(frozen=True)
class Uart:
    kind: str
    base: int
    clock_hz: int
    baud: int = 115200
    rx_irq: int | None = None  # IRQ that wakes WFI on a received byte


@dataclass(frozen=True)
class Counter:
    kind: str                                  # "icount" (instructions) or "dwt" (cycles)
    systick_hz: int = 0
    instructions_per_tick: Fraction = Fraction(1)

    @property
    def unit(self) -> str:
        return "instructions" if self.kind == "icount" else "cycles"


@dataclass(frozen=True)
class RegOp:
    """One register access of a set-up sequence, run by firmware/board_init.c."""
    op: str
    addr: int = 0
    mask: int = 0
    value: int = 0
    why: str = ""


@dataclass(frozen=True)
class FlashTool:
    order: tuple[str, ...] = FLASH_TOOLS
    openocd: tuple[str, ...] = ()
    pyocd_target: str = ""


@dataclass(frozen=True)
class Board:
    name: str
    kind: str  # "host", "qemu" or "device"
    description: str = ""
    cc: str = "gcc"
    cflags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    core: Core | None = None
    memory: Memory | None = None
    uart: Uart | None = None
    counter: Counter | None = None
    qemu_machine: str | None = None
    clock_ops: tuple[RegOp, ...] = ()
    skip_clock_in_emulation: bool = False
    pin_ops: tuple[RegOp, ...] = ()
    flash_tool: FlashTool | None = None
    serial_port: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_embedded(self) -> bool:
        return self.kind in ("qemu", "device")

    @property
    def features(self) -> frozenset[str]:
        """Core features kernels are chosen by; none for the host, whose C
        must compile anywhere."""
        return self.core.features if self.core else frozenset()


def _board_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(data_dir("boards").glob("*.toml"))}


def _aliases(files: dict[str, Path]) -> dict[str, str]:
    aliases = {}
    for name, path in files.items():
        for alias in _read(path).get("aliases", []):
            aliases[alias] = name
    return aliases


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BoardError(f"board file {path} is unreadable: {exc}") from None


def board_names() -> list[str]:
    return list(_board_files())


def resolve_name(name: str | None) -> str:
    """Canonical board name for a name or alias; None means the default board."""
    files = _board_files()
    name = name or DEFAULT_BOARD
    name = _aliases(files).get(name, name)
    if name not in files:
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(files)}")
    return name


def load_board(name: str | None = None) -> Board:
    name = resolve_name(name)
    path = _board_files()[name]
    data = _read(path)
    try:
        return _parse(data)
    except KeyError as exc:
        raise BoardError(f"board file {path} lacks the key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BoardError(f"board file {path}: {exc}") from None


def _parse(data: dict[str, Any]) -> Board:
    kind = data["kind"]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    common = dict(
        name=data["name"],
        kind=kind,
        description=data.get("description", ""),
        cc=data.get("cc", "gcc" if kind == "host" else "arm-none-eabi-gcc"),
        cflags=tuple(data.get("cflags", ())),
        aliases=tuple(data.get("aliases", ())),
        raw=data,
    )
    if kind == "host":
        return Board(**common)
    return Board(
        **common,
        core=_core(data["core"]),
        memory=_memory(data["memory"]),
        uart=_uart(data["uart"]),
        counter=_counter(data["counter"], kind),
        qemu_machine=data["qemu"]["machine"] if kind == "qemu" else None,
        clock_ops=_ops(data.get("clock", {}).get("ops", ())),
        skip_clock_in_emulation=bool(data.get("clock", {}).get("skip_in_emulation", False)),
        pin_ops=_ops(data.get("pins", {}).get("ops", ())),
        flash_tool=_flash_tool(data.get("flash_tool")) if kind == "device" else None,
        serial_port=data.get("serial", {}).get("port"),
    )


def _core(d: dict[str, Any]) -> Core:
    core = Core(cpu=d["cpu"], float_abi=d.get("float_abi", "soft"), fpu=d.get("fpu"),
                dsp=bool(d.get("dsp", False)), mve=d.get("mve"), opt=d.get("opt", "-O2"),
                core_hz=int(d["core_hz"]))
    if core.mve not in (None, "int", "float"):
        raise ValueError(f"core.mve {core.mve!r} must be \"int\" or \"float\"")
    if core.mve and not core.dsp:
        raise ValueError("core.mve needs core.dsp: every Armv8.1-M core with Helium has the DSP extension")
    if core.float_abi not in ("soft", "softfp", "hard"):
        raise ValueError(f"core.float_abi {core.float_abi!r} must be soft, softfp or hard")
    if core.float_abi != "soft" and not core.fpu:
        raise ValueError("core.float_abi uses an FPU but core.fpu is not given")
    if core.opt not in ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz"):
        raise ValueError(f"core.opt {core.opt!r} is not a gcc optimisation level")
    return core


def _memory(d: dict[str, Any]) -> Memory:
    mem = Memory(flash=Region(int(d["flash"]["base"]), int(d["flash"]["size"])),
                 ram=Region(int(d["ram"]["base"]), int(d["ram"]["size"])),
                 vector_table=int(d["vector_table"]), stack_bytes=int(d.get("stack_bytes", 8192)))
    if not mem.flash.base <= mem.vector_table < mem.flash.end:
        raise ValueError("memory.vector_table lies outside flash")
    if mem.vector_table % 128:
        raise ValueError("memory.vector_table must be 128-byte aligned (VTOR)")
    if mem.stack_bytes >= mem.ram.size:
        raise ValueError("memory.stack_bytes does not fit in RAM")
    return mem


def _uart(d: dict[str, Any]) -> Uart:
    uart = Uart(kind=d["kind"], base=int(d["base"]), clock_hz=int(d["clock_hz"]),
                baud=int(d.get("baud", 115200)), rx_irq=d.get("rx_irq"))
    if uart.kind not in UART_KINDS:
        raise ValueError(f"uart.kind {uart.kind!r} is not one of {', '.join(UART_KINDS)}")
    return uart


def _counter(d: dict[str, Any], kind: str) -> Counter:
    ckind = d["kind"]
    if ckind not in COUNTER_KINDS:
        raise ValueError(f"counter.kind {ckind!r} is not one of {', '.join(COUNTER_KINDS)}")
    if ckind == "icount" and kind != "qemu":
        raise ValueError("counter.kind 'icount' needs QEMU; real boards count cycles ('dwt')")
    if ckind == "dwt":
        return Counter(kind="dwt")
    # A float like 5.952380952 (1e9 / 168e6) becomes the exact 125/21 the firmware uses.
    ratio = Fraction(d["instructions_per_tick"]).limit_denominator(1000)
    return Counter(kind="icount", systick_hz=int(d["systick_hz"]), instructions_per_tick=ratio)


def _ops(items: Any) -> tuple[RegOp, ...]:
    ops = []
    for item in items:
        op = item["op"]
        if op not in REG_OPS:
            raise ValueError(f"register op {op!r} is not one of {', '.join(REG_OPS)}")
        if op == "delay":
            ops.append(RegOp(op, value=int(item["loops"]), why=item.get("why", "")))
            continue
        mask = {"set": item.get("bits", 0), "clear": item.get("bits", 0)}.get(op, item.get("mask", 0))
        ops.append(RegOp(op, addr=int(item["addr"]), mask=int(mask),
                         value=int(item.get("value", 0)), why=item.get("why", "")))
    return tuple(ops)


def _flash_tool(d: dict[str, Any] | None) -> FlashTool:
    d = d or {}
    order = tuple(d.get("order", FLASH_TOOLS))
    for tool in order:
        if tool not in FLASH_TOOLS:
            raise ValueError(f"flash_tool.order names {tool!r}; known: {', '.join(FLASH_TOOLS)}")
    return FlashTool(order=order, openocd=tuple(d.get("openocd", ())),
                     pyocd_target=d.get("pyocd_target", ""))
