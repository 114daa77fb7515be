"""Resource variables in QEMU, on the Cortex-M4 (DSP build) and the
Cortex-M3: the converted streaming models and the edge-case model bit-exact
with TFLM over whole sequences, and the firmware's RESET command bringing
back the variables' start values (CALL_ONCE's constants, the zero-point
fill) without restarting the board."""
import numpy as np
import pytest

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph
from tinycomp.targets import get_runner
from tests.support.harness import assert_bit_exact_on_board
from tests.support.tflm import run_tflm
from tests.support.variable_models import edge_case_model, frames, streaming_model

pytestmark = pytest.mark.qemu
BOARDS = ["qemu", "qemu-mps2-an385"]


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("kind", ["int8", "int16", "float-edges"])
def test_streaming_model_on_board(board, kind):
    buf = streaming_model(kind)
    assert_bit_exact_on_board(buf, frames(buf, 16, 3), board)


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_edge_cases_on_board(board, dtype):
    buf = edge_case_model(dtype)
    info = np.iinfo(dtype)
    x = np.random.default_rng(1).integers(info.min, info.max + 1, (6, 1, 6)).astype(dtype)
    assert_bit_exact_on_board(buf, x, board)


def test_reset_command_restores_start_values(tmp_path):
    """Eight frames, the same eight again (the state carried: other
    outputs), RESET, the eight again: equal to the first run and to a
    fresh TFLM interpreter."""
    buf = streaming_model("int8")
    build_graph(parse_tflite(buf), buf, tmp_path / "b", "qemu")
    x = frames(buf, 8, 4)
    ref = run_tflm(buf, x).reshape(8, -1)
    with get_runner("qemu", tmp_path / "b" / "build") as runner:
        first = [runner.infer(s.tobytes()).output for s in x]
        carried = [runner.infer(s.tobytes()).output for s in x]
        runner.reset_state()
        again = [runner.infer(s.tobytes()).output for s in x]
    assert again == first and carried != first
    assert np.array_equal(np.stack([np.frombuffer(o, np.int8) for o in first]), ref)
