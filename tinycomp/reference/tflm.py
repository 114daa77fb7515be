"""TensorFlow Lite Micro's reference kernels (the `tflite-micro` package): the
INT8 ground truth that tinycomp's outputs must equal bit for bit."""
from __future__ import annotations

import numpy as np

MAX_ARENA = 64 << 20  # far beyond any microcontroller model


def interpreter(tflite: bytes, preserve_all: bool = False):
    """A TFLM interpreter; the arena grows until the model fits."""
    from tflite_micro import runtime

    config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all
              else runtime.InterpreterConfig.kAllocationRecording)
    size, last = max(1 << 18, 4 * len(tflite)), None
    while size <= MAX_ARENA:
        try:
            return runtime.Interpreter.from_bytes(bytes(tflite), arena_size=size,
                                                  intrepreter_config=config)  # sic
        except RuntimeError as exc:  # arena too small, or a model TFLM rejects
            last, size = exc, size * 4
    raise RuntimeError(f"TFLM could not allocate the model: {last}")


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
