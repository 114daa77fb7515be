"""The command line against the default QEMU board: build, run, profile, flash,
validate, as a user types them."""
import json

import numpy as np
import pytest

from tests.support.models import digits_model
from tests.support.cli import tinycomp as _tinycomp
from tests.support.tflm import run_tflm

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def digits_build(tmp_path_factory):
    d = digits_model()
    root = tmp_path_factory.mktemp("qemu-cli")
    (root / "digits.tflite").write_bytes(d.tflite)
    result = _tinycomp("build", root / "digits.tflite", "--out", root / "build")  # default board
    assert result.returncode == 0, result.stderr
    assert "flash bytes" in result.stdout
    return root


def test_build_manifest_has_firmware_and_sizes(digits_build):
    info = json.loads((digits_build / "build" / "tinycomp.json").read_text())
    assert info["board"] == "qemu-mps2-an386"
    for key in ("elf", "bin", "hex"):
        assert (digits_build / "build" / info["firmware"][key]).stat().st_size > 0
    assert 0 < info["flash_bytes"] < info["firmware"]["flash_size"]


@pytest.mark.parametrize("port", ["socket", "pty"])
def test_run_over_both_serial_paths(digits_build, port):
    d = digits_model()
    np.save(digits_build / "x.npy", d.x_test[:25])
    out = digits_build / f"y-{port}.npy"
    result = _tinycomp("run", digits_build / "build", "--inputs", digits_build / "x.npy",
                       "--outputs", out, "--port", port)
    assert result.returncode == 0, result.stderr
    y = np.load(out)
    x = np.clip(np.floor(d.x_test[:25] / 0.00392156 + 0.5) - 128, -128, 127)  # only for shape
    assert y.shape == (25, 10) and x.shape[0] == 25
    info = json.loads((digits_build / "build" / "tinycomp.json").read_text())
    from tinycomp.pipeline import model_samples
    xq = model_samples(d.x_test[:25], info)
    assert np.array_equal(y, run_tflm(d.tflite, xq.reshape((25, 1, 8, 8, 1))).reshape(25, 10))


def test_profile_reports_layers_and_memory(digits_build):
    result = _tinycomp("profile", digits_build / "build", "--json", digits_build / "p.json")
    assert result.returncode == 0, result.stderr
    p = json.loads((digits_build / "p.json").read_text())
    assert p["instructions"] > 0 and p["unit"] == "instructions"
    assert abs(sum(l["instructions"] for l in p["layers"]) - p["instructions"]) < 0.05 * p["instructions"]
    assert p["flash_code_bytes"] > 0 and p["flash_weights_bytes"] > 0 and p["arena_bytes"] > 0
    assert {l["op"] for l in p["layers"]} >= {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX"}


def test_flash_starts_the_emulator(digits_build):
    result = _tinycomp("flash", digits_build / "build", "--seconds", "0.5")
    assert result.returncode == 0, result.stderr
    assert "/dev/pts/" in result.stdout


def test_wrong_port_for_an_emulated_board(digits_build):
    np.save(digits_build / "x-port.npy", digits_model().x_test[:2])
    result = _tinycomp("run", digits_build / "build", "--inputs", digits_build / "x-port.npy",
                       "--outputs", digits_build / "never.npy", "--port", "/dev/ttyUSB0")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "emulated" in result.stderr and not (digits_build / "never.npy").exists()


@pytest.mark.tf
def test_validate_keras_model_on_qemu(tmp_path):
    d = digits_model()
    np.save(tmp_path / "x.npy", d.x_test[:60])
    np.save(tmp_path / "y.npy", d.y_test[:60])
    np.save(tmp_path / "cal.npy", d.x_calibration)
    result = _tinycomp("validate", d.keras_path, "--data", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                       "--calibration", tmp_path / "cal.npy", "--report", tmp_path / "r.json",
                       "--out", tmp_path / "build")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["board"] == "qemu-mps2-an386"
    assert report["int8"]["bit_exact_fraction"] == 1.0
    assert report["float"]["top1_agreement"] >= 0.95 and report["float"]["accuracy_device"] >= 0.9
    assert report["count_per_inference"]["min"] > 0


def _fc_chain(widths) -> bytes:
    from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input((1, widths[0]), 0.1, 0)
    for depth, units in zip(widths, widths[1:]):
        w, ws = random_weights(rng, (units, depth))
        bq, bs = random_bias(rng, units, 0.1, ws)
        x = b.fully_connected(x, b.const_int8(w, ws), b.const_int32(bq, bs), 0.1, 0)
    b.output(x)
    return b.build()


@pytest.mark.parametrize("widths, memory", [((800, 800), "FLASH"), ((4, 140_000, 2), "RAM")])
def test_model_too_big_for_the_board_is_refused_with_sizes(tmp_path, widths, memory):
    """640 KB of weights overflow the F446RE's 512 KB flash; a 140,000-byte
    intermediate tensor overflows netduinoplus2's 128 KB RAM."""
    board = "nucleo" if memory == "FLASH" else "netduinoplus2"
    (tmp_path / "big.tflite").write_bytes(_fc_chain(widths))
    result = _tinycomp("build", tmp_path / "big.tflite", "--board", board, "--out", tmp_path / "out")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "does not fit" in line and memory in line and "over by" in line, line
    assert not (tmp_path / "out").exists()
