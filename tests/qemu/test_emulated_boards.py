"""Every emulated board runs the generated model in QEMU and answers correctly."""
import numpy as np
import pytest

from tinycomp.boards import load_board

from .conftest import EMULATED

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", EMULATED)
def test_describe_infer_profile(qemu_runner, generated_model, board):
    runner = qemu_runner(board)
    info = runner.describe()
    assert info.board == board
    assert info.model_hash == runner.info.model_hash and len(info.model_hash) == 16
    assert (info.input_size, info.output_size) == (64, 10)
    assert info.input_shape == (1, 8, 8, 1) and info.output_shape == (1, 10)
    assert info.input_zero_point == -5 and info.output_zero_point == 3
    assert info.input_scale == pytest.approx(0.02) and info.output_scale == pytest.approx(0.1)
    assert info.num_layers == generated_model.num_layers
    assert info.counter_unit == "instructions" and info.emulated
    assert info.count_per_tick == load_board(board).counter.instructions_per_tick
    assert info.init_timeouts == 0

    counts = set()
    for x, want in zip(generated_model.inputs, generated_model.expected):
        result = runner.infer(x.tobytes())
        got = np.frombuffer(result.output, dtype=np.int8)
        np.testing.assert_array_equal(got, want)   # bit-exact with TFLM
        counts.add(result.count)
    # Kernels branch a little on data (clamping), so samples differ slightly.
    assert min(counts) > 1000 and max(counts) - min(counts) < 0.01 * min(counts)

    prof = runner.profile(generated_model.inputs[0].tobytes())
    assert len(prof.per_layer) == generated_model.num_layers
    assert all(c > 0 for c in prof.per_layer)
    assert sum(prof.per_layer) <= prof.total <= sum(prof.per_layer) + 2000
    np.testing.assert_array_equal(np.frombuffer(prof.output, np.int8), generated_model.expected[0])


def test_counts_are_reproducible_across_runs(qemu_runner, generated_model):
    x = generated_model.inputs[0].tobytes()
    first = qemu_runner().infer(x).count
    second = qemu_runner().infer(x).count
    assert first == second
