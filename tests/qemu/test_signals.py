"""Children die with tinycomp: Ctrl-C exits 130, SIGTERM 143, and even a
SIGKILLed tinycomp leaves no emulator running."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.host.test_untrusted_models import small_model
from tests.support.cli import tinycomp

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def qemu_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    (root / "small.tflite").write_bytes(small_model().build())
    result = tinycomp("build", root / "small.tflite", "--out", root / "build")  # default board: QEMU
    assert result.returncode == 0, result.stderr
    return root / "build"


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _as_a_terminal_starts_it():
    """A foreground job's signal state: SIGINT and SIGTERM at their defaults and
    unblocked, whatever the pytest worker (and libraries run in it) left."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _signal_state(pid: int) -> str:
    try:
        return " ".join(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if ln.startswith(("SigBlk", "SigIgn", "SigCgt", "State")))
    except FileNotFoundError:
        return "gone"


def _start_flash(build):
    """`tinycomp flash` on a QEMU build: the emulator runs until tinycomp is stopped."""
    proc = subprocess.Popen([sys.executable, "-m", "tinycomp.cli", "flash", str(build)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_a_terminal_starts_it)
    line = proc.stdout.readline()
    assert "is running" in line, line + proc.stderr.read()
    qemu = [k for k in _children(proc.pid) if "qemu" in Path(f"/proc/{k}/cmdline").read_text()]
    assert len(qemu) == 1
    return proc, qemu[0]


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated")])
def test_interrupt_and_terminate_stop_the_emulator(qemu_build, sig, code, word):
    proc, qemu = _start_flash(qemu_build)
    proc.send_signal(sig)
    try:
        assert proc.wait(timeout=20) == code
    except subprocess.TimeoutExpired:
        state = _signal_state(proc.pid)
        proc.kill()
        raise AssertionError(f"tinycomp did not stop within 20 s of {sig.name}: {state}") from None
    assert word in proc.stderr.read()
    assert _gone_within(qemu, 5)


def test_a_killed_tinycomp_leaves_no_emulator(qemu_build):
    proc, qemu = _start_flash(qemu_build)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    try:
        assert _gone_within(qemu, 5), "QEMU outlived a SIGKILLed tinycomp"
    finally:
        if _alive(qemu):
            os.kill(qemu, signal.SIGKILL)
