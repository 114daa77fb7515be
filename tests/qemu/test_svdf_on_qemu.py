"""SVDF in QEMU, bit-exact with TFLM over whole sequences on the Cortex-M4
(DSP build) and the Cortex-M3, and the firmware's RESET command: after it the
state starts from zeros again, without restarting the board."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.stateful import check_reset_command, sequence
from tests.support.svdf_models import svdf_model

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_svdf_sequences_on_board(board):
    """The host test's first model (14 SVDF layers, 16 steps) on the board."""
    buf = svdf_model(0, 14)
    assert_bit_exact_on_board(buf, sequence(buf, 0, 16), board)


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_int8_state_svdf_sequences_on_board(board):
    buf = svdf_model(100, 14, np.int8)
    assert_bit_exact_on_board(buf, sequence(buf, 0, 16), board)


def test_reset_command_restarts_the_sequence(tmp_path):
    check_reset_command(svdf_model(5, 3), 5, tmp_path)


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_svdf_keyword_model_on_board(board):
    from tests.support.svdf_models import svdf_keyword_model
    buf = svdf_keyword_model()
    frames = np.random.default_rng(1).integers(-128, 128, (40, 1, 40)).astype(np.int8)
    assert_bit_exact_on_board(buf, frames, board)
