"""Run one profiled inference in QEMU with tinycomp's TCG plugin
(firmware/qemu_plugin/tc_trace.c) and read back its per-layer summary.

The plugin is compiled with the host gcc into tinycomp's user cache
($XDG_CACHE_HOME/tinycomp, else ~/.cache/tinycomp; a .so named after the
source's hash, so an edited plugin is rebuilt), never into the build folder:
a build folder holds only what its manifest lists. The trace goes to a
temporary folder. QEMU 7.2 loads the plugin with -plugin; the firmware is the
one `tinycomp build` made: nothing in it changes for tracing.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board
from ..errors import BuildError, TargetError
from ..resources import data_dir
from .model import Block
from .thumb import classify, disassemble
from .timing import Timing


@dataclass(frozen=True)
class Trace:
    phases: int                      # marker calls: layers + 1
    blocks: tuple[Block, ...]
    output: bytes                    # the model's output in that run
    systick_total: int               # the firmware's own count (instructions), for cross-checks
    systick_layers: tuple[int, ...]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tinycomp" / "qemu-plugin"


def build_plugin(cache: Path | None = None) -> Path:
    src_dir = data_dir("firmware") / "qemu_plugin"
    source = (src_dir / "tc_trace.c").read_bytes() + (src_dir / "tc_qemu_plugin.h").read_bytes()
    cache = Path(cache or cache_dir())
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create the plugin cache {cache}: {exc.strerror}") from None
    so = cache / f"tc_trace-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if so.is_file():
        return so
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("the cycle tracer needs the host C compiler: apt-get install gcc")
    tmp = so.with_suffix(f".{os.getpid()}.tmp")   # parallel builders each write their own
    proc = subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-fvisibility=hidden",
                           "-o", str(tmp), str(src_dir / "tc_trace.c")], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building the QEMU plugin failed: {proc.stderr.strip()[:300]}")
    tmp.replace(so)
    return so


def symbol(elf: Path, name: str, nm: str = "arm-none-eabi-nm") -> int:
    try:
        out = subprocess.run([nm, str(elf)], check=True, capture_output=True, text=True).stdout
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"{nm} could not read {elf}: {exc}") from None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16) & ~1
    raise BuildError(f"{elf} has no {name}: rebuild it with this version of tinycomp")


def _qemu_arg(value: str) -> str:
    return value.replace(",", ",,")   # QEMU's option syntax doubles literal commas


def run_traced(board: Board, build_dir: Path, data: bytes, layers: int, timing: Timing) -> Trace:
    """Profile one inference of the firmware in build_dir/build with the plugin."""
    fw_dir = Path(build_dir) / "build"
    elf = fw_dir / "firmware.elf"
    plugin = build_plugin()
    with tempfile.TemporaryDirectory(prefix="tinycomp-trace-") as tmp:
        return _run(board, fw_dir, elf, plugin, Path(tmp) / "trace.txt", data, layers, timing)


def _run(board, fw_dir, elf, plugin, out, data, layers, timing) -> Trace:
    from ..targets.serial_runner import QemuRunner

    mem = timing.memory
    args = [f"out={out}", f"mark={symbol(elf, 'fw_layer_mark'):x}", f"marks={layers + 1}",
            f"flash={board.memory.flash.base:x}:{board.memory.flash.end:x}",
            f"dlines={mem.dcache_lines}", f"dline={mem.dcache_line_bytes}"]
    plugin_opt = ",".join([_qemu_arg(str(plugin))] + [_qemu_arg(a) for a in args])
    with QemuRunner(board, fw_dir, qemu_args=("-plugin", plugin_opt)) as runner:
        result = runner.profile(data)
    if not out.is_file():
        raise TargetError("the QEMU plugin wrote no trace: the firmware never reached its last layer mark")
    phases, raw = parse_trace(out.read_text())
    if phases != layers + 1:
        raise TargetError(f"trace has {phases} phases for {layers} layers")
    blocks = tuple(_decode(raw, disassemble(elf)))
    return Trace(phases, blocks, result.output, result.total, tuple(result.per_layer))


def parse_trace(text: str) -> tuple[int, list[tuple]]:
    """(phases, [(vaddr, [(addr, size, flash, miss, unaligned)...], exec, fall)])."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("phases ") or lines[-1] != "end":
        raise TargetError("the QEMU plugin's trace is incomplete")
    n = int(lines[0].split()[1])
    blocks = []
    for line in lines[1:-1]:
        f = line.split()
        if f[0] == "tb":
            counts = [int(x) for x in f[4:]]
            blocks.append((int(f[1], 16), [], tuple(counts[:n]), tuple(counts[n:2 * n])))
        elif f[0] == "in" and blocks:
            counts = [int(x) for x in f[3:]]
            blocks[-1][1].append((int(f[1], 16), int(f[2]), tuple(counts[:n]), tuple(counts[n:2 * n]),
                                  tuple(counts[2 * n:3 * n])))
        else:
            raise TargetError(f"unexpected line in the QEMU plugin's trace: {line[:60]!r}")
    return n, blocks


def _decode(raw, table: dict[int, tuple[int, str]]):
    cache: dict[int, object] = {}
    for vaddr, insns, executions, fall in raw:
        decoded = []
        for addr, size, *_ in insns:
            if addr not in table or table[addr][0] != size:
                raise TargetError(f"QEMU ran an instruction at {addr:#x} that the ELF's disassembly "
                                  "does not have: the trace does not belong to this firmware")
            if addr not in cache:
                cache[addr] = classify(table[addr][1])
            decoded.append(cache[addr])
        yield Block(vaddr, tuple(decoded), executions, fall,
                    flash_reads=tuple(i[2] for i in insns), flash_misses=tuple(i[3] for i in insns),
                    unaligned=tuple(i[4] for i in insns))
