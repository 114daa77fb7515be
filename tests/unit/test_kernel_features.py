"""The kernel table's feature rows: the board's core features choose the
Helium kernels; without them (host, Cortex-M4) the generated C is the plain
one. Generation only; tests/qemu/test_kernels_mve.py runs the kernels."""
import numpy as np

from tinycomp.boards import load_board
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.host.test_conv import _dw_model
from tests.host.test_fully_connected import _fc_model


def _c(model: bytes, board: str) -> str:
    return generate(parse_tflite(model), features=load_board(board).features).files["tinycomp_model.c"]


def test_mve_rows_only_for_mve_cores():
    rng = np.random.default_rng(0)
    fc, _ = _fc_model(rng, 1, 40, 7, per_channel=True, activation=None, with_bias=True)
    dw, _ = _dw_model(rng, hw=(5, 5), cin=6, mult=1, k=(3, 3), stride=(1, 1), dilation=(1, 1),
                      padding="SAME", per_channel=True, activation=None, with_bias=True)
    for model, marker in ((fc, "vmladavaq_s8"), (dw, "vmullbq_int_s16")):
        assert marker in _c(model, "qemu-mps3-an547")
        for board in ("host", "qemu-mps2-an386"):
            c = _c(model, board)
            assert marker not in c and "arm_mve.h" in c  # included only under __ARM_FEATURE_MVE
            assert "#if defined(__ARM_FEATURE_MVE)" in c


def test_same_graph_other_weights_layout():
    """The Helium GEMM packs weights per block of 4 channels and 16-byte chunk
    (rows padded), so an MVE build's weights differ from the plain build's."""
    rng = np.random.default_rng(1)
    fc, _ = _fc_model(rng, 1, 20, 5, per_channel=False, activation=None, with_bias=True)
    g = parse_tflite(fc)
    plain = generate(g).weights_bytes
    mve = generate(g, features=load_board("qemu-mps3-an547").features).weights_bytes
    assert mve > plain  # 20-byte rows padded to 32, 5 channels to 8
