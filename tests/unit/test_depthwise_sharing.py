"""3x3 depthwise layers share one function per clamp variant on the DSP
path (depthwise_conv_2d_dsp3.c.j2) and one on the plain path
(depthwise_conv_2d_plain3.c.j2): per layer only a geometry struct and a
call remain. Bit-exactness of the shared kernel is proven on QEMU by
tests/qemu/test_kernels_dsp_dw_add.py; here the generated C is inspected."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias,
                                          random_weights)


CC = shutil.which("arm-none-eabi-gcc")


def _model(layers, c=8, hw=(9, 7), seed=0):
    """Chain of depthwise layers: (kernel, stride, dilation, activation, out zero point)."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, *hw, c), *random_activation_quant(rng))
    for k, stride, dil, act, zp in layers:
        wq, ws = random_weights(rng, (1, *k, c), axis=3)
        w = b.const_int8(wq, scales=ws, axis=3)
        bq, bs = random_bias(rng, c, b.tensors[x].scale, ws)
        x = b.depthwise_conv2d(x, w, b.const_int32(bq, scales=bs), 0.05, zp, stride=stride,
                               padding="SAME", activation=act, dilation=dil)
    b.output(x)
    return generate(parse_tflite(b.build())).files


def _preprocessed(tmp_path, files, cpu):
    """The C an M4 compiler sees: each layer's text carries the shared
    functions under an #ifndef guard, so only the preprocessor's output
    tells how many definitions remain."""
    if CC is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return subprocess.run([CC, f"-mcpu={cpu}", "-mthumb", "-E", "-P", "-I", str(tmp_path),
                           str(tmp_path / "tinycomp_model.c")],
                          check=True, capture_output=True, text=True).stdout


def _m4(tmp_path, files):
    return _preprocessed(tmp_path, files, "cortex-m4")


def _definitions(code, name):
    return re.findall(rf"^static [^;{{=]*\b{name}\(", code, re.M)


def test_layers_of_different_shapes_share_one_function(tmp_path):
    code = _m4(tmp_path, _model([((3, 3), 1, 1, None, 0), ((3, 3), 2, 1, None, 0), ((3, 3), 1, 1, None, 0)]))
    assert len(_definitions(code, "tc_dw3_dsp_s")) == 1
    assert len(_definitions(code, "tc_dw3_px_s")) == 1
    assert len(_definitions(code, "tc_dw3_edge_s")) == 1
    assert code.count("tc_dw3_dsp_s(in0, out, &geo);") == 3
    assert "_px(" not in code.replace("tc_dw3_px_s(", "")  # no per-layer helpers left


def test_a_clamp_inside_int8_gets_the_clamping_variant(tmp_path):
    # RELU with output zero point 10 clamps at 10, which SSAT alone cannot do
    code = _m4(tmp_path, _model([((3, 3), 1, 1, "RELU", 10), ((3, 3), 1, 1, None, 0)]))
    assert len(_definitions(code, "tc_dw3_dsp_c")) == 1
    assert len(_definitions(code, "tc_dw3_dsp_s")) == 1
    assert "lo4 = (uint8_t)g->act_min" in code  # the clamp on four packed bytes


def test_other_kernels_keep_their_specialised_path():
    code = _model([((5, 5), 1, 1, None, 0), ((3, 3), 1, 2, None, 0)])["tinycomp_model.c"]
    assert "tc_dw3" not in code
    assert "tc_layer0_px(" in code and "tc_layer1_px(" in code


def test_plain_path_shares_one_function_without_dsp(tmp_path):
    files = _model([((3, 3), 1, 1, "RELU", 10), ((3, 3), 2, 1, None, 0), ((3, 3), 1, 2, None, 0)])
    m3 = _preprocessed(tmp_path, files, "cortex-m3")
    assert len(_definitions(m3, "tc_dw3p")) == 1
    assert m3.count("tc_dw3p(in0, out, &geo);") == 2  # the dilated layer keeps its own code
    assert "tc_dw3_dsp" not in m3
