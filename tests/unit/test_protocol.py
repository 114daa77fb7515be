"""The host side of the framed serial protocol: codec, CRC, stream decoding."""
import struct
from fractions import Fraction

import pytest

from tinycomp.targets.protocol import (
    BadFrame, Cmd, Decoder, ErrorCode, Frame, crc16_ccitt, encode, parse_describe,
    parse_infer, parse_profile)


def test_crc16_ccitt_false_check_value():
    assert crc16_ccitt(b"123456789") == 0x29B1   # the catalogue's check value
    assert crc16_ccitt(b"") == 0xFFFF


def test_encode_layout():
    frame = encode(Cmd.INFER, 5, b"\x01\x02\x03")
    assert frame[:2] == b"\xA5\x5A"
    assert frame[2:6] == bytes([0x02, 5, 3, 0])
    assert frame[6:9] == b"\x01\x02\x03"
    assert struct.unpack("<H", frame[9:])[0] == crc16_ccitt(frame[2:9])


def test_encode_refuses_oversize_payload():
    with pytest.raises(ValueError, match="u16"):
        encode(Cmd.ECHO, 1, bytes(70000))


def test_decoder_round_trip_byte_by_byte():
    frames = [encode(Cmd.ECHO, i, bytes([0xA5, 0x5A, i]) * i) for i in range(5)]
    d = Decoder()
    got = []
    for byte in b"".join(frames):
        d.feed(bytes([byte]))
        f = d.next_frame()
        if f:
            got.append(f)
    assert [(f.cmd, f.seq, f.payload) for f in got] == \
        [(Cmd.ECHO, i, bytes([0xA5, 0x5A, i]) * i) for i in range(5)]
    assert d.skipped == 0


def test_decoder_skips_garbage_and_false_syncs():
    d = Decoder(max_payload=1024)
    good = encode(Cmd.DESCRIBE | 0x80, 3, b"hi")
    # a false sync whose "length" is absurd must not swallow the real frame
    d.feed(b"noise\xa5\x5a\x01\x02\xff\xff" + good)
    f = d.next_frame()
    assert f == Frame(Cmd.DESCRIBE | 0x80, 3, b"hi")
    assert d.skipped == len(b"noise") + 1 + 5


def test_decoder_bad_crc():
    frame = bytearray(encode(Cmd.INFER, 1, b"abc"))
    frame[7] ^= 1
    d = Decoder()
    d.feed(bytes(frame) + encode(Cmd.INFER, 2, b"ok"))
    with pytest.raises(BadFrame, match="CRC"):
        d.next_frame()
    assert d.next_frame().seq == 2   # the stream recovers


def test_error_frame():
    f = Frame(Cmd.ERROR, 7, struct.pack("<BBI", ErrorCode.TRUNCATED, Cmd.INFER, 14))
    assert f.is_error and f.error() == (ErrorCode.TRUNCATED, Cmd.INFER, 14)
    assert str(f) == "ERROR TRUNCATED (cmd 0x02, seq 7, detail 14)"


def describe_payload():
    def s(text):
        return bytes([len(text)]) + text.encode()
    def tensor(code, nbytes, shape, scale, zp):
        return (struct.pack("<BIB", code, nbytes, len(shape)) + struct.pack(f"<{len(shape)}i", *shape)
                + struct.pack("<fi", scale, zp))
    return (bytes([2, 0, 3, 0]) + s("0123456789abcdef") + s("0.1.0") + s("qemu-mps2-an386")
            + struct.pack("<IHHIIII", 1234, 7, 784, 125, 21, 40, 0)
            + bytes([1]) + tensor(9, 784, (1, 28, 28, 1), 0.5, -128)
            + bytes([2]) + tensor(9, 10, (1, 10), 0.25, 3) + tensor(0, 12, (1, 3), 0.0, 0))


def test_parse_describe():
    info = parse_describe(describe_payload())
    assert info.model_hash == "0123456789abcdef" and info.board == "qemu-mps2-an386"
    assert (info.input_size, info.output_size, info.arena_bytes, info.num_layers) == (784, 22, 1234, 7)
    assert [t.dtype for t in info.outputs] == ["int8", "float32"] and info.outputs[1].shape == (1, 3)
    assert info.input_shape == (1, 28, 28, 1) and info.output_shape == (1, 10)
    assert (info.input_scale, info.input_zero_point) == (0.5, -128)
    assert (info.output_scale, info.output_zero_point) == (0.25, 3)
    assert info.counter_unit == "instructions" and info.count_per_tick == Fraction(125, 21)
    assert info.emulated and info.test_commands and info.counter_overhead == 40


def test_parse_describe_truncated():
    with pytest.raises(struct.error):
        parse_describe(describe_payload()[:30])


def test_parse_infer_and_profile():
    assert parse_infer(struct.pack("<Q", 123) + b"\x01\x02", 2) == (123, b"\x01\x02")
    with pytest.raises(struct.error):
        parse_infer(b"\x00" * 9, 2)
    payload = struct.pack("<QH3Q", 100, 3, 10, 20, 60) + b"\xff"
    assert parse_profile(payload, 1) == (100, (10, 20, 60), b"\xff")
