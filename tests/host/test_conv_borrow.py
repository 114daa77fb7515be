"""The C of blocked convolutions that unpack on borrowed arena bytes
(conv.py: borrow_ram; generated for a DSP core with the RAM grants off, as
tests/qemu/test_kernels_dsp_gemm_borrow.py does) built with host gcc: every
phase takes the plain loop there, bit-exact with TFLM."""
from __future__ import annotations

import functools

import pytest

import tinycomp.codegen.generate as gen
import tinycomp.codegen.ops.conv as conv
import tests.support.harness as harness
from tests.qemu.test_kernels_dsp_gemm_borrow import DSP, _model
from tests.qemu.test_kernels_dsp_gemm_paths import _inputs


@pytest.mark.parametrize("paired", [True, False])
def test_borrowed_unpacking_c_on_host(monkeypatch, paired):
    monkeypatch.setattr(gen, "_spend_spare_ram", lambda *args: None)
    if not paired:  # the weights' phases too (tests/qemu/test_kernels_dsp_gemm_borrow.py: unpaired)
        monkeypatch.setattr(conv, "pairable", lambda *args: None)
    monkeypatch.setattr(harness, "generate", functools.partial(gen.generate, features=DSP))
    model, shape, rng = _model()
    code = harness.generate(harness.parse_tflite(model)).files["tinycomp_model.c"]
    assert "(((int8_t *)in0) + " in code and "(void *)(out + " in code
    harness.assert_bit_exact(model, _inputs(rng, shape))
