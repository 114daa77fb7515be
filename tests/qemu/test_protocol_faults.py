"""Malformed input on the line: the firmware answers with an error frame and
keeps serving (a good INFER works right after each fault)."""
import numpy as np
import pytest

from tinycomp.targets.link import DeviceRejected
from tinycomp.targets.protocol import Cmd, ErrorCode, UNSOLICITED_SEQ, encode

pytestmark = pytest.mark.qemu

RX_TIMEOUT = 0.1   # BuildOptions.rx_timeout_ms: the device's receive timeout


def next_error(runner, timeout=3.0):
    frame = runner.link.read_frame(timeout)
    assert frame.is_error, frame
    return frame


def assert_still_serving(runner, model):
    out = runner.infer(model.inputs[1].tobytes()).output
    np.testing.assert_array_equal(np.frombuffer(out, np.int8), model.expected[1])


@pytest.fixture
def runner(qemu_runner):
    return qemu_runner()


def test_garbage_is_reported_then_serving(runner, generated_model):
    junk = bytes(b for b in range(256) if b != 0xA5) * 4
    runner.link.send_raw(junk)
    frame = next_error(runner)
    assert frame.seq == UNSOLICITED_SEQ
    code, _, count = frame.error()
    assert code == ErrorCode.GARBAGE and count == len(junk)
    assert_still_serving(runner, generated_model)


def test_garbage_right_before_a_frame_does_not_hide_it(runner, generated_model):
    x = generated_model.inputs[2].tobytes()
    runner.link.send_raw(b"\x00\x13\x37noise\xa5\x00")   # even a lone first sync byte
    out = runner.infer(x).output
    np.testing.assert_array_equal(np.frombuffer(out, np.int8), generated_model.expected[2])


def test_truncated_frame_times_out(runner, generated_model):
    frame = encode(Cmd.INFER, 7, generated_model.inputs[0].tobytes())
    runner.link.send_raw(frame[:20])
    err = next_error(runner)
    code, cmd, received = err.error()
    assert (err.seq, code, cmd) == (7, ErrorCode.TRUNCATED, Cmd.INFER)
    assert received == 20 - 6   # payload bytes that arrived before the silence
    assert_still_serving(runner, generated_model)


def test_bad_crc(runner, generated_model):
    frame = bytearray(encode(Cmd.INFER, 9, generated_model.inputs[0].tobytes()))
    frame[-1] ^= 0xFF
    runner.link.send_raw(bytes(frame))
    err = next_error(runner)
    assert err.seq == 9 and err.error()[0] == ErrorCode.BAD_CRC
    assert_still_serving(runner, generated_model)


def test_corrupted_payload_byte(runner, generated_model):
    frame = bytearray(encode(Cmd.INFER, 10, generated_model.inputs[0].tobytes()))
    frame[30] ^= 0x01
    runner.link.send_raw(bytes(frame))
    assert next_error(runner).error()[0] == ErrorCode.BAD_CRC
    assert_still_serving(runner, generated_model)


def test_oversize_length(runner, generated_model):
    header = b"\xA5\x5A" + bytes([Cmd.INFER, 11]) + (60000).to_bytes(2, "little")
    runner.link.send_raw(header + bytes(500))   # and some of the promised payload
    err = next_error(runner)
    code, cmd, length = err.error()
    assert (err.seq, code, length) == (11, ErrorCode.OVERSIZE, 60000)
    assert_still_serving(runner, generated_model)


def test_wrong_input_length_is_refused(runner, generated_model):
    with pytest.raises(DeviceRejected, match="BAD_LENGTH") as exc:
        runner.link.request(Cmd.INFER, b"\x01\x02\x03", timeout=3)
    assert exc.value.frame.error()[2] == 64
    assert_still_serving(runner, generated_model)


def test_unknown_command_is_refused(runner, generated_model):
    with pytest.raises(DeviceRejected, match="UNKNOWN_CMD"):
        runner.link.request(0x42, b"", timeout=3)
    # test commands are compiled out of normal builds
    with pytest.raises(DeviceRejected, match="UNKNOWN_CMD"):
        runner.link.request(Cmd.TEST_HANG, b"", timeout=3)
    assert_still_serving(runner, generated_model)


def test_faults_in_a_row(runner, generated_model):
    good = encode(Cmd.INFER, 20, generated_model.inputs[3].tobytes())
    bad = bytearray(good)
    bad[-2] ^= 0x55
    runner.link.send_raw(b"garbage" + bytes(bad) + good)
    frames = [runner.link.read_frame(3) for _ in range(2)]
    assert frames[0].is_error and frames[0].error()[0] == ErrorCode.BAD_CRC
    assert frames[1].cmd == Cmd.INFER | 0x80 and frames[1].seq == 20
    np.testing.assert_array_equal(np.frombuffer(frames[1].payload[8:], np.int8),
                                  generated_model.expected[3])
