"""A hung or dead emulator, or a vanished port, gives one clear typed error."""
import os
import time

import numpy as np
import pytest

from tinycomp.boards import load_board
from tinycomp.errors import TargetError, TargetTimeout
from tinycomp.targets.protocol import Cmd, encode
from tinycomp.targets.serial_runner import DeviceRunner, QemuRunner

pytestmark = pytest.mark.qemu


def test_hung_emulator_times_out(qemu_runner, generated_model):
    runner = qemu_runner(test_commands=True, timeout=1.0)
    assert runner.describe().test_commands
    runner.link.send_raw(encode(Cmd.TEST_HANG, 1))
    t0 = time.monotonic()
    with pytest.raises(TargetTimeout, match=r"emulator hung: QEMU \(mps2-an386\) is running but "
                                            r"sent no reply within 1\.0 s"):
        runner.infer(generated_model.inputs[0].tobytes())
    assert time.monotonic() - t0 < 5
    proc = runner.qemu.proc
    runner.close()
    assert proc.poll() is not None   # killed, even though the guest never exits


def test_emulator_exit_code_is_reported(qemu_runner):
    runner = qemu_runner(test_commands=True, timeout=3.0)
    with pytest.raises(TargetError, match="emulator died: QEMU .* exited with code 7") as exc:
        runner.link.request(Cmd.TEST_EXIT, bytes([7]), timeout=3.0)
    assert "\n" not in str(exc.value)


def test_killed_emulator_is_a_vanished_port(qemu_runner, generated_model):
    runner = qemu_runner()
    runner.qemu.proc.kill()
    runner.qemu.proc.wait()
    with pytest.raises(TargetError, match="emulator died: .* exited with code -9"):
        runner.infer(generated_model.inputs[0].tobytes())


def test_missing_firmware(tmp_path):
    runner = QemuRunner(load_board("qemu"), tmp_path)
    with pytest.raises(TargetError, match="no firmware"):
        runner.start()


def test_silent_device_port(tmp_path):
    """A real-board runner on a port where nothing answers (a pty we hold)."""
    master, slave = os.openpty()
    try:
        runner = DeviceRunner(load_board("nucleo"), tmp_path, port=os.ttyname(slave),
                              do_flash=False, start_timeout=0.5)
        with pytest.raises(TargetTimeout, match=r"silent port /dev/pts/\d+: nucleo-f446re"):
            runner.start()
        assert not runner.started
    finally:
        os.close(master)
        os.close(slave)


def test_no_flash_tool(tmp_path, monkeypatch, firmware):
    build_dir, _ = firmware("nucleo-f446re")
    monkeypatch.setenv("PATH", str(tmp_path))
    runner = DeviceRunner(load_board("nucleo"), build_dir, port="/dev/null")
    with pytest.raises(TargetError, match="no flash tool for nucleo-f446re: install one of "
                                          "openocd, st-flash, pyocd"):
        runner.start()


def test_garbled_device_port(tmp_path):
    """A 'board' that answers every request with noise: a clear error, no hang."""
    import threading

    from tinycomp.errors import ProtocolError

    master, slave = os.openpty()
    stop = threading.Event()

    def noisy():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            try:
                os.read(master, 256)  # whatever the host sends...
                os.write(master, bytes(rng.integers(0, 256, 64, dtype=np.uint8)))  # ...gets noise
            except OSError:
                return

    thread = threading.Thread(target=noisy, daemon=True)
    thread.start()
    try:
        runner = DeviceRunner(load_board("nucleo"), tmp_path, port=os.ttyname(slave),
                              do_flash=False, start_timeout=1.0)
        with pytest.raises(ProtocolError, match=r"garbled reply from /dev/pts/\d+"):
            runner.start()
        assert not runner.started
    finally:
        stop.set()
        os.close(master)
        os.close(slave)
        thread.join(2)
