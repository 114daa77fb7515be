"""BATCH_MATMUL int8 in QEMU, bit-exact with TFLM on the Cortex-M4 and M3:
the host test's first model (12 layers) in one firmware per board."""
import pytest

from tests.host.test_batch_matmul import batch_matmul_model
from tests.support.harness import assert_bit_exact_on_board, extreme_samples

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_batch_matmul_on_board(board):
    buf = batch_matmul_model(0)
    assert_bit_exact_on_board(buf, extreme_samples(buf, 0, 6), board)
