"""The framed serial protocol between tinycomp and its firmware (firmware/protocol.c).

Frame (all integers little-endian):

    0xA5 0x5A | cmd u8 | seq u8 | len u16 | payload[len] | crc u16

crc is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over cmd..payload. Two
sync bytes make a false start in line noise rare; a receive timeout on the
device drops half frames. A reply carries cmd | 0x80 and the request's seq.

Commands and replies:
  DESCRIBE 0x01  ()           -> ModelInfo layout, see parse_describe()
  INFER    0x02  (inputs)     -> count u64 | outputs
  PROFILE  0x03  (inputs)     -> count u64 | n u16 | n x layer count u64 | outputs
  (inputs / outputs: every input's / output's bytes, one after another, in
  the model's order)
  ECHO     0x04  (bytes)      -> the same bytes (link checks, throughput)
  RESET    0x05  ()           -> ()  zeroes the model's state between
                                 inferences (tinycomp_reset_state); firmware
                                 built before it answers UNKNOWN_CMD
  TEST_HANG 0x70, TEST_EXIT 0x71 (code u8): only in test builds
  ERROR    0xFF  <- code u8 | offending cmd u8 | detail u32

Counts are instructions under QEMU (-icount) or core cycles on a board
(DESCRIBE says which). The device sends unsolicited ERROR frames with seq
0xFF (garbage on the line) or with the seq of a frame it dropped
(truncated: detail = bytes of payload received); hosts use seq 0..254.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction

SYNC = b"\xA5\x5A"
HEADER = struct.Struct("<BBH")
REPLY = 0x80
UNSOLICITED_SEQ = 0xFF


class Cmd(IntEnum):
    DESCRIBE = 0x01
    INFER = 0x02
    PROFILE = 0x03
    ECHO = 0x04
    RESET = 0x05
    TEST_HANG = 0x70
    TEST_EXIT = 0x71
    ERROR = 0xFF


class ErrorCode(IntEnum):
    BAD_CRC = 1
    OVERSIZE = 2
    TRUNCATED = 3
    GARBAGE = 4
    UNKNOWN_CMD = 5
    BAD_LENGTH = 6


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def encode(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the u16 length field")
    body = HEADER.pack(cmd, seq, len(payload)) + bytes(payload)
    return SYNC + body + struct.pack("<H", crc16_ccitt(body))


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    payload: bytes

    @property
    def is_error(self) -> bool:
        return self.cmd == Cmd.ERROR

    def error(self) -> tuple[ErrorCode | int, int, int]:
        code, cmd, detail = struct.unpack_from("<BBI", self.payload)
        try:
            code = ErrorCode(code)
        except ValueError:
            pass
        return code, cmd, detail

    def __str__(self) -> str:
        if self.is_error and len(self.payload) >= 6:
            code, cmd, detail = self.error()
            name = code.name if isinstance(code, ErrorCode) else f"code {code}"
            return f"ERROR {name} (cmd 0x{cmd:02x}, seq {self.seq}, detail {detail})"
        return f"frame cmd 0x{self.cmd:02x} seq {self.seq} ({len(self.payload)} bytes)"


class BadFrame(Exception):
    """A frame arrived whole but its CRC does not match."""


class Decoder:
    """Byte-stream -> frames. Bytes outside frames are counted in `skipped`."""

    def __init__(self, max_payload: int = 0xFFFF):
        self.max_payload = max_payload
        self.buf = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_frame(self) -> Frame | None:
        """The next whole frame, None if more bytes are needed; BadFrame on a CRC error."""
        while True:
            start = self.buf.find(SYNC)
            if start < 0:
                keep = 1 if self.buf[-1:] == SYNC[:1] else 0
                self.skipped += len(self.buf) - keep
                del self.buf[: len(self.buf) - keep]
                return None
            if start:
                self.skipped += start
                del self.buf[:start]
            if len(self.buf) < 2 + HEADER.size:
                return None
            cmd, seq, length = HEADER.unpack_from(self.buf, 2)
            if length > self.max_payload:
                self.skipped += 1   # not a real header: look for the next sync
                del self.buf[:1]
                continue
            end = 2 + HEADER.size + length + 2
            if len(self.buf) < end:
                return None
            body = bytes(self.buf[2: end - 2])
            (crc,) = struct.unpack_from("<H", self.buf, end - 2)
            del self.buf[:end]
            if crc != crc16_ccitt(body):
                raise BadFrame(f"CRC 0x{crc:04x} != 0x{crc16_ccitt(body):04x} on cmd 0x{cmd:02x}")
            return Frame(cmd, seq, body[HEADER.size:])


# TFLite's TensorType codes, as the firmware reports them
TYPE_NAMES = {0: "float32", 3: "uint8", 7: "int16", 9: "int8"}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as DESCRIBE reports it."""
    dtype: str
    nbytes: int
    shape: tuple[int, ...]
    scale: float = 0.0           # 0 where not quantized (float32)
    zero_point: int = 0


