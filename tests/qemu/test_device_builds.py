"""Firmware for every board builds; real boards are checked statically (they
never run here): memory map, vector table, sizes, core attributes, clock set-up."""
import re
import struct
import subprocess

import numpy as np
import pytest

from tinycomp.boards import board_names, load_board
from tinycomp.codegen.generate import generate
from tinycomp.errors import BoardError
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.targets.firmware import BuildOptions, build_firmware
from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights

from .conftest import DEVICES

EMBEDDED = [n for n in board_names() if load_board(n).is_embedded]

# -mcpu -> what `readelf -A` must show
CORE_ATTRS = {
    "cortex-m3": ("v7", None),
    "cortex-m4": ("v7E-M", "VFPv4-D16"),
    "cortex-m7": ("v7E-M", "FPv5/FP-D16 for ARMv8"),
    "cortex-m33": ("v8-M.mainline", "FPv5/FP-D16 for ARMv8"),
    "cortex-m55": ("v8.1-M.mainline", "FPv5/FP-D16 for ARMv8"),
    "cortex-m85": ("v8.1-M.mainline", "FPv5/FP-D16 for ARMv8"),
}
# Tag_MVE_arch by the board's core.mve
MVE_ATTRS = {"int": "MVE Integer only", "float": "MVE Integer and FP"}


def readelf_attrs(elf) -> dict[str, str]:
    out = subprocess.run(["arm-none-eabi-readelf", "-A", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    return dict(re.findall(r"^\s*(Tag_\w+): (.*)$", out, re.M))


@pytest.mark.parametrize("name", EMBEDDED)
def test_memory_map_and_core(firmware, name):
    board = load_board(name)
    build_dir, image = firmware(name)
    mem = board.memory
    assert image.sections[".vectors"][0] == mem.flash.base == mem.vector_table
    sp, reset = struct.unpack("<II", image.bin.read_bytes()[:8])
    assert mem.ram.base < sp <= mem.ram.end and sp % 8 == 0
    assert reset & 1 and mem.flash.base <= reset < mem.flash.end   # Thumb entry in flash
    assert 0 < image.flash_used <= image.flash_size == mem.flash.size
    assert mem.stack_bytes < image.ram_used <= image.ram_size == mem.ram.size
    assert image.weights_bytes > 0
    assert image.hex.read_text().startswith(":") and image.map.is_file()
    for sec, (addr, size) in image.sections.items():
        region = mem.flash if addr < mem.ram.base or sec in (".vectors", ".text") else mem.ram
        assert region.base <= addr and addr + size <= region.end, sec

    arch, fp = CORE_ATTRS[board.core.cpu]
    attrs = readelf_attrs(image.elf)
    assert attrs["Tag_CPU_arch"] == arch
    if board.core.float_abi == "hard":
        assert attrs["Tag_FP_arch"] == fp and attrs["Tag_ABI_VFP_args"] == "VFP registers"
    else:
        assert "Tag_FP_arch" not in attrs
    assert attrs.get("Tag_MVE_arch") == MVE_ATTRS.get(board.core.mve)


@pytest.mark.parametrize("name", DEVICES)
def test_real_boards_count_cycles_and_set_up_clocks(firmware, name):
    board = load_board(name)
    build_dir, _ = firmware(name)
    config = (build_dir / "gen" / "board_config.h").read_text()
    assert "#define FW_COUNTER_ICOUNT 0" in config and "#define FW_EMULATED 0" in config
    assert f"#define FW_CLOCK_OPS_COUNT {len(board.clock_ops)}" in config
    # a clock set-up unless the board says its clocks are fixed (an FPGA image)
    assert board.clock_ops or board.raw["clock"].get("fixed")
    assert f"#define FW_PIN_OPS_COUNT {len(board.pin_ops)}" in config
    assert f"0x{board.uart.base:08X}u" in config
    # no semihosting BKPT on a board without a debugger attached
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(build_dir / "firmware.elf")],
                         capture_output=True, text=True, check=True).stdout
    assert "bkpt" not in dis


def test_emulation_skips_unmodelled_clock(firmware):
    build_dir, _ = firmware("qemu-netduinoplus2")
    config = (build_dir / "gen" / "board_config.h").read_text()
    assert "#define FW_CLOCK_OPS_COUNT 0" in config
    assert "#define FW_PIN_OPS_COUNT 4" in config


def big_fc_model(outputs: int) -> bytes:
    rng = np.random.default_rng(3)
    b = ModelBuilder()
    x = b.input((1, 64), scale=0.02, zero_point=0)
    w, ws = random_weights(rng, (outputs, 64), axis=0)
    bq, bs = random_bias(rng, outputs, 0.02, ws)
    b.output(b.fully_connected(x, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs),
                               scale=0.1, zero_point=0))
    return b.build()


def test_model_too_big_for_flash_is_refused(tmp_path):
    src = generate(parse_tflite(big_fc_model(8300), name="big")).write(tmp_path / "src")
    with pytest.raises(BoardError) as exc:
        build_firmware(load_board("nucleo-f446re"), src, tmp_path / "build")
    msg = str(exc.value)
    m = re.search(r"does not fit on nucleo-f446re: FLASH needs (\d+) bytes, (\d+) available "
                  r"\(over by (\d+)\)", msg)
    assert m, msg
    need, avail, over = map(int, m.groups())
    assert avail == 512 * 1024 and need - avail == over and need > 8300 * 64


def test_build_options_reach_the_firmware(tmp_path, generated_model):
    board = load_board("nucleo-f446re")
    build_firmware(board, generated_model.src, tmp_path,
                   BuildOptions(skip_clock=True, rx_timeout_ms=250, test_commands=True))
    config = (tmp_path / "gen" / "board_config.h").read_text()
    assert "#define FW_CLOCK_OPS_COUNT 0" in config
    assert "#define FW_RX_TIMEOUT_MS 250u" in config
    assert "#define FW_TEST_COMMANDS 1" in config


def test_model_too_big_for_ram_is_refused(tmp_path):
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x = b.input((1, 48, 48, 16), scale=0.02, zero_point=0)
    w, ws = random_weights(rng, (48, 3, 3, 16), axis=0)
    bq, bs = random_bias(rng, 48, 0.02, ws)
    y = b.conv2d(x, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), scale=0.1,
                 zero_point=0)   # 110,592 B of intermediate activations alone
    w, ws = random_weights(rng, (1, 1, 1, 48), axis=0)
    bq, bs = random_bias(rng, 1, 0.1, ws)
    b.output(b.conv2d(y, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), scale=0.1,
                      zero_point=0, stride=4))
    src = generate(parse_tflite(b.build(), name="wide")).write(tmp_path / "src")
    with pytest.raises(BoardError, match=r"does not fit on nucleo-f446re: RAM needs \d+ bytes, "
                                         r"131072 available \(over by \d+\)"):
        build_firmware(load_board("nucleo-f446re"), src, tmp_path / "build")
    # the same model fits the 640 KB of the L4R5
    image = build_firmware(load_board("nucleo-l4r5zi"), src, tmp_path / "l4")
    assert image.ram_used > 131072


def test_model_too_big_for_a_frame_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "tinycomp_model.h").write_text(
        "#define TINYCOMP_INPUT_BYTES_TOTAL 70000\n#define TINYCOMP_OUTPUT_BYTES_TOTAL 10\n"
        "#define TINYCOMP_NUM_LAYERS 2\n")
    with pytest.raises(BoardError, match="inputs take 70000 bytes, more than the serial protocol's "
                                         "65535-byte frame"):
        build_firmware(load_board("qemu"), src, tmp_path / "build")
