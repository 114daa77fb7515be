"""PyTorch/ONNX models through the command line: a build and run that keep
the model's NCHW layout, and every bad input answered by one line on stderr,
a non-zero exit and nothing written to --out."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tests.support.cli import assert_one_line_error
from tests.support.tflm import run_tflm

pytestmark = [pytest.mark.torch]


def _tinycomp(*args, prelude: str = ""):
    code = prelude + "from tinycomp.cli import main; import sys; sys.argv[0] = 'tinycomp'; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


def _assert_one_line_error(result, out, *fragments):
    assert_one_line_error(result, *fragments)
    assert not out.exists(), "a failed build left files in --out"


@pytest.fixture(scope="module")
def unsupported(tmp_path_factory):
    """A model with GELU (no int8 kernel in tinycomp) as .pt2 and .onnx."""
    import torch
    from torch import nn

    folder = tmp_path_factory.mktemp("unsupported")
    model = nn.Sequential(nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2)).eval()
    example = (torch.zeros(1, 8),)
    torch.export.save(torch.export.export(model, example), folder / "gelu.pt2")
    torch.onnx.export(model, example, str(folder / "gelu.onnx"), dynamo=True, verbose=False)
    np.save(folder / "x.npy", np.random.default_rng(0).random((20, 8), dtype=np.float32))
    return folder


def test_build_and_run_keep_the_model_layout(torch_models, tmp_path):
    # The 1-D CNN takes (N, C=8, L=8); `tinycomp run` takes the same layout
    # and matches TFLM on the generated .tflite.
    from tinycomp import pipeline

    m = torch_models["cnn1d"]
    out = tmp_path / "b"  # built in-process (the CLI builds are the error tests' and QEMU's)
    pipeline.build(m.onnx, out, pipeline.BuildOptions(board="host", calibration=m.calibration))
    assert json.loads((out / "tinycomp.json").read_text())["input"]["shape"] == [1, 8, 8]
    np.save(tmp_path / "x.npy", m.x_test[:50])
    result = _tinycomp("run", out, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    from tinycomp.pipeline import model_samples
    q = model_samples(m.x_test[:50], json.loads((out / "tinycomp.json").read_text()))  # run's quantization
    expected = run_tflm((out / "model.tflite").read_bytes(), q[:, None]).reshape(50, -1)
    assert np.array_equal(np.load(tmp_path / "y.npy").reshape(50, -1), expected)


def test_corrupt_onnx(torch_models, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(torch_models["mlp"].onnx.read_bytes()[:150] + b"\xff" * 40)
    _assert_one_line_error(_tinycomp("build", bad, "--out", tmp_path / "o", "--calibration",
                                     torch_models["mlp"].calibration),
                           tmp_path / "o", "bad.onnx", "not a readable ONNX model")


def test_corrupt_pt2(torch_models, tmp_path):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(torch_models["mlp"].pt2.read_bytes()[:500])
    _assert_one_line_error(_tinycomp("build", bad, "--out", tmp_path / "o", "--calibration",
                                     torch_models["mlp"].calibration),
                           tmp_path / "o", "bad.pt2", "not a torch.export archive")


class _Planted:
    """Unpickling this creates a folder: stands for code a crafted file runs."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __reduce__(self):
        import os
        return (os.mkdir, (self.folder,))


def test_pt2_with_pickled_code_is_refused_unloaded(torch_models, tmp_path):
    # torch.export.load retries sample inputs that fail the weights-only
    # unpickler with the unrestricted one (measured: the code runs). tinycomp
    # checks every pickled member first and loads nothing of such a file.
    import io

    import torch

    planted = tmp_path / "planted"
    src, dst = torch_models["mlp"].pt2, tmp_path / "crafted.pt2"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("sample_inputs/model.pt"):
                buf = io.BytesIO()
                torch.save(_Planted(planted), buf)
                data = buf.getvalue()
            zout.writestr(item, data)
    _assert_one_line_error(_tinycomp("build", dst, "--out", tmp_path / "o", "--calibration",
                                     torch_models["mlp"].calibration),
                           tmp_path / "o", "sample_inputs/model.pt holds pickled Python objects")
    assert not planted.exists()
    # validate --float-model X.pt2 beside a .tflite reaches the float reference directly.
    from tinycomp.errors import ModelError
    from tinycomp.frontends.pytorch import float_outputs
    with pytest.raises(ModelError, match="holds pickled Python objects"):
        float_outputs(dst, np.zeros((1, 64), np.float32))
    assert not planted.exists()


