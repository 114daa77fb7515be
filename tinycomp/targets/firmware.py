"""Build the on-target firmware (firmware/*.c) around a generated model library.

The board's TOML data becomes two generated files, board_config.h and
linker.ld; one arm-none-eabi-gcc call compiles and links everything into
firmware.elf (plus .bin, .hex, .map). A model that does not fit is refused
with a BoardError that names the region, the bytes needed and available.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2

from ..boards import Board
from ..errors import BoardError, BuildError
from ..resources import data_dir
from .base import CHILD, compiler_error

FIRMWARE_SOURCES = ("startup.c", "board_init.c", "timer.c", "protocol.c", "main.c",
                    "semihost.c", "libc.c")
UART_SOURCES = {"cmsdk": "uart_cmsdk.c", "stm32-usart-v1": "uart_stm32.c",
                "stm32-usart-v2": "uart_stm32.c", "stm32-lpuart": "uart_stm32.c"}
MODEL_SOURCES = ("tinycomp_model.c", "tinycomp_weights.c")
TOOLCHAIN_HINT = "install it with: apt-get install gcc-arm-none-eabi (make setup does)"


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of one firmware build; the defaults are what users get."""
    test_commands: bool = False      # HANG/EXIT commands, for the emulator tests only
    skip_clock: bool | None = None   # None: skip when emulated and the board says so
    rx_timeout_ms: int = 100         # a half-received frame is dropped after this silence
    extra_cflags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FirmwareImage:
    board: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    flash_used: int
    flash_size: int
    ram_used: int
    ram_size: int
    weights_bytes: int
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (addr, size)

    def summary(self) -> dict:
        """Plain data; file paths relative to the build folder, which may move
        (tinycomp builds in a staging folder and renames it into place)."""
        d = asdict(self)
        for key in ("elf", "bin", "hex", "map"):
            d[key] = Path(d[key]).name
        return d


def _tool(board: Board, name: str) -> str:
    prefix = board.cc[: -len("gcc")] if board.cc.endswith("gcc") else ""
    path = shutil.which(prefix + name)
    if path is None:
        raise BuildError(f"{prefix + name} not found; {TOOLCHAIN_HINT}")
    return path


def uart_divisor(board: Board) -> int:
    """The value of the UART's baud register, checked against the block's limits."""
    u = board.uart
    if u.kind == "stm32-lpuart":
        div, lo, hi = round(256 * u.clock_hz / u.baud), 0x300, 1 << 20
    elif u.kind == "cmsdk":
        div, lo, hi = u.clock_hz // u.baud, 16, 1 << 20
    else:
        div, lo, hi = round(u.clock_hz / u.baud), 16, 1 << 16
    if not lo <= div < hi:
        raise BoardError(f"board {board.name}: {u.baud} baud from a {u.clock_hz} Hz UART clock "
                         f"needs a divisor of {div}, outside {lo}..{hi - 1}")
    return div


def _render(board: Board, options: BuildOptions, gen_dir: Path) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("firmware"))),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    skip = options.skip_clock
    if skip is None:
        skip = board.kind == "qemu" and board.skip_clock_in_emulation
    ctx = dict(board=board, test_commands=options.test_commands, skip_clock=skip,
               rx_timeout_ms=options.rx_timeout_ms, uart_divisor=uart_divisor(board))
    gen_dir.mkdir(parents=True, exist_ok=True)
    for name, out in (("board_config.h.j2", "board_config.h"), ("linker.ld.j2", "linker.ld")):
        (gen_dir / out).write_text(env.get_template(name).render(**ctx))


def cflags(board: Board, options: BuildOptions = BuildOptions()) -> list[str]:
    return [*board.core.cflags(), board.core.opt, "-std=c99", "-g", "-ffreestanding",
            "-ffunction-sections", "-fdata-sections", "-fno-tree-loop-distribute-patterns",
            "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror",
            *board.cflags, *options.extra_cflags]


