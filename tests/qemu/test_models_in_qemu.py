"""Hardware-in-the-loop in QEMU, through tinycomp's own pipeline (build -> flash
the emulator -> serial -> outputs): the MLPerf Tiny architectures on the
default board and the trained digits CNN on every emulated board, bit-exact
with TFLite Micro."""
import numpy as np
import pytest

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph, model_samples, run
from tests.support.models import MLPERF_NAMES, digits_model, mlperf_inputs, mlperf_tflite
from tests.support.tflm import run_tflm

from .conftest import EMULATED

pytestmark = pytest.mark.qemu


def _build_and_run(tflite: bytes, samples: np.ndarray, board: str, out, port=None):
    graph = parse_tflite(tflite, name="model")
    info = build_graph(graph, tflite, out, board)
    x = model_samples(samples, info)
    y, counts = run(out, x, port=port)
    expected = run_tflm(tflite, x.reshape((len(x), *info["input"]["shape"])))
    return y.reshape(len(x), -1), expected.reshape(len(x), -1), counts, info


@pytest.mark.parametrize("name", MLPERF_NAMES)
def test_mlperf_model_on_default_board(name, tmp_path):
    y, expected, counts, info = _build_and_run(mlperf_tflite(name), mlperf_inputs(name, n=2),
                                               "qemu", tmp_path / name)
    assert np.array_equal(y, expected)
    assert all(c and c > info["macs"] / 4 for c in counts)  # a real count, not a placeholder


@pytest.mark.parametrize("board", EMULATED)
def test_digits_on_every_emulated_board(board, tmp_path):
    d = digits_model()
    port = "pty" if board == "qemu-mps2-an500" else None  # both serial paths carry models
    y, expected, counts, _ = _build_and_run(d.tflite, d.x_test[:40], board, tmp_path / board, port)
    assert np.array_equal(y, expected)
    assert np.mean(np.argmax(y, 1) == d.y_test[:40]) > 0.9
    assert len(set(counts)) >= 1 and all(c > 0 for c in counts)


@pytest.mark.parametrize("name", MLPERF_NAMES)
def test_mlperf_model_on_helium_board(name, tmp_path):
    """The MLPerf Tiny architectures through the Helium kernels (mps3-an547)."""
    y, expected, counts, info = _build_and_run(mlperf_tflite(name), mlperf_inputs(name, n=2),
                                               "qemu-mps3-an547", tmp_path / name)
    assert np.array_equal(y, expected)
    assert all(c and c > info["macs"] / 8 for c in counts)  # Helium: ~0.25-0.5 instructions per MAC