def test_onnx_without_its_external_data(torch_models, tmp_path):
    shutil.copy(torch_models["cnn2d"].onnx, tmp_path / "cnn2d.onnx")  # the .onnx.data stays behind
    _assert_one_line_error(_tinycomp("build", tmp_path / "cnn2d.onnx", "--out", tmp_path / "o",
                                     "--calibration", torch_models["cnn2d"].calibration),
                           tmp_path / "o", "external data file 'cnn2d.onnx.data'", "missing")


def test_pt2_from_another_torch_version(torch_models, tmp_path):
    src, dst = torch_models["mlp"].pt2, tmp_path / "future.pt2"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("models/model.json"):
                meta = json.loads(data)
                meta["schema_version"] = {"major": 99, "minor": 0}
                meta["torch_version"] = "9.9.0"
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    _assert_one_line_error(_tinycomp("build", dst, "--out", tmp_path / "o", "--calibration",
                                     torch_models["mlp"].calibration),
                           tmp_path / "o", "saved by torch 9.9.0", "schema 99.0", "re-export")


@pytest.mark.parametrize("fmt, fragment", [("pt2", "unsupported op aten.gelu at node 'gelu'"),
                                           ("onnx", "unsupported op Gelu at node")])
def test_unsupported_op_is_named_with_its_node(unsupported, tmp_path, fmt, fragment):
    _assert_one_line_error(_tinycomp("build", unsupported / f"gelu.{fmt}", "--out", tmp_path / "o",
                                     "--calibration", unsupported / "x.npy"), tmp_path / "o", fragment)


def test_calibration_in_the_wrong_layout(torch_models, tmp_path):
    m = torch_models["cnn2d"]
    np.save(tmp_path / "nhwc.npy", np.load(m.calibration).transpose(0, 2, 3, 1))
    _assert_one_line_error(_tinycomp("build", m.onnx, "--out", tmp_path / "o",
                                     "--calibration", tmp_path / "nhwc.npy"), tmp_path / "o",
                           "calibration samples have shape (N, 8, 8, 1)", "the model takes NCHW (N, 1, 8, 8)")


def test_without_the_extra_installed(torch_models, tmp_path):
    # As on a machine without tinycomp[torch]: importing torch or onnx fails.
    block = ("import sys\n"
             "class _NoTorch:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'onnxruntime'):\n"
             "            raise ImportError(name)\n"
             "sys.meta_path.insert(0, _NoTorch())\n")
    for path in (torch_models["mlp"].onnx, torch_models["mlp"].pt2):
        _assert_one_line_error(_tinycomp("build", path, "--out", tmp_path / "o", "--calibration",
                                         torch_models["mlp"].calibration, prelude=block),
                               tmp_path / "o", "pip install 'tinycomp[torch]'")


def test_tflite_and_keras_builds_never_import_torch(tmp_path):
    # A plain .tflite, then a small Keras model built from its file: neither
    # may load torch or onnx.
    from tests.support.tflite_builder import ModelBuilder, random_weights

    b = ModelBuilder()
    x = b.input((1, 6), 0.05, 0)
    wq, ws = random_weights(np.random.default_rng(1), (3, 6))
    b.output(b.fully_connected(x, b.const_int8(wq, scales=ws), None, 0.1, 2))
    (tmp_path / "m.tflite").write_bytes(b.build())
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((16, 6), dtype=np.float32))
    code = f"""
import sys
from pathlib import Path
from tinycomp import pipeline
pipeline.build(Path({str(tmp_path / 'm.tflite')!r}), Path({str(tmp_path / 'a')!r}),
               pipeline.BuildOptions(board='host'))
import keras
keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]).save({str(tmp_path / 'k.keras')!r})
pipeline.build(Path({str(tmp_path / 'k.keras')!r}), Path({str(tmp_path / 'k')!r}),
               pipeline.BuildOptions(board='host', calibration=Path({str(tmp_path / 'x.npy')!r})))
print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxscript', 'onnxruntime')))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
