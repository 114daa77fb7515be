"""Put firmware on a real board with openocd, st-flash or pyocd, in the order
the board data prefers; a clear error names the tools when none is installed."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..boards import Board
from ..errors import TargetError, TargetTimeout
from .base import CHILD

FLASH_TIMEOUT = 120.0


def flash_command(board: Board, tool: str, elf: Path, binary: Path) -> list[str]:
    ft = board.flash_tool
    if tool == "openocd":
        if not ft.openocd:
            raise TargetError(f"board {board.name} gives no openocd configuration")
        return ["openocd", *ft.openocd, "-c", f"program {elf} verify reset exit"]
    if tool == "st-flash":
        return ["st-flash", "--reset", "write", str(binary), f"0x{board.memory.flash.base:08x}"]
    if not ft.pyocd_target:
        raise TargetError(f"board {board.name} gives no pyocd target name")
    return ["pyocd", "flash", "--target", ft.pyocd_target, str(elf)]


def pick_tool(board: Board) -> str:
    for tool in board.flash_tool.order:
        if shutil.which(tool):
            return tool
    raise TargetError(f"no flash tool for {board.name}: install one of "
                      f"{', '.join(board.flash_tool.order)} (e.g. apt-get install openocd)")


def flash(board: Board, elf: Path, binary: Path, tool: str | None = None) -> str:
    """Flash and reset the board; returns the tool used."""
    tool = tool or pick_tool(board)
    if shutil.which(tool) is None:
        raise TargetError(f"flash tool {tool} is not installed")
    cmd = flash_command(board, tool, elf, binary)
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=FLASH_TIMEOUT, **CHILD)
    except subprocess.TimeoutExpired:
        raise TargetTimeout(f"{tool} did not finish flashing {board.name} within "
                            f"{FLASH_TIMEOUT:.0f} s (is the board connected?)") from None
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise TargetError(f"{tool} failed to flash {board.name} (exit {result.returncode}): {tail}")
    return tool
