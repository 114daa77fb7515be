"""TensorFlow Lite Micro's reference kernels (the `tflite-micro` package): the
INT8 ground truth that tinycomp's outputs must equal bit for bit."""
from __future__ import annotations

import numpy as np

MAX_ARENA = 64 << 20  # far beyond any microcontroller model


def _count_variables(model) -> int:
    """The resource variables of a model as TFLM's MicroResourceVariables
    tells them apart, by (container, shared_name). The package's own
    count_resource_variables counts shared names only: a model with one name
    in two containers then gets too few slots and fails to allocate."""
    from tflite_micro import runtime

    if not isinstance(model, runtime.schema_fb.ModelT):
        model = runtime.convert_bytearray_to_object(model)
    keys = set()
    for sub in model.subgraphs:
        for op in sub.operators or ():
            code = runtime.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            if code == runtime.schema_fb.BuiltinOperator.VAR_HANDLE:
                keys.add((op.builtinOptions.container, op.builtinOptions.sharedName))
    return len(keys)


def interpreter(tflite: bytes, preserve_all: bool = False):
    """A TFLM interpreter; the arena grows until the model fits."""
    from tflite_micro import runtime

    runtime.count_resource_variables = _count_variables  # sizes the variable table only

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


def run_all(tflite: bytes, inputs: list[np.ndarray], tensors: tuple[int, ...] = ()
            ) -> tuple[list[np.ndarray], dict]:
    """Every output, (N, output size) each, for samples inputs (one array
    (N, *input shape) per model input, in its dtype), and the values of the
    listed intermediate tensors {index: (N, size)}."""
    from tflite_micro import runtime

    interp = interpreter(tflite, preserve_all=bool(tensors))
    n_out = len(runtime.convert_bytearray_to_object(bytearray(tflite)).subgraphs[0].outputs)
    outs: list[list[np.ndarray]] = []
    seen = {t: [] for t in tensors}
    for i in range(len(inputs[0])):
        for k, x in enumerate(inputs):  # the planner reuses input memory: every input every time
            interp.set_input(np.ascontiguousarray(x[i]), k)
        interp.invoke()
        outs.append([np.array(interp.get_output(k), copy=True).reshape(-1) for k in range(n_out)])
        for t in tensors:
            seen[t].append(np.array(interp.GetTensor(t, 0)["tensor_data"], copy=True).reshape(-1))
    per_output = [np.stack([row[k] for row in outs]) for k in range(len(outs[0]))] if outs else []
    return per_output, {t: np.stack(v) for t, v in seen.items()}


def run(tflite: bytes, x: np.ndarray, tensors: tuple[int, ...] = ()) -> tuple[np.ndarray, dict]:
    """Output 0 (N, output size) for samples x (N, *input shape) of a
    one-input model, and the listed intermediate tensors (see run_all)."""
    outs, seen = run_all(tflite, [x], tensors)
    return outs[0], seen