@dataclass(frozen=True)
class ModelInfo:
    """What DESCRIBE reports (and what a host runner can say from the header)."""
    model_hash: str
    version: str
    board: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    arena_bytes: int
    num_layers: int
    counter_unit: str | None = None     # "instructions", "cycles" or None (host)
    count_per_tick: Fraction = Fraction(1)
    counter_overhead: int = 0           # cost of an empty measurement, in counter_unit
    max_payload: int = 0
    emulated: bool = False
    test_commands: bool = False
    init_timeouts: int = 0              # clock/pin set-up waits that ran out
    protocol_version: int = 2

    # One-input, one-output views (the first input and output), and the
    # byte counts an INFER request and reply carry.
    @property
    def input_size(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def output_size(self) -> int:
        return sum(t.nbytes for t in self.outputs)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs[0].shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.outputs[0].shape

    @property
    def input_scale(self) -> float:
        return self.inputs[0].scale

    @property
    def input_zero_point(self) -> int:
        return self.inputs[0].zero_point

    @property
    def output_scale(self) -> float:
        return self.outputs[0].scale

    @property
    def output_zero_point(self) -> int:
        return self.outputs[0].zero_point


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str:
        n = self.take("B")
        s = self.data[self.pos: self.pos + n]
        if len(s) != n:
            raise struct.error("string runs past the payload")
        self.pos += n
        return s.decode("ascii", errors="replace")


def _tensor_specs(r: _Reader) -> tuple[TensorSpec, ...]:
    specs = []
    for _ in range(r.take("B")):
        code, nbytes = r.take("BI")
        shape = tuple(r.take("i") for _ in range(r.take("B")))
        scale, zp = r.take("fi")
        specs.append(TensorSpec(TYPE_NAMES.get(code, f"type{code}"), nbytes, shape, scale, zp))
    return tuple(specs)


def parse_describe(payload: bytes) -> ModelInfo:
    r = _Reader(payload)
    version, counter, flags, _ = r.take("BBBB")
    if version != 2:
        raise struct.error(f"DESCRIBE of protocol version {version}; this tinycomp speaks 2 "
                           "(rebuild the firmware)")
    model_hash, tc_version, board = r.string(), r.string(), r.string()
    arena = r.take("I")
    layers, max_payload = r.take("HH")
    num, den, overhead, timeouts = r.take("IIII")
    inputs, outputs = _tensor_specs(r), _tensor_specs(r)
    return ModelInfo(model_hash=model_hash, version=tc_version, board=board,
                     inputs=inputs, outputs=outputs, arena_bytes=arena, num_layers=layers,
                     counter_unit="instructions" if counter == 0 else "cycles",
                     count_per_tick=Fraction(num, den), counter_overhead=overhead,
                     max_payload=max_payload, emulated=bool(flags & 1),
                     test_commands=bool(flags & 2), init_timeouts=timeouts,
                     protocol_version=version)


def parse_infer(payload: bytes, output_size: int) -> tuple[int, bytes]:
    if len(payload) != 8 + output_size:
        raise struct.error(f"INFER reply of {len(payload)} bytes, expected {8 + output_size}")
    return struct.unpack_from("<Q", payload)[0], payload[8:]


def parse_profile(payload: bytes, output_size: int) -> tuple[int, tuple[int, ...], bytes]:
    total, n = struct.unpack_from("<QH", payload)
    if len(payload) != 10 + 8 * n + output_size:
        raise struct.error(f"PROFILE reply of {len(payload)} bytes does not match {n} layers")
    layers = struct.unpack_from(f"<{n}Q", payload, 10)
    return total, layers, payload[10 + 8 * n:]
