"""UNIDIRECTIONAL_SEQUENCE_LSTM in QEMU, bit-exact with TFLM over whole
sequences on the Cortex-M4 (DSP build) and the Cortex-M3, and the firmware's
RESET command: after it the hidden and cell states start again from TFLM's
initial values (the hidden state at its zero point), without a restart."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact_on_board
from tests.support.lstm_models import lstm_keyword_model, lstm_model
from tests.support.stateful import check_reset_command, sequence

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_lstm_sequences_on_board(board):
    """The host test's first model (16 LSTM layers, 6 invokes) on the board."""
    buf = lstm_model(0, 16)
    assert_bit_exact_on_board(buf, sequence(buf, 0, 6), board)


def test_reset_command_restarts_the_sequence(tmp_path):
    check_reset_command(lstm_model(5, 3), 5, tmp_path)


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_lstm_keyword_model_on_board(board):
    buf = lstm_keyword_model()
    x = np.random.default_rng(4).integers(-128, 128, (20, 1, 12, 10)).astype(np.int8)
    assert_bit_exact_on_board(buf, x, board)


@pytest.mark.parametrize("float_edges", [False, True])
@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_keras_lstm_converted_by_tflite_on_board(board, float_edges):
    from tests.support.keras_lstm import keras_lstm_model, utterances

    assert_bit_exact_on_board(keras_lstm_model(float_edges), utterances(12, 1, float_edges), board)
