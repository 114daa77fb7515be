"""Board files: every board loads, aliases resolve, bad data is refused clearly."""
from fractions import Fraction

import pytest

import tinycomp.boards as boards
from tinycomp.boards import DEFAULT_BOARD, board_names, load_board
from tinycomp.errors import BoardError
from tinycomp.targets.firmware import uart_divisor

EMULATED = {"qemu-mps2-an385", "qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505",
            "qemu-mps3-an547", "qemu-netduinoplus2"}
REAL = {"nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg", "mps3-an547"}


def test_all_boards_present_and_load():
    names = set(board_names())
    assert {"host"} | EMULATED | REAL <= names
    for name in names:
        board = load_board(name)
        assert board.name == name
        if board.is_embedded:
            assert board.core and board.memory and board.uart and board.counter


def test_aliases_and_default():
    assert load_board("qemu").name == DEFAULT_BOARD == "qemu-mps2-an386"
    assert load_board(None).name == DEFAULT_BOARD
    assert load_board("nucleo").name == "nucleo-f446re"
    assert load_board("host").kind == "host"


def test_unknown_board_lists_known_ones():
    with pytest.raises(BoardError, match="unknown board 'nope'; known boards: .*qemu-mps2-an386"):
        load_board("nope")


@pytest.mark.parametrize("name,cpu,flags,dsp", [
    ("qemu-mps2-an385", "cortex-m3", ("-mfloat-abi=soft",), False),
    ("qemu-mps2-an386", "cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), True),
    ("qemu-mps2-an500", "cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"), True),
    ("qemu-mps2-an505", "cortex-m33", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), True),
    ("nucleo-f746zg", "cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), True),
])
def test_core_flags(name, cpu, flags, dsp):
    core = load_board(name).core
    assert core.cflags()[:2] == (f"-mcpu={cpu}", "-mthumb")
    assert core.cflags()[2:] == flags and core.dsp == dsp


def test_memory_maps():
    an505 = load_board("qemu-mps2-an505")
    assert (an505.memory.flash.base, an505.memory.ram.base) == (0x10000000, 0x38000000)
    assert an505.uart.base == 0x50200000
    nd = load_board("qemu-netduinoplus2")
    assert nd.uart.base == 0x40011000 and nd.skip_clock_in_emulation and nd.clock_ops
    for name in (REAL - {"mps3-an547"}) | {"qemu-netduinoplus2"}:
        assert load_board(name).memory.flash.base == 0x08000000
    # the MPS3 AN547 as QEMU models it: ITCM code, DTCM data, secure-alias UART0
    for name in ("mps3-an547", "qemu-mps3-an547"):
        m55 = load_board(name)
        assert (m55.memory.flash.base, m55.memory.ram.base, m55.uart.base) == (0, 0x20000000, 0x59303000)
        assert m55.core.cpu == "cortex-m55" and m55.features == {"dsp", "mve"}


def test_counters():
    assert load_board("qemu").counter.instructions_per_tick == 40
    assert load_board("qemu-mps2-an505").counter.instructions_per_tick == 50
    # 1e9 / 168 MHz kept exactly
    assert load_board("qemu-netduinoplus2").counter.instructions_per_tick == Fraction(125, 21)
    for name in REAL:
        assert load_board(name).counter.kind == "dwt"
        assert load_board(name).counter.unit == "cycles"


def test_real_board_serial_wiring():
    f446, l4r5, f746 = (load_board(n) for n in ("nucleo-f446re", "nucleo-l4r5zi", "nucleo-f746zg"))
    assert (f446.uart.kind, f446.uart.base) == ("stm32-usart-v1", 0x40004400)   # USART2
    assert (l4r5.uart.kind, l4r5.uart.base) == ("stm32-lpuart", 0x40008000)     # LPUART1
    assert (f746.uart.kind, f746.uart.base) == ("stm32-usart-v2", 0x40004800)   # USART3
    # LPUART1 on port G needs VDDIO2 declared valid (PWR_CR2.IOSV, bit 9)
    assert any(op.addr == 0x40007004 and op.mask == 1 << 9 for op in l4r5.pin_ops)
    for b in (f446, l4r5, f746):
        assert b.flash_tool.order and b.serial_port


def test_uart_divisors():
    assert uart_divisor(load_board("qemu")) == 217                 # 25 MHz / 115200
    assert uart_divisor(load_board("nucleo-f446re")) == 365        # 42 MHz / 115200
    assert uart_divisor(load_board("nucleo-f746zg")) == 391        # 45 MHz / 115200
    assert uart_divisor(load_board("nucleo-l4r5zi")) == 35556      # 256 * 16 MHz / 115200


def _load_text(tmp_path, monkeypatch, text):
    d = tmp_path / "boards"
    d.mkdir()
    (d / "bad.toml").write_text(text)
    monkeypatch.setattr(boards, "data_dir", lambda name: d)
    return boards.load_board("bad")


BASE = """
name = "bad"
kind = "qemu"
[core]
cpu = "cortex-m4"
core_hz = 25000000
{core}
[memory]
flash = {{ base = 0, size = 0x1000 }}
ram = {{ base = 0x20000000, size = 0x10000 }}
vector_table = {vt}
[uart]
kind = "{uart}"
base = 0x40004000
clock_hz = 25000000
[counter]
kind = "{counter}"
systick_hz = 25000000
instructions_per_tick = 40
[qemu]
machine = "mps2-an386"
"""


@pytest.mark.parametrize("fields,message", [
    (dict(core="", vt="0", uart="cmsdk", counter="icount"), None),
    (dict(core='float_abi = "hard"', vt="0", uart="cmsdk", counter="icount"), "core.fpu"),
    (dict(core="", vt="0x2000", uart="cmsdk", counter="icount"), "vector_table lies outside"),
    (dict(core="", vt="0x40", uart="cmsdk", counter="icount"), "128-byte aligned"),
    (dict(core="", vt="0", uart="pl011", counter="icount"), "uart.kind 'pl011'"),
    (dict(core="", vt="0", uart="cmsdk", counter="rdtsc"), "counter.kind 'rdtsc'"),
    (dict(core='mve = "int"', vt="0", uart="cmsdk", counter="icount"), "core.mve needs core.dsp"),
    (dict(core='dsp = true\nmve = "yes"', vt="0", uart="cmsdk", counter="icount"), "core.mve 'yes'"),
])
def test_bad_board_files(tmp_path, monkeypatch, fields, message):
    text = BASE.format(**fields)
    if message is None:
        assert _load_text(tmp_path, monkeypatch, text).name == "bad"
    else:
        with pytest.raises(BoardError, match=message):
            _load_text(tmp_path, monkeypatch, text)


def test_missing_key(tmp_path, monkeypatch):
    with pytest.raises(BoardError, match="lacks the key 'core'"):
        _load_text(tmp_path, monkeypatch, 'name = "bad"\nkind = "device"\n')


def test_helium_board_features():
    m55 = load_board("qemu-mps3-an547")
    assert m55.core.mve == "float" and m55.features == {"dsp", "mve"}
    assert m55.counter.instructions_per_tick == Fraction(125, 4)   # 1e9 / 32 MHz
    assert m55.core.vector_extension == "Helium (MVE-I, MVE-F)"
    assert load_board("qemu").features == {"dsp"} and load_board("host").features == set()
