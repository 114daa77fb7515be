"""UNIDIRECTIONAL_SEQUENCE_LSTM in QEMU, bit-exact with TFLM over whole
sequences on the Cortex-M4 (DSP build) and the Cortex-M3, and the firmware's
RESET command: after it the hidden and cell states start again from TFLM's
initial values (the hidden state at its zero point), without a restart."""
import numpy as np
import pytest

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph
from tinycomp.targets import get_runner
from tests.support.harness import assert_bit_exact_on_board
from tests.support.lstm_models import lstm_keyword_model, lstm_model, lstm_sequence
from tests.support.tflm import run_tflm

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_lstm_sequences_on_board(board):
    """The host test's first model (16 LSTM layers, 6 invokes) on the board."""
    buf = lstm_model(0, 16)
    assert_bit_exact_on_board(buf, lstm_sequence(buf, 0, 6), board)


def test_reset_command_restarts_the_sequence(tmp_path):
    buf = lstm_model(5, 3)
    build_graph(parse_tflite(buf), buf, tmp_path / "b", "qemu")
    ins = lstm_sequence(buf, 5, 4)
    samples = [b"".join(np.ascontiguousarray(a[i]).tobytes() for a in ins) for i in range(4)]
    with get_runner("qemu", tmp_path / "b" / "build") as runner:
        first = [runner.infer(s).output for s in samples]
        carried = [runner.infer(s).output for s in samples]
        runner.reset_state()
        again = [runner.infer(s).output for s in samples]
    assert again == first
    assert carried != first  # without RESET the state carries on
    ref = run_tflm(buf, ins)
    assert b"".join(np.ascontiguousarray(r[0]).tobytes() for r in ref) == first[0]


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_lstm_keyword_model_on_board(board):
    buf = lstm_keyword_model()
    x = np.random.default_rng(4).integers(-128, 128, (20, 1, 12, 10)).astype(np.int8)
    assert_bit_exact_on_board(buf, x, board)


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_keras_lstm_converted_by_tflite_on_board(board):
    from tests.support.keras_lstm import keras_lstm_model, utterances

    assert_bit_exact_on_board(keras_lstm_model(), utterances(12, 1), board)
