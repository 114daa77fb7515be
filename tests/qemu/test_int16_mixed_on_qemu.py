"""Mixed int8/int16 models (compress --int16) on QEMU's Cortex-M4 (the DSP
kernels) and Cortex-M3 (plain C): every candidate tensor int16 at once,
bit-exact with TFLite Micro."""
import pytest

from tests.host.test_int16_mixed import MODELS
from tests.support.harness import assert_bit_exact_on_board
from tinycomp.compress import int16


@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-mps2-an385"])
@pytest.mark.parametrize("name", ["digits", "kws", "ad"])
def test_mixed_models_are_bit_exact_on_qemu(name, board):
    tflite, x = MODELS[name]
    assert_bit_exact_on_board(int16.to_mixed(tflite, int16.candidates(tflite)), x[:3], board)
