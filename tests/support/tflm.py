"""Run .tflite models in TFLite Micro (the `tflite-micro` package): the
bit-exact reference for our generated C."""

from __future__ import annotations


import numpy as np
from tflite_micro import runtime

from tinycomp.reference.tflm import interpreter

def make_interpreter(tflite_bytes: bytes, preserve_all: bool = False):
    """A TFLM interpreter whose arena grows until the model fits (the one
    `tinycomp validate` uses)."""
    return interpreter(tflite_bytes, preserve_all=preserve_all)


def _as_input_list(inputs) -> list[np.ndarray]:
    if isinstance(inputs, np.ndarray):
        return [inputs]
    return [np.asarray(a) for a in inputs]


def _run(interp, inputs: list[np.ndarray], n: int, n_out: int,
         grab=None) -> list[list[np.ndarray]]:
    outs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    for i in range(n):
        # the planner may reuse input memory: write every input every time
        for k, a in enumerate(inputs):
            interp.set_input(np.ascontiguousarray(a[i]), k)
        interp.invoke()
        for k in range(n_out):
            outs[k].append(np.array(interp.get_output(k), copy=True))
        if grab is not None:
            grab(interp)
    return outs


def _num_outputs(tflite_bytes: bytes) -> int:
    m = runtime.convert_bytearray_to_object(bytearray(tflite_bytes))
    return len(m.subgraphs[0].outputs)


def run_tflm(tflite_bytes: bytes, inputs, interpreter=None):
    """Run a batch through TFLM.

    ``inputs``: int8 array of shape (N, *input_shape) for a one-input model,
    or a sequence of such arrays, one per model input (same N).
    Returns an array (N, *output_shape) for a one-output model, else a list.
    """
    ins = _as_input_list(inputs)
    n = len(ins[0])
    if any(len(a) != n for a in ins):
        raise ValueError("all inputs need the same batch length")
    n_out = _num_outputs(tflite_bytes)
    interp = interpreter or make_interpreter(tflite_bytes)
    outs = _run(interp, ins, n, n_out)
    stacked = [np.stack(o) for o in outs]
    return stacked[0] if n_out == 1 else stacked


def run_tflm_all(tflite_bytes: bytes, inputs) -> dict[int, np.ndarray]:
    """Like ``run_tflm`` but returns every non-constant tensor (graph inputs
    and every operator output) as {tensor index: array (N, *shape)}, for
    per-layer comparisons. Tensor indices are the builder's tensor ids."""
    ins = _as_input_list(inputs)
    n = len(ins[0])
    m = runtime.convert_bytearray_to_object(bytearray(tflite_bytes))
    sg = m.subgraphs[0]
    wanted = list(dict.fromkeys(
        [int(t) for t in sg.inputs]
        + [int(t) for op in sg.operators for t in op.outputs]))
    interp = make_interpreter(tflite_bytes, preserve_all=True)
    got: dict[int, list[np.ndarray]] = {t: [] for t in wanted}

    def grab(it):
        for t in wanted:
            # GetTensor gives {'dtype', 'shape', 'tensor_data'}
            got[t].append(np.array(it.GetTensor(t, 0)["tensor_data"], copy=True))

    _run(interp, ins, n, len(sg.outputs), grab)
    return {t: np.stack(v) for t, v in got.items()}
