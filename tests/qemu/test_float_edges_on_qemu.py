"""Float and int16 model edges in QEMU, over serial, bit-exact with TFLM:
the Cortex-M4F (mps2-an386) quantizes and dequantizes with its FPU, the
Cortex-M3 (mps2-an385) with libgcc's soft float; both must give TFLM's bits."""
import numpy as np
import pytest

from tests.host.test_quantize_edges import float_edges_model, float_samples
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflite_builder import ModelBuilder

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_float_in_float_out_on_board(board):
    model, scale, zp = float_edges_model(7400)
    x = float_samples(np.random.default_rng(3), scale, zp, 12, 24)
    y = assert_bit_exact_on_board(model, x, board)
    assert y.dtype == np.float32


def test_int16_edges_on_m4():
    rng = np.random.default_rng(8)
    b = ModelBuilder()
    x = b.input((1, 40), 0.0004, 3, dtype=np.int16)
    q = b.tensor((1, 40), 0.05, -3)
    b.op("QUANTIZE", [x], [q])
    y = b.tensor((1, 40), 0.05 / 93, 0, dtype=np.int16)
    b.op("QUANTIZE", [b.relu(q)], [y])
    b.output(y)
    samples = rng.integers(-32768, 32768, size=(6, 1, 40)).astype(np.int16)
    assert_bit_exact_on_board(b.build(), samples, "qemu")


@pytest.mark.tf
@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_keras_model_with_converter_defaults_on_board(board, tmp_path):
    # through the pipeline as `tinycomp run` takes it: float32 samples in, float32 out
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.pipeline import build_graph, run
    from tests.support.models import digits_default_conversion, digits_model
    from tests.support.tflm import run_tflm
    model, d = digits_default_conversion(), digits_model()
    info = build_graph(parse_tflite(model), model, tmp_path / "b", board)
    assert info["input"]["dtype"] == info["output"]["dtype"] == "float32"
    y, _ = run(tmp_path / "b", d.x_test[:20])
    assert y.dtype == np.float32 and y.shape == (20, 10)
    ref = run_tflm(model, d.x_test[:20].reshape(20, 1, 8, 8, 1)).reshape(20, 10)
    np.testing.assert_array_equal(y.view(np.int32), ref.view(np.int32))
