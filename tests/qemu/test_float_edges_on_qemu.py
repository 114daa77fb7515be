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


def _edges_model(rng):
    """float32 x (1, 64) and int8 codes (1, 256) in; QUANTIZE(x), DEQUANTIZE of
    another QUANTIZE(x), and DEQUANTIZE(codes) out: the two conversions on
    many values in one firmware build."""
    from tests.host.test_quantize_edges import _scale
    b = ModelBuilder()
    x = b.input((1, 64), None, dtype=np.float32)
    s1, z1 = _scale(rng, 1e-4, 10.0), int(rng.integers(-128, 128))
    codes = b.input((1, 256), _scale(rng, 1e-6, 100.0), int(rng.integers(-128, 128)))
    q1 = b.tensor((1, 64), s1, z1)
    b.op("QUANTIZE", [x], [q1])
    # a coarser scale: the samples' quotients stay inside int32, where TFLM is
    # defined (beyond, its float-to-int conversion is undefined behaviour)
    q2 = b.tensor((1, 64), s1 * float(rng.uniform(1.0, 50.0)), int(rng.integers(-128, 128)))
    b.op("QUANTIZE", [x], [q2])
    d2, d3 = b.tensor((1, 64), dtype=np.float32), b.tensor((1, 256), dtype=np.float32)
    b.op("DEQUANTIZE", [q2], [d2])
    b.op("DEQUANTIZE", [codes], [d3])
    b.output(q1, d2, d3)
    return b.build(), s1, z1


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_quantize_and_dequantize_many_values_on_board(board):
    rng = np.random.default_rng(21)
    model, s1, z1 = _edges_model(rng)
    x = float_samples(rng, s1, z1, 30, 64)
    codes = np.tile(np.arange(-128, 128, dtype=np.int8), (30, 1)).reshape(30, 1, 256)
    outs = assert_bit_exact_on_board(model, [x, codes], board)
    assert [o.dtype for o in outs] == [np.int8, np.float32, np.float32]


def test_uint8_edges_on_m3():
    b = ModelBuilder()
    x = b.input((1, 256), 0.03, 131, dtype=np.uint8)
    q = b.tensor((1, 256), 0.03, 3)
    b.op("QUANTIZE", [x], [q])
    y = b.tensor((1, 256), 0.05, 128, dtype=np.uint8)
    b.op("QUANTIZE", [b.relu(q)], [y])
    b.output(y)
    codes = np.arange(256, dtype=np.uint8).reshape(1, 1, 256)
    assert_bit_exact_on_board(b.build(), np.concatenate([codes, codes[:, :, ::-1]]), "qemu-mps2-an385")
