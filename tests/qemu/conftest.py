"""Shared, compiled-once fixtures for the firmware tests.

`generated_model` is the model every QEMU test runs: a small CNN built as a
.tflite without TensorFlow, compiled by tinycomp's code generator, with TFLM
outputs as the reference. Firmware builds are cached per (board, options) for
the whole session, so each test only pays for a ~40 ms QEMU boot.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tinycomp.boards import board_names, load_board
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.targets.firmware import BuildOptions, FirmwareImage, build_firmware
from tinycomp.targets.serial_runner import QemuRunner
from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights
from tests.support.tflm import run_tflm

EMULATED = [n for n in board_names() if load_board(n).kind == "qemu"]
DEVICES = [n for n in board_names() if load_board(n).kind == "device"]


def small_cnn(seed: int = 0) -> bytes:
    """CONV_2D (ReLU) -> DEPTHWISE_CONV_2D -> FULLY_CONNECTED: three layers, 64 B in, 10 B out."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, 8, 8, 1), scale=0.02, zero_point=-5)
    w, ws = random_weights(rng, (4, 3, 3, 1), axis=0)
    bq, bs = random_bias(rng, 4, 0.02, ws)
    y = b.conv2d(x, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), scale=0.05,
                 zero_point=-10, activation="RELU")
    w, ws = random_weights(rng, (1, 3, 3, 4), axis=3)
    bq, bs = random_bias(rng, 4, 0.05, ws)
    y = b.depthwise_conv2d(y, b.const_int8(w, ws, axis=3), b.const_int32(bq, bs), scale=0.08,
                           zero_point=2, stride=2)
    y = b.reshape(y, (1, 64))
    w, ws = random_weights(rng, (10, 64), axis=0)
    bq, bs = random_bias(rng, 10, 0.08, ws)
    y = b.fully_connected(y, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), scale=0.1,
                          zero_point=3)
    b.output(y)
    return b.build()


@dataclass(frozen=True)
class TestModel:
    tflite: bytes
    src: Path                 # generated tinycomp_model.h/.c, tinycomp_weights.c
    inputs: np.ndarray        # int8 (N, 1, 8, 8, 1)
    expected: np.ndarray      # TFLM's int8 outputs (N, 10)
    num_layers: int


@pytest.fixture(scope="session")
def generated_model(tmp_path_factory) -> TestModel:
    tflite = small_cnn()
    src = generate(parse_tflite(tflite, name="qemu-test")).write(tmp_path_factory.mktemp("model") / "src")
    rng = np.random.default_rng(1)
    inputs = rng.integers(-128, 128, size=(4, 1, 8, 8, 1), dtype=np.int8)
    expected = run_tflm(tflite, inputs).reshape(len(inputs), -1)
    return TestModel(tflite, src, inputs, expected, num_layers=3)


@pytest.fixture(scope="session")
def firmware(tmp_path_factory, generated_model):
    """firmware(board, **options) -> (build_dir, FirmwareImage), built once per session."""
    cache: dict = {}

    def get(board: str, **options) -> tuple[Path, FirmwareImage]:
        key = (board, tuple(sorted(options.items())))
        if key not in cache:
            build_dir = tmp_path_factory.mktemp(f"fw-{board}")
            image = build_firmware(load_board(board), generated_model.src, build_dir,
                                   BuildOptions(**options))
            cache[key] = (build_dir, image)
        return cache[key]

    return get


@pytest.fixture
def qemu_runner(firmware):
    """qemu_runner(board="qemu-mps2-an386", serial="socket", **build options) -> started runner."""
    runners = []

    def start(board: str = "qemu-mps2-an386", serial: str = "socket", timeout: float = 30.0,
              **options) -> QemuRunner:
        build_dir, _ = firmware(board, **options)
        runner = QemuRunner(load_board(board), build_dir, serial=serial, timeout=timeout)
        runners.append(runner)
        runner.start()
        return runner

    yield start
    for r in runners:
        r.close()
