"""Launch qemu-system-arm for an emulated board and keep an eye on it.

-icount shift=0 makes instruction counts deterministic (SysTick advances by
virtual time = instructions); semihosting lets the firmware exit with a
code; -display/-monitor none keep stdio free (a 0x01 byte on -nographic's
muxed stdio would kill QEMU).
"""
from __future__ import annotations

import collections
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from ..boards import Board
from ..errors import BuildError, TargetError, TargetTimeout
from .base import CHILD

QEMU = "qemu-system-arm"
_PTY = re.compile(r"char device redirected to (/dev/pts/\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuProcess:
    """One emulator run. serial: "socket" (TCP server, waits for us) or "pty"."""

    def __init__(self, board: Board, elf: Path, serial: str = "socket",
                 extra_args: tuple[str, ...] = ()):
        if serial not in ("socket", "pty"):
            raise ValueError(f"serial must be 'socket' or 'pty', not {serial!r}")
        self.board, self.elf, self.serial, self.extra_args = board, Path(elf), serial, extra_args
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.pty: str | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._pty_seen = threading.Event()

    def command(self) -> list[str]:
        exe = shutil.which(QEMU)
        if exe is None:
            raise BuildError(f"{QEMU} not found; install it with: apt-get install qemu-system-arm")
        if self.serial == "socket":
            serial = f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on"
        else:
            serial = "pty"
        return [exe, "-machine", self.board.qemu_machine, "-display", "none",
                "-monitor", "none", "-icount", "shift=0",
                "-semihosting-config", "enable=on,target=native",
                "-serial", serial, "-kernel", str(self.elf), *self.extra_args]

    def start(self, timeout: float = 10.0) -> None:
        if not self.elf.is_file():
            raise TargetError(f"no firmware at {self.elf}; build first")
        for _attempt in range(5):
            self.port = free_port() if self.serial == "socket" else None
            self._launch()
            if self.serial == "pty":
                self._wait_pty(timeout)
                return
            time.sleep(0.02)
            if self.alive() or "Address already in use" not in self.stderr_tail():
                return   # a socket race: another process took the port; try another
        raise TargetError(f"QEMU could not listen on a TCP port: {self.stderr_tail()}")

    def _launch(self) -> None:
        self._stderr.clear()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", **CHILD)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc: subprocess.Popen) -> None:
        try:
            # QEMU 7.2 prints "char device redirected to" on stdout, errors on stderr.
            for line in proc.stdout:
                self._stderr.append(line.rstrip())
                m = _PTY.search(line)
                if m:
                    self.pty = m.group(1)
                    self._pty_seen.set()
        finally:
            proc.stdout.close()   # here, not in close(): this thread owns the pipe

    def _wait_pty(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._pty_seen.wait(0.05):
            if not self.alive():
                raise TargetError(self.death())
            if time.monotonic() > deadline:
                raise TargetTimeout(f"QEMU printed no pty path within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stderr_tail(self, lines: int = 5) -> str:
        tail = [ln for ln in list(self._stderr) if "waiting for connection" not in ln]
        return " | ".join(tail[-lines:])

    def death(self) -> str:
        """One line on how the emulator ended, for error messages."""
        code = self.returncode
        what = f"emulator died: QEMU ({self.board.qemu_machine}) exited with code {code}"
        if code is not None and code >= 128:
            what += f" (firmware fault, exception {code - 128})"
        tail = self.stderr_tail()
        return f"{what}; stderr: {tail}" if tail else what

    def close(self) -> None:
        """Always kill: a hung guest never exits by itself."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
