"""TensorFlow Lite Micro's reference kernels (the `tflite-micro` package): the
INT8 ground truth that tinycomp's outputs must equal bit for bit."""
from __future__ import annotations

import numpy as np


def interpreter(tflite: bytes, preserve_all: bool = False):
    """A TFLM interpreter; the arena grows until the model fits."""
    from tflite_micro import runtime

    config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all
              else runtime.InterpreterConfig.kAllocationRecording)
    size = max(1 << 18, 4 * len(tflite))
    while True:
        try:
            return runtime.Interpreter.from_bytes(bytes(tflite), arena_size=size,
                                                  intrepreter_config=config)  # sic
        except RuntimeError:
            if size > 1 << 29:
                raise
            size *= 4


def run(tflite: bytes, x: np.ndarray, tensors: tuple[int, ...] = ()) -> tuple[np.ndarray, dict]:
    """Outputs (N, output size) for int8 samples x (N, *input shape), and the
    values of the listed intermediate tensors {index: (N, size)}."""
    interp = interpreter(tflite, preserve_all=bool(tensors))
    outs, seen = [], {t: [] for t in tensors}
    for sample in x:
        interp.set_input(np.ascontiguousarray(sample), 0)  # the planner reuses input memory
        interp.invoke()
        outs.append(np.array(interp.get_output(0), copy=True).reshape(-1))
        for t in tensors:
            seen[t].append(np.array(interp.GetTensor(t, 0)["tensor_data"], copy=True).reshape(-1))
    return np.stack(outs), {t: np.stack(v) for t, v in seen.items()}
