"""INT4-weight layers on ARM in QEMU, bit-exact with TFLite Micro: the DSP
path (mps2-an386, Cortex-M4: nibbles masked into SXTB16/SMLAD operands) and
the plain path (mps2-an385, Cortex-M3: nibbles by shifts). One multi-output
model per board carries every kernel path (tests/support/int4_models.py)."""
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.int4_models import int4_inputs, int4_model

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board, seed", [("qemu", 10), ("qemu", 11), ("qemu-mps2-an385", 12)])
def test_int4_layers_on_board(board, seed):
    model = int4_model(seed)
    assert_bit_exact_on_board(model, int4_inputs(seed, model, count=6), board=board)