def build_firmware(board: Board, model_src: Path, build_dir: Path,
                   options: BuildOptions = BuildOptions()) -> FirmwareImage:
    """Compile firmware + model for `board` into build_dir; refuse if it does not fit."""
    if not board.is_embedded:
        raise BuildError(f"board {board.name} is a {board.kind} board; firmware is for MCUs")
    model_src = Path(model_src)
    if not (model_src / "tinycomp_model.h").is_file():
        raise BuildError(f"{model_src} holds no tinycomp_model.h; generate the model first")
    _check_frame_limits(board, model_src / "tinycomp_model.h")
    gcc = _tool(board, "gcc")
    build_dir = Path(build_dir)
    gen_dir = build_dir / "gen"
    _render(board, options, gen_dir)
    fw = data_dir("firmware")
    sources = [fw / s for s in (*FIRMWARE_SOURCES, UART_SOURCES[board.uart.kind])]
    sources += [model_src / s for s in MODEL_SOURCES if (model_src / s).is_file()]
    elf, mapfile = build_dir / "firmware.elf", build_dir / "firmware.map"
    cmd = [gcc, *cflags(board, options), "-I", str(gen_dir), "-I", str(fw), "-I", str(model_src),
           "-DTINYCOMP_LAYER_HOOK(i)=fw_layer_mark(i)", "-include", str(fw / "fw_hook.h"),
           *map(str, sources), "-nostdlib", "-T", str(gen_dir / "linker.ld"),
           "-Wl,--gc-sections", f"-Wl,-Map={mapfile}", "-Wl,--no-warn-rwx-segments",
           "-o", str(elf), "-lgcc"]
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", **CHILD)
    if result.returncode != 0:
        _raise_overflow(board, result.stderr)
        raise compiler_error(gcc, f"firmware build for {board.name}", result.stderr)
    objcopy = _tool(board, "objcopy")
    for fmt, path in (("binary", build_dir / "firmware.bin"), ("ihex", build_dir / "firmware.hex")):
        subprocess.run([objcopy, "-O", fmt, str(elf), str(path)], check=True, capture_output=True)
    image = _measure(board, build_dir)
    (build_dir / "firmware.json").write_text(json.dumps(image.summary(), indent=2))
    return image


def _check_frame_limits(board: Board, header: Path) -> None:
    """Inputs and replies travel in one frame whose length field is a u16."""
    text = header.read_text()
    sizes = {k: int(v) for k, v in re.findall(r"#define TINYCOMP_(INPUT_BYTES_TOTAL|OUTPUT_BYTES_TOTAL"
                                              r"|NUM_LAYERS)\s+(\d+)", text)}
    if len(sizes) < 3:
        raise BuildError(f"{header} lacks TINYCOMP_INPUT_BYTES_TOTAL/OUTPUT_BYTES_TOTAL/NUM_LAYERS")
    reply = sizes["OUTPUT_BYTES_TOTAL"] + 10 + 8 * (sizes["NUM_LAYERS"] + 1)
    for what, size in (("inputs", sizes["INPUT_BYTES_TOTAL"]), ("outputs (with profile)", reply)):
        if size > 0xFFFF:
            raise BoardError(f"the model's {what} take {size} bytes, more than the serial protocol's "
                             f"65535-byte frame; {board.name} cannot exchange them")


_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def _raise_overflow(board: Board, stderr: str) -> None:
    """Turn ld's region overflow into a refusal that says how much is missing."""
    over = {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(stderr)}
    if not over:
        return
    regions = {"FLASH": board.memory.flash.size, "RAM": board.memory.ram.size}
    parts = []
    for region, extra in over.items():
        avail = regions.get(region, 0)
        parts.append(f"{region} needs {avail + extra} bytes, {avail} available "
                     f"(over by {extra})")
    raise BoardError(f"the model does not fit on {board.name}: " + "; ".join(parts))


_SECTION = re.compile(r"\]\s+(\S+)\s+\S+\s+([0-9a-f]{8})\s+[0-9a-f]+\s+([0-9a-f]+)\s+[0-9a-f]+\s+(\w*)")


def sections(board: Board, elf: Path) -> dict[str, tuple[int, int]]:
    """Allocated sections only (debug info also sits at address 0): name -> (addr, size)."""
    out = subprocess.run([_tool(board, "readelf"), "-S", "-W", str(elf)], check=True,
                         capture_output=True, text=True).stdout
    found = {}
    for m in _SECTION.finditer(out):
        name, addr, size, flags = m.groups()
        if "A" in flags:
            found[name] = (int(addr, 16), int(size, 16))
    return found


def _measure(board: Board, build_dir: Path) -> FirmwareImage:
    elf = build_dir / "firmware.elf"
    secs = sections(board, elf)
    flash, ram = board.memory.flash, board.memory.ram
    flash_used = ram_used = 0
    for name, (addr, size) in secs.items():
        if flash.base <= addr < flash.end:
            flash_used += size
        elif ram.base <= addr < ram.end:
            ram_used += size
            if name == ".data":
                flash_used += size   # its initial values are stored in flash
    nm = subprocess.run([_tool(board, "nm"), "-S", str(elf)], check=True, capture_output=True,
                        text=True).stdout
    weights = sum(int(p[1], 16) for p in (ln.split() for ln in nm.splitlines())
                  if len(p) == 4 and p[3].startswith("tinycomp_w_"))
    return FirmwareImage(board=board.name, elf=elf, bin=build_dir / "firmware.bin",
                         hex=build_dir / "firmware.hex", map=build_dir / "firmware.map",
                         flash_used=flash_used, flash_size=flash.size, ram_used=ram_used,
                         ram_size=ram.size, weights_bytes=weights, sections=secs)
