"""Magnitude pruning of a converted INT8 model, without TensorFlow: what the
QEMU pruning test and benchmarks/constants.py build. (Apart from models.py,
whose source hash keys the trained digits model's cache.)"""
from __future__ import annotations

import numpy as np


def pruned_tflite(tflite: bytes, sparsity: float = 0.8) -> bytes:
    """The INT8 model with the smallest `sparsity` of each FULLY_CONNECTED /
    CONV_2D filter's weights set to int8 zero: what magnitude pruning leaves
    after conversion, without TensorFlow."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(tflite))
    graph = model.subgraphs[0]
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) not in (3, 9):  # CONV_2D, FULLY_CONNECTED
            continue
        t = graph.tensors[op.inputs[1]]
        buf = model.buffers[t.buffer]
        w = np.frombuffer(bytes(bytearray(buf.data)), np.int8).reshape(int(t.shape[0]), -1).copy()
        for row in w:  # per output channel, as per-channel scales make magnitudes comparable within a row
            row[np.argsort(np.abs(row.astype(np.int32)), kind="stable")[:int(sparsity * row.size)]] = 0
        buf.data = np.frombuffer(w.tobytes(), np.uint8)
    return bytes(fu.convert_object_to_bytearray(model))
