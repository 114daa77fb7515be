"""INT4-weight layers on ARM in QEMU, bit-exact with TFLite Micro: the DSP
path (mps2-an386, Cortex-M4: nibbles masked into SXTB16/SMLAD operands) and
the plain path (mps2-an385, Cortex-M3: nibbles by shifts). One multi-output
model per board carries every kernel path (tests/support/int4_models.py)."""
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.int4_models import int4_inputs, int4_model

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board, seed", [("qemu", 10), ("qemu", 11), ("qemu-mps2-an385", 12),
                                         ("qemu-mps3-an547", 14)])  # Helium board: INT4 takes the plain rows
def test_int4_layers_on_board(board, seed):
    model = int4_model(seed)
    assert_bit_exact_on_board(model, int4_inputs(seed, model, count=12), board=board)


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_sparse_int4_on_board(board, monkeypatch):
    """Pruned INT4 layers through the offset-sparse kernels (values packed two
    per byte): the cost model's dense INT4 kernels made infinitely slow, so
    every layer whose stream is smaller is stored sparse."""
    from tinycomp.codegen.generate import generate
    from tinycomp.codegen.ops import sparse
    from tinycomp.frontends.tflite import parse_tflite
    monkeypatch.setitem(sparse.COST, "int4_dense_mac", {"CONV_2D": 1e9, "FULLY_CONNECTED": 1e9})
    model = int4_model(13, sparsity=0.85)
    assert generate(parse_tflite(model)).files["tinycomp_weights.c"].count("_values[") >= 8
    assert_bit_exact_on_board(model, int4_inputs(13, model, count=12), board=board)
