"""Several inputs and outputs over the serial protocol in QEMU: INFER carries
every input's bytes, the reply every output's, bit-exact with TFLM on the
Cortex-M4 (DSP paths) and the Cortex-M3 (plain C)."""
import numpy as np
import pytest

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph
from tinycomp.profile import profile_build
from tinycomp.targets import get_runner
from tests.host.test_multi_io import two_in_two_out_model, two_in_two_out_samples
from tests.support.harness import assert_bit_exact_on_board

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("board", ["qemu", "qemu-mps2-an385"])
def test_two_inputs_two_outputs_on_board(board):
    outs = assert_bit_exact_on_board(two_in_two_out_model(8000), two_in_two_out_samples(5, 12), board)
    assert [o.dtype for o in outs] == [np.float32, np.int8]


def test_describe_and_profile_several_inputs(tmp_path):
    model = two_in_two_out_model(8001)
    info = build_graph(parse_tflite(model), model, tmp_path / "b", "qemu")
    with get_runner("qemu", tmp_path / "b" / "build") as runner:
        d = runner.describe()
    assert [(t.dtype, t.nbytes, t.shape) for t in d.inputs] == [("int8", 90, (1, 6, 5, 3)),
                                                              ("float32", 48, (1, 12))]
    assert [(t.dtype, t.nbytes) for t in d.outputs] == [("float32", 108), ("int8", 4)]
    assert d.inputs[0].scale == pytest.approx(info["inputs"][0]["scale"]) and d.inputs[1].scale == 0.0
    p = profile_build(tmp_path / "b", two_in_two_out_samples(6, 2))
    assert p["instructions"] > 0 and len(p["layers"]) == len(info["layers"]) - 2  # 2 reshapes
