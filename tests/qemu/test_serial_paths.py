"""Both ways of reaching QEMU's UART: a TCP socket and a pty (like a real port)."""
import os

import numpy as np
import pytest

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("serial", ["socket", "pty"])
def test_infer_over_each_path(qemu_runner, generated_model, serial):
    runner = qemu_runner(serial=serial)
    if serial == "pty":
        assert runner.link.transport.name.startswith("/dev/pts/")
    for x, want in zip(generated_model.inputs, generated_model.expected):
        out = np.frombuffer(runner.infer(x.tobytes()).output, np.int8)
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("serial", ["socket", "pty"])
def test_echo_moves_every_byte_value(qemu_runner, serial):
    runner = qemu_runner(serial=serial)
    data = bytes(range(256))   # includes the sync bytes 0xA5 0x5A inside a payload
    assert runner.echo(data) == data
    assert runner.echo(b"") == b""


def test_close_kills_emulator(qemu_runner):
    runner = qemu_runner()
    proc = runner.qemu.proc
    runner.close()
    assert proc.poll() is not None
    runner.close()   # twice is fine


def test_runner_as_context_manager(firmware, generated_model):
    from tinycomp.targets import get_runner
    build_dir, _ = firmware("qemu-mps2-an386")
    with get_runner("qemu", build_dir) as runner:
        proc = runner.qemu.proc
        assert runner.describe().board == "qemu-mps2-an386"
    assert proc.poll() is not None
    assert os.path.exists(build_dir / "firmware.elf")
