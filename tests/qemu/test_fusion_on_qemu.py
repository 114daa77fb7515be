"""CONV_2D + residual ADD fused (tinycomp/passes/fuse.py) on QEMU: the DSP
path (SMMULR, SSAT, SMLAD) on the Cortex-M4 (an386) and the plain C path on
the Cortex-M3 (an385), bit-exact with TFLM, over the host test's random
residual blocks."""
from __future__ import annotations

import numpy as np
import pytest

from tests.host.test_fusion import _inputs, fused_ops, residual_block
from tests.support.harness import assert_bit_exact_on_board


@pytest.mark.parametrize("seed,board", [(0, "qemu-mps2-an386"), (1, "qemu-mps2-an386"),
                                        (5, "qemu-mps2-an386"), (6, "qemu-mps2-an386"),
                                        (2, "qemu-mps2-an385"), (7, "qemu-mps2-an385")])
def test_fused_residual_block_on_board(seed, board):
    model, shape = residual_block(seed)
    assert "CONV_2D+ADD" in fused_ops(model)
    assert_bit_exact_on_board(model, _inputs(np.random.default_rng(seed), shape), board)


@pytest.mark.parametrize("seed,board", [(0, "qemu-mps2-an386"), (1, "qemu-mps2-an385")])
def test_skip_is_the_fused_convs_own_input_on_board(seed, board):
    model, shape = residual_block(100 + seed, skip_is_input=True)
    assert "CONV_2D+ADD" in fused_ops(model)
    assert_bit_exact_on_board(model, _inputs(np.random.default_rng(seed), shape), board)
