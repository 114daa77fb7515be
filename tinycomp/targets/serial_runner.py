"""Runners for boards that run tinycomp's firmware and speak the framed
protocol over a serial line: QEMU-emulated boards and real boards."""
from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

from ..boards import Board
from ..errors import InputDataError, ProtocolError, TargetError, TargetTimeout
from .base import InferResult, ProfileResult, Runner
from .firmware import BuildOptions, FirmwareImage, build_firmware
from .flashing import flash
from .link import Link
from .protocol import Cmd, ModelInfo, parse_describe, parse_infer, parse_profile
from .qemu import QemuProcess
from .transport import Transport

# Bytes per second assumed when sizing timeouts for long frames (QEMU's
# measured round trip is ~18 KB/s; a 115200-baud UART moves ~11 KB/s).
SLOWEST_LINK = 8000


class SerialRunner(Runner):
    """Shared protocol client; subclasses launch the target and open the port."""

    def __init__(self, board: Board, build_dir: Path, timeout: float = 30.0,
                 start_timeout: float = 10.0):
        super().__init__(board, build_dir)
        self.timeout, self.start_timeout = timeout, start_timeout
        self.link: Link | None = None
        self.info: ModelInfo | None = None

    # -- build --------------------------------------------------------------
    def build(self, model_src: Path, options: BuildOptions = BuildOptions()) -> FirmwareImage:
        return build_firmware(self.board, model_src, self.build_dir, options)

    @property
    def elf(self) -> Path:
        return self.build_dir / "firmware.elf"

    # -- lifecycle ----------------------------------------------------------
    @property
    def started(self) -> bool:
        return self.link is not None

    def _open(self) -> Transport:
        raise NotImplementedError

    def _silent(self, timeout: float) -> TargetError:
        raise NotImplementedError

    def start(self) -> None:
        try:
            self.link = Link(self._open(), self._silent)
            self.info = self._handshake()
        except BaseException:
            self.close()
            raise

    def _handshake(self) -> ModelInfo:
        """DESCRIBE until answered: the first bytes can be lost while the
        firmware boots (QEMU's STM32 USART drops them before it is enabled,
        a pty drops output nobody reads yet, a real board may be resetting)."""
        deadline = time.monotonic() + self.start_timeout
        attempt_timeout = 0.3
        while True:
            try:
                info = self.describe(timeout=attempt_timeout)
                self.link.notices.clear()   # reports about the lost bytes
                return info
            except (TargetTimeout, ProtocolError):
                if time.monotonic() + attempt_timeout > deadline:
                    raise
                attempt_timeout = min(attempt_timeout * 2, 2.0)

    def close(self) -> None:
        if self.link is not None:
            self.link.transport.close()
            self.link = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- commands -----------------------------------------------------------
    def _link(self) -> Link:
        if self.link is None:
            raise TargetError(f"runner for {self.board.name} is not started")
        return self.link

    def _timeout(self, nbytes: int) -> float:
        return self.timeout + nbytes / SLOWEST_LINK

    def describe(self, timeout: float | None = None) -> ModelInfo:
        frame = self._link().request(Cmd.DESCRIBE, b"", timeout or self._timeout(0))
        try:
            return parse_describe(frame.payload)
        except struct.error as exc:
            raise ProtocolError(f"garbled DESCRIBE reply from {self.board.name}: {exc}") from None

    def _check_input(self, data: bytes) -> bytes:
        data = bytes(data)
        if self.info is not None and len(data) != self.info.input_size:
            raise InputDataError(f"input of {len(data)} bytes; the model on {self.board.name} "
                                 f"takes {self.info.input_size}")
        return data

    def infer(self, data: bytes) -> InferResult:
        data = self._check_input(data)
        frame = self._link().request(Cmd.INFER, data, self._timeout(len(data)))
        try:
            count, out = parse_infer(frame.payload, self.info.output_size)
        except struct.error as exc:
            raise ProtocolError(f"garbled INFER reply from {self.board.name}: {exc}") from None
        return InferResult(out, count, self.info.counter_unit)

    def profile(self, data: bytes) -> ProfileResult:
        data = self._check_input(data)
        frame = self._link().request(Cmd.PROFILE, data, self._timeout(len(data)))
        try:
            total, layers, out = parse_profile(frame.payload, self.info.output_size)
        except struct.error as exc:
            raise ProtocolError(f"garbled PROFILE reply from {self.board.name}: {exc}") from None
        return ProfileResult(out, total, layers, self.info.counter_unit)

    def reset_state(self) -> None:
        frame = self._link().request(Cmd.RESET, b"", self._timeout(0))
        if frame.payload:
            raise ProtocolError(f"garbled RESET reply from {self.board.name}: {len(frame.payload)} bytes")

    def echo(self, data: bytes) -> bytes:
        return self._link().request(Cmd.ECHO, bytes(data), self._timeout(2 * len(data))).payload


class QemuRunner(SerialRunner):
    """An emulated board. serial: "socket" (TCP, default) or "pty". qemu_args
    are added to QEMU's command line (the cycle tracer's -plugin)."""

    def __init__(self, board: Board, build_dir: Path, serial: str = "socket",
                 qemu_args: tuple[str, ...] = (), **kw):
        super().__init__(board, build_dir, **kw)
        self.serial = serial
        self.qemu_args = tuple(qemu_args)
        self.qemu: QemuProcess | None = None

    def _explain(self) -> str | None:
        """Why the port vanished: usually QEMU is exiting and not yet reaped."""
        if self.qemu is None or self.qemu.proc is None:
            return None
        try:
            self.qemu.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None
        return self.qemu.death()

    def _open(self) -> Transport:
        self.qemu = QemuProcess(self.board, self.elf, self.serial, self.qemu_args)
        self.qemu.start()
        if self.serial == "pty":
            return Transport.serial_port(self.qemu.pty, self.board.uart.baud, self._explain)
        return Transport.socket("127.0.0.1", self.qemu.port, alive=self.qemu.alive,
                                explain=self._explain)

    def _silent(self, timeout: float) -> TargetError:
        time.sleep(0.05)   # a dying QEMU closes the port a moment before it is reaped
        if self.qemu is not None and not self.qemu.alive():
            return TargetError(self.qemu.death())
        return TargetTimeout(f"emulator hung: QEMU ({self.board.qemu_machine}) is running but "
                             f"sent no reply within {timeout:.1f} s")

    def close(self) -> None:
        super().close()
        if self.qemu is not None:
            self.qemu.close()


class DeviceRunner(SerialRunner):
    """A real board on a serial port (the ST-LINK virtual COM port)."""

    def __init__(self, board: Board, build_dir: Path, port: str | None = None,
                 flash_tool: str | None = None, do_flash: bool = True, **kw):
        super().__init__(board, build_dir, **kw)
        self.port = port or board.serial_port
        self.flash_tool, self.do_flash = flash_tool, do_flash
        if not self.port:
            raise TargetError(f"no serial port for {board.name}: pass one (e.g. /dev/ttyACM0)")

    def _open(self) -> Transport:
        if self.do_flash:
            if not self.elf.is_file():
                raise TargetError(f"no firmware at {self.elf}; build first")
            flash(self.board, self.elf, self.build_dir / "firmware.bin", self.flash_tool)
        return Transport.serial_port(self.port, self.board.uart.baud)

    def _silent(self, timeout: float) -> TargetError:
        return TargetTimeout(f"silent port {self.port}: {self.board.name} sent nothing within "
                             f"{timeout:.1f} s (flashed, reset, right port and baud?)")
