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


@pytest.fixture
def pty_pair():
    """(master, slave path): a pty whose far end the test plays as the board."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def _device_on(port: str, tmp_path, start_timeout: float) -> DeviceRunner:
    return DeviceRunner(load_board("nucleo"), tmp_path, port=port, do_flash=False,
                        start_timeout=start_timeout)


def test_silent_device_port(tmp_path, pty_pair):
    """A real-board runner on a port where nothing answers (a pty we hold)."""
    runner = _device_on(pty_pair[1], tmp_path, 0.5)
    with pytest.raises(TargetTimeout, match=r"silent port /dev/pts/\d+: nucleo-f446re"):
        runner.start()
    assert not runner.started


def test_no_flash_tool(tmp_path, monkeypatch, firmware):
    build_dir, _ = firmware("nucleo-f446re")
    monkeypatch.setenv("PATH", str(tmp_path))
    runner = DeviceRunner(load_board("nucleo"), build_dir, port="/dev/null")
    with pytest.raises(TargetError, match="no flash tool for nucleo-f446re: install one of "
                                          "openocd, st-flash, pyocd"):
        runner.start()


def test_garbled_device_port(tmp_path, pty_pair):
    """A 'board' that answers every request with noise: a clear error, no hang."""
    import select
    import threading

    from tinycomp.errors import ProtocolError

    master, port = pty_pair
    stop = threading.Event()

    def noisy():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            if not select.select([master], [], [], 0.05)[0]:
                continue  # wake now and then to see whether the test is over
            try:
                os.read(master, 256)  # whatever the host sends...
                os.write(master, bytes(rng.integers(0, 256, 64, dtype=np.uint8)))  # ...gets noise
            except OSError:
                return

    thread = threading.Thread(target=noisy, daemon=True)
    thread.start()
    try:
        runner = _device_on(port, tmp_path, 1.0)
        with pytest.raises(ProtocolError, match=r"garbled reply from /dev/pts/\d+"):
            runner.start()
        assert not runner.started
    finally:
        stop.set()
        thread.join(2)
