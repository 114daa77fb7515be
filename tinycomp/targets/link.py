"""Request/reply over a Transport with the framed protocol.

Replies are matched by seq; frames that belong to nobody (the device's
reports of garbage or dropped frames) are kept in `notices` rather than
mistaken for answers. Every failure is one typed line: a silent port or hung
emulator (TargetTimeout, worded by the runner), a garbled reply or a refusal
(ProtocolError).
"""
from __future__ import annotations

import time
from typing import Callable

from ..errors import ProtocolError, TargetError
from .protocol import REPLY, UNSOLICITED_SEQ, BadFrame, Cmd, Decoder, Frame, encode
from .transport import Transport


class DeviceRejected(ProtocolError):
    """The device answered a request with an ERROR frame."""

    def __init__(self, message: str, frame: Frame):
        super().__init__(message)
        self.frame = frame


class Link:
    def __init__(self, transport: Transport, silent: Callable[[float], TargetError]):
        self.transport = transport
        self._silent = silent   # builds the error for "no reply within t seconds"
        self.decoder = Decoder()
        self.notices: list[Frame] = []
        self._seq = 0

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) % UNSOLICITED_SEQ   # 0xFF is the device's own
        return self._seq

    def send_raw(self, data: bytes) -> None:
        self.transport.write(data)

    def read_frame(self, timeout: float) -> Frame:
        """The next frame from the device, whoever it is for."""
        deadline = time.monotonic() + timeout
        skipped_before = self.decoder.skipped
        while True:
            try:
                frame = self.decoder.next_frame()
            except BadFrame as exc:
                raise ProtocolError(f"garbled reply from {self.transport.name}: {exc}") from None
            if frame is not None:
                return frame
            if time.monotonic() >= deadline:
                junk = self.decoder.skipped - skipped_before
                if junk:
                    raise ProtocolError(f"garbled reply from {self.transport.name}: {junk} bytes "
                                        f"that are not frames (wrong baud rate or firmware?)")
                raise self._silent(timeout)
            self.decoder.feed(self.transport.read_some(deadline))

    def request(self, cmd: int, payload: bytes = b"", timeout: float = 5.0) -> Frame:
        seq = self.next_seq()
        self.send_raw(encode(cmd, seq, payload))
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            if frame.seq != seq:
                self.notices.append(frame)
                continue
            if frame.is_error:
                raise DeviceRejected(f"{self.transport.name} rejected {_name(cmd)}: {frame}", frame)
            if frame.cmd != cmd | REPLY:
                raise ProtocolError(f"unexpected reply from {self.transport.name} to "
                                    f"{_name(cmd)}: {frame}")
            return frame


def _name(cmd: int) -> str:
    try:
        return Cmd(cmd).name
    except ValueError:
        return f"command 0x{cmd:02x}"
