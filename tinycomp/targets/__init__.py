"""Targets: build generated C for a board, run it, talk to it.

The runner interface (in the spirit of TVM's project API), one class per
board kind, all subclasses of `tinycomp.targets.base.Runner`:

    runner = get_runner("qemu", build_dir)      # board name or alias, or a Board
    runner.build(model_src)                     # OUT/src with tinycomp_model.h/.c, weights
    with runner:                                # start(): flash / launch emulator / spawn
        info = runner.describe()                # ModelInfo: hash, sizes, shapes, quantization
        r = runner.infer(input_bytes)           # InferResult(output, count, unit)
        p = runner.profile(input_bytes)         # ProfileResult(output, total, per_layer, unit)
                                                # close() on exit, always (kills QEMU)

- `build(model_src, ...)` writes everything into build_dir; `start()` uses
  what is there, so one build serves many runs (and many runners).
- `count` is instructions under QEMU (-icount shift=0, deterministic), core
  cycles on a real board (DWT), None on the host.
- Failures are one-line TinycompErrors: TargetTimeout (silent port, hung
  emulator), TargetError (emulator died: exit code and stderr tail; port
  vanished; no flash tool), ProtocolError (garbled or refused reply),
  BuildError / BoardError (toolchain missing, model does not fit).

Runners: `QemuRunner` (kind "qemu"; port="socket" or "pty"), `DeviceRunner`
(kind "device"; port = serial device, default from the board file; flashes
with openocd / st-flash / pyocd), and `HostRunner` (kind "host", in
tinycomp/targets/host.py: a child process fed raw bytes over pipes).

Modules: firmware (build), protocol (frame codec), link (request/reply),
transport (pyserial), qemu (emulator process), flashing, serial_runner.
"""
from __future__ import annotations

from pathlib import Path

from ..boards import Board, load_board
from ..errors import BoardError
from .base import InferResult, ProfileResult, Runner

__all__ = ["get_runner", "Runner", "InferResult", "ProfileResult"]


def get_runner(board: str | Board | None, build_dir: Path, port: str | None = None) -> Runner:
    """The runner for a board (None: the default board).

    port: for QEMU "socket" (default) or "pty"; for a device its serial port.
    """
    if not isinstance(board, Board):
        board = load_board(board)
    if board.kind == "qemu":
        if port not in (None, "socket", "pty"):
            raise BoardError(f"{board.name} is emulated: --port takes 'socket' or 'pty', not {port!r}")
        from .serial_runner import QemuRunner
        return QemuRunner(board, build_dir, serial=port or "socket")
    if board.kind == "device":
        from .serial_runner import DeviceRunner
        return DeviceRunner(board, build_dir, port=port)
    from .host import HostRunner
    return HostRunner(board, build_dir)
