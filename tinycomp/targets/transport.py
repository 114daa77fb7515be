"""Byte pipes to a target over pyserial: a TCP socket (QEMU's -serial tcp:...),
a pty (QEMU's -serial pty) or a real serial port; all look the same above here.

Errors become one-line TargetErrors; "why" callbacks let the runner explain a
vanished port (e.g. the emulator died) better than the OS error can.
"""
from __future__ import annotations

import time
from typing import Callable

import serial

from ..errors import TargetError, TargetTimeout


class Transport:
    """A pyserial port with deadline-based reads."""

    def __init__(self, port: serial.SerialBase, name: str,
                 explain: Callable[[], str | None] = lambda: None):
        self.port, self.name, self._explain = port, name, explain

    @classmethod
    def socket(cls, host: str, port: int, connect_timeout: float = 5.0,
               alive: Callable[[], bool] = lambda: True,
               explain: Callable[[], str | None] = lambda: None) -> "Transport":
        """Connect to a TCP serial server, retrying while it starts listening."""
        url = f"socket://{host}:{port}"
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                return cls(serial.serial_for_url(url, timeout=0.05, write_timeout=10),
                           f"{host}:{port}", explain)
            except (serial.SerialException, OSError) as exc:
                if not alive():
                    raise TargetError(explain() or f"cannot connect to {url}: {exc}") from None
                if time.monotonic() > deadline:
                    raise TargetTimeout(f"nothing listens on {url} after "
                                        f"{connect_timeout:.0f} s: {exc}") from None
                time.sleep(0.02)

    @classmethod
    def serial_port(cls, path: str, baud: int,
                    explain: Callable[[], str | None] = lambda: None) -> "Transport":
        try:
            port = serial.Serial(path, baud, timeout=0.05, write_timeout=10)
        except (serial.SerialException, OSError) as exc:
            raise TargetError(f"cannot open serial port {path}: {exc}") from None
        return cls(port, path, explain)

    def _vanished(self, exc: Exception) -> TargetError:
        why = self._explain()
        return TargetError(why or f"serial port {self.name} vanished: {exc}")

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise self._vanished(exc) from None

    def read_some(self, deadline: float) -> bytes:
        """Whatever arrives before the deadline (possibly nothing)."""
        try:
            while True:
                waiting = self.port.in_waiting
                data = self.port.read(max(1, waiting))
                if data or time.monotonic() >= deadline:
                    return data
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's socket backend after the peer closed.
            raise self._vanished(exc) from None

    def discard_input(self) -> None:
        try:
            self.port.reset_input_buffer()
        except (serial.SerialException, OSError):
            pass

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
