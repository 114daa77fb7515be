"""Validate a whole model before anything is generated from it.

A model file is untrusted input: it may come from the internet or from a
fuzzer. Everything after the front end (passes, code generation) trusts the
IR, so every fact it relies on is checked here: indices in range, a graph
that is a DAG in execution order, one producer per tensor, shapes that follow
from each op (ir/shapes.py), sizes that fit the C types, and quantization
that is finite, of the right count and in range. What fails is refused in
one line naming the layer or tensor; TFLite Micro refuses the same models.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from ..ir import Graph, Node, Op
from ..ir.shapes import STATE_INPUTS, check_node_shapes

RESOURCE_OPS = (Op.READ_VARIABLE, Op.ASSIGN_VARIABLE)

# Far beyond any microcontroller's memory, and small enough that every index
# and size in generated C fits an int.
MAX_ELEMENTS = 1 << 24
MAX_RANK = 6
# Zero points a tensor of each type may have (int32 and wider are symmetric;
# the kernels that need symmetric int16 check it themselves).
ZERO_POINT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int4": (-8, 7),
                    "int16": (-32768, 32767), "int32": (0, 0), "int64": (0, 0)}
# The smallest normal float32: a denormal scale has lost its precision.
MIN_SCALE = float(np.finfo(np.float32).tiny)
MAX_SCALE = float(np.finfo(np.float32).max)


def _tensor_error(graph: Graph, index: int, what: str) -> ModelError:
    return ModelError(f"{graph.name}: tensor {index} ({graph.tensor(index).name!r}) {what}")


def _check_tensor(graph: Graph, index: int) -> None:
    t = graph.tensor(index)
    if t.dtype.startswith("type"):
        raise _tensor_error(graph, index, f"has an unknown element type ({t.dtype[4:]})")
    if t.dtype == "resource":  # the front end gives READ/ASSIGN_VARIABLE the variable's state instead
        raise _tensor_error(graph, index, "is a resource handle; only READ_VARIABLE and ASSIGN_VARIABLE "
                                          "may take one, as their input 0")
    if len(t.shape) > MAX_RANK:
        raise _tensor_error(graph, index, f"has rank {len(t.shape)}; at most {MAX_RANK} is supported")
    if any(d < 1 for d in t.shape):
        raise _tensor_error(graph, index, f"has shape {list(t.shape)}: every dimension must be at least 1 "
                                          "(TFLite Micro needs static, non-empty shapes)")
    if t.size > MAX_ELEMENTS:
        raise _tensor_error(graph, index, f"has {t.size:,} elements; at most {MAX_ELEMENTS:,} fit a microcontroller model")
    q = t.quant
    if q is None:
        if not t.is_const and t.dtype in ("int8", "int16", "uint8"):
            raise _tensor_error(graph, index, f"is {t.dtype} but has no quantization")
        return
    if len(q.zero_point) != len(q.scale):
        raise _tensor_error(graph, index, f"has {len(q.scale)} scales but {len(q.zero_point)} zero points")
    bad = [s for s in q.scale if not (math.isfinite(s) and MIN_SCALE <= s <= MAX_SCALE)]
    if bad:
        raise _tensor_error(graph, index, f"has scale {bad[0]!r}; scales must be finite, positive float32 "
                                          "normals")
    lo, hi = ZERO_POINT_RANGE.get(t.dtype, (-(1 << 31), (1 << 31) - 1))
    bad_zp = [z for z in q.zero_point if not lo <= z <= hi]
    if bad_zp:
        raise _tensor_error(graph, index, f"has zero point {bad_zp[0]}; a {t.dtype} tensor's must be in "
                                          f"[{lo}, {hi}]")
    if q.per_channel:
        if not t.is_const:  # TFLM's per-channel QUANTIZE is not supported either
            raise UnsupportedOpError(f"{graph.name}: tensor {index} ({t.name!r}) is computed but has "
                                     f"{len(q.scale)} scales; tinycomp's activations take one")
        if not 0 <= q.axis < len(t.shape) or t.shape[q.axis] != len(q.scale):
            raise _tensor_error(graph, index, f"has {len(q.scale)} scales along axis {q.axis} of shape "
                                              f"{list(t.shape)}")


def _check_indices(graph: Graph) -> None:
    n = len(graph.tensors)
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        if not indices:
            raise ModelError(f"{graph.name}: the model has no {role}")
        for t in indices:
            if not 0 <= t < n:
                raise ModelError(f"{graph.name}: model {role} refers to tensor {t}, which does not exist")
        if len(set(indices)) != len(indices):
            raise ModelError(f"{graph.name}: a tensor is listed twice among the model's {role}s")
    for node in graph.nodes:
        for i, t in enumerate(node.inputs):
            if t < -1 or t >= n:
                raise ModelError(f"{graph.name}: layer {node.index} ({node.op.value}) input {i} refers to "
                                 f"tensor {t}, which does not exist")
        for t in node.outputs:
            if not 0 <= t < n:
                raise ModelError(f"{graph.name}: layer {node.index} ({node.op.value}) writes tensor {t}, "
                                 "which does not exist")


def _layer(node: Node) -> str:
    return f"layer {node.index} ({node.op.value}, {node.name!r})"


def _check_order(graph: Graph) -> None:
    """Each layer runs after what it reads, as the file orders them. TFLite
    Micro runs layers in file order, so a layer that reads a later layer's
    result (a cycle, or ops out of order) would read garbage there: refused."""
    producer: dict[int, Node] = {}
    for node in graph.nodes:
        for t in node.outputs:
            if t in producer:
                raise ModelError(f"{graph.name}: tensor {t} ({graph.tensor(t).name!r}) is written by both "
                                 f"{_layer(producer[t])} and {_layer(node)}")
            if graph.tensor(t).is_const:
                raise ModelError(f"{graph.name}: {_layer(node)} writes the constant tensor "
                                 f"{graph.tensor(t).name!r}")
            if t in graph.inputs:
                raise ModelError(f"{graph.name}: {_layer(node)} writes the model's input "
                                 f"{graph.tensor(t).name!r}")
            producer[t] = node
    for t in graph.inputs:
        if graph.tensor(t).is_const:
            raise ModelError(f"{graph.name}: the model's input {graph.tensor(t).name!r} is a constant")
    _check_variables(graph, producer)
    # a variable tensor holds the state of earlier inferences: it is legitimately
    # read before any layer of this one writes it
    done: set[int] = set(graph.inputs) | {t for t in range(len(graph.tensors)) if graph.tensor(t).variable}
    for node in graph.nodes:
        for t in node.inputs:
            if t < 0 or graph.tensor(t).is_const or t in done:
                continue
            name = graph.tensor(t).name
            if t not in producer:
                raise ModelError(f"{graph.name}: {_layer(node)} reads tensor {t} ({name!r}), "
                                 "which no layer computes")
            if producer[t] is node:
                raise ModelError(f"{graph.name}: {_layer(node)} reads its own output")
            raise ModelError(f"{graph.name}: {_layer(node)} reads {name!r} before {_layer(producer[t])} "
                             "computes it (layers out of order, or a cycle)")
        done.update(node.outputs)


def _check_variables(graph: Graph, producer: dict[int, Node]) -> None:
    """State tensors live in their own static storage, updated in place by the
    one layer that reads them (SVDF's activation state, LSTM's hidden and cell
    states) or copied to and from by READ_VARIABLE and ASSIGN_VARIABLE (a
    resource variable, any number of them): no layer writes one as its
    output, none is a model input or output, and an SVDF or LSTM owns its
    state alone."""
    readers: dict[int, list[Node]] = {}
    for node in graph.nodes:
        for i, t in enumerate(node.inputs):
            if t >= 0 and graph.tensor(t).variable:
                if i not in STATE_INPUTS.get(node.op, ()):
                    raise UnsupportedOpError(f"{graph.name}: {_layer(node)} reads the variable tensor "
                                             f"{graph.tensor(t).name!r} as its input {i}; tinycomp supports "
                                             "state only as SVDF's activation state, LSTM's hidden and cell "
                                             "states or a resource variable (READ_VARIABLE, ASSIGN_VARIABLE)")
                readers.setdefault(t, []).append(node)
        if node.op in RESOURCE_OPS and node.inputs and (node.inputs[0] < 0
                                                        or not graph.tensor(node.inputs[0]).variable):
            raise ModelError(f"{graph.name}: {_layer(node)} takes no variable as its input 0")
    for t, t_obj in enumerate(graph.tensors):
        if not t_obj.variable:
            continue
        if t in producer:
            raise UnsupportedOpError(f"{graph.name}: {_layer(producer[t])} writes the variable tensor "
                                     f"{t_obj.name!r}; tinycomp supports state updated in place by its reader")
        if t in graph.inputs or t in graph.outputs:
            raise UnsupportedOpError(f"{graph.name}: the variable tensor {t_obj.name!r} is a model input or "
                                     "output; tinycomp keeps state inside the model")
        users = readers.get(t, [])
        if len(users) > 1 and any(n.op not in RESOURCE_OPS for n in users):
            raise UnsupportedOpError(f"{graph.name}: the variable tensor {t_obj.name!r} is read by "
                                     f"{_layer(users[0])} and {_layer(users[1])}; tinycomp supports one "
                                     "layer per state tensor")


# Where TFLite Micro takes INT4 tensors: the constant filter (input 1) of these
# ops, with int8 activations; its FULLY_CONNECTED refuses per-channel int4.
INT4_WEIGHTS = (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED)


def _check_int4(graph: Graph) -> None:
    """INT4 only as TFLM reads it: packed constant weights of an int8 layer."""
    for node in graph.nodes:
        for i, t in enumerate((*node.inputs, *node.outputs)):
            if t < 0 or graph.tensor(t).dtype != "int4":
                continue
            w, where = graph.tensor(t), f"{graph.name}: {_layer(node)}"
            if node.op not in INT4_WEIGHTS or i != 1 or not w.is_const:
                role = "output" if i >= len(node.inputs) else f"input {i}"
                raise UnsupportedOpError(f"{where} has the INT4 tensor {w.name!r} as its {role}; INT4 is "
                                         "supported (as in TFLite Micro) only as the constant weights of "
                                         + ", ".join(op.value for op in INT4_WEIGHTS))
            x = graph.tensor(node.inputs[0])
            if x.dtype != "int8":
                raise UnsupportedOpError(f"{where} has INT4 weights {w.name!r} with input type {x.dtype}; "
                                         "tinycomp's INT4 kernels take int8 activations")
            if node.op == Op.FULLY_CONNECTED and w.quant is not None and w.quant.per_channel:
                raise UnsupportedOpError(f"{where} has per-channel INT4 weights {w.name!r}; TFLite Micro's "
                                         "FULLY_CONNECTED takes INT4 weights only per tensor")


def _check_outputs(graph: Graph, producer: set[int]) -> None:
    # codegen's _check_io says the same of outputs that become inputs or
    # constants only through aliases and folding
    for k, t in enumerate(graph.outputs):
        name = graph.tensor(t).name
        if t in graph.inputs:
            raise UnsupportedOpError(f"{graph.name}: output {k} ({name!r}) is a model input passed through "
                                     "unchanged; tinycomp needs every output computed")
        if graph.tensor(t).is_const:
            raise UnsupportedOpError(f"{graph.name}: output {k} ({name!r}) is a constant; tinycomp needs "
                                     "every output computed")
        if t not in producer:
            raise ModelError(f"{graph.name}: no layer computes the model's output {name!r}")


def check_model(graph: Graph) -> Graph:
    """The graph, once every fact the passes and codegen rely on holds; else ModelError."""
    if not graph.nodes:
        raise ModelError(f"{graph.name}: the model has no layers")
    _check_indices(graph)
    used = {t for node in graph.nodes for t in (*node.inputs, *node.outputs) if t >= 0}
    for t in sorted(used | set(graph.inputs) | set(graph.outputs)):
        _check_tensor(graph, t)
    _check_order(graph)
    _check_outputs(graph, {t for node in graph.nodes for t in node.outputs})
    _check_int4(graph)
    for node in graph.nodes:
        check_node_shapes(graph, node)
    return graph
