"""Read an INT8 .tflite file (integer inside, int8/int16/float32 at the edges) into the IR through the LiteRT schema.

Never imports TensorFlow: this is the front end of every command that starts
from a .tflite file.
"""
from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from ..ir import Graph, Node, Op, Quant, Tensor
from ..passes.fold import fold_constants
from .checks import check_model
from .variables import HANDLED, Variables

_DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
           7: "int16", 9: "int8", 10: "float64", 13: "resource", 17: "int4"}
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_FLOAT_HINT = ("tinycomp compiles integer models (float only at the input and output, "
               "by QUANTIZE and DEQUANTIZE): pass the float Keras model with --calibration X.npy instead")


def _schema():
    # Imported lazily: the LiteRT wheel is only needed when a .tflite is read.
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    return schema, flatbuffer_utils


@contextlib.contextmanager
def _strings_in_bounds():
    """flatbuffers' Python reader slices strings, so a name whose length points
    past the end of the file is silently cut short where TFLite Micro's verifier
    refuses the file. While a model is read, such a string raises instead."""
    from flatbuffers import encode, number_types, table

    original = table.Table.String
    uoffset = number_types.UOffsetTFlags

    def checked(self, off):
        start = off + encode.Get(uoffset.packer_type, self.Bytes, off)
        length = encode.Get(uoffset.packer_type, self.Bytes, start)
        if start + uoffset.bytewidth + length > len(self.Bytes):
            raise ValueError("a string runs past the end of the file")
        return original(self, off)

    table.Table.String = checked
    try:
        yield
    finally:
        table.Table.String = original


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Each op's options table in the schema, and whether TFLite Micro needs it
# there (it reads zeros for an absent table: a stride of 0, a softmax beta
# of 0, which its kernels do not survive).
_OPTION_TABLES = {
    Op.CONV_2D: ("Conv2DOptions", True), Op.DEPTHWISE_CONV_2D: ("DepthwiseConv2DOptions", True),
    Op.FULLY_CONNECTED: ("FullyConnectedOptions", False), Op.ADD: ("AddOptions", False),
    Op.MUL: ("MulOptions", False), Op.AVERAGE_POOL_2D: ("Pool2DOptions", True),
    Op.MAX_POOL_2D: ("Pool2DOptions", True), Op.MEAN: ("ReducerOptions", False),
    Op.RESHAPE: ("ReshapeOptions", False), Op.SQUEEZE: ("SqueezeOptions", False),
    Op.EXPAND_DIMS: ("ExpandDimsOptions", False), Op.CONCATENATION: ("ConcatenationOptions", True),
    Op.PAD: ("PadOptions", False), Op.SOFTMAX: ("SoftmaxOptions", True),
    Op.HARD_SWISH: ("HardSwishOptions", False), Op.QUANTIZE: ("QuantizeOptions", False),
    Op.SVDF: ("SVDFOptions", True), Op.TRANSPOSE_CONV: ("TransposeConvOptions", True),
    Op.BATCH_MATMUL: ("BatchMatMulOptions", False),
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: ("UnidirectionalSequenceLSTMOptions", True),
}


def _options(op_obj, kind: Op, where: str) -> MappingProxyType:
    raw = op_obj.builtinOptions
    table, required = _OPTION_TABLES.get(kind, (None, False))
    if raw is None:
        if required:
            raise ModelError(f"{where} has no {table}; TFLite Micro needs them")
        return MappingProxyType({})
    if table is not None and type(raw).__name__ != f"{table}T":
        raise ModelError(f"{where} carries {type(raw).__name__[:-1]} instead of {table}")
    opts = {}
    for key, value in vars(raw).items():
        key = _snake(key)
        if isinstance(value, np.ndarray):
            value = tuple(int(v) for v in value)
        if key == "padding":
            value = _PADDING.get(value, value)
        elif key == "fused_activation_function":
            key, value = "activation", _ACTIVATION.get(value, value)
        opts[key] = value
    return MappingProxyType(opts)


def _quant(q) -> Quant | None:
    scales = q.scale if q is not None and q.scale is not None else ()
    zps = q.zeroPoint if q is not None and q.zeroPoint is not None else ()
    if len(scales) == 0 and len(zps) == 0:
        return None
    # mismatched counts (one of them empty included) are refused by checks.py
    return Quant(tuple(float(s) for s in scales), tuple(int(z) for z in zps),
                 int(q.quantizedDimension or 0))


def _tensor(index: int, t, buffers) -> Tensor:
    dtype = _DTYPES.get(t.type, f"type{t.type}")
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or f"t{index}")
    data = None
    buf = buffers[t.buffer].data if 0 < t.buffer < len(buffers) else None
    if buf is not None and len(buf) and dtype == "int4":
        data = _unpack_int4(np.asarray(buf, dtype=np.uint8), shape, name)
    elif buf is not None and len(buf):
        raw = np.asarray(buf, dtype=np.uint8).tobytes()
        try:
            data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
            data = data.reshape(shape)
        except (TypeError, ValueError):
            raise ModelError(f"constant tensor {name!r} holds {len(raw)} bytes, "
                             f"which does not fit its shape {shape} of {dtype}") from None
    variable = bool(getattr(t, "isVariable", False))
    if variable and data is not None:
        # TFLM zeroes variable tensors when it allocates them (the zero
        # point for int8), whatever their buffer holds: so does tinycomp
        # (tinycomp_reset_state), so the buffer is not a constant.
        data = None
    return Tensor(index, name, shape, dtype, _quant(t.quantization), data, variable)


def pack_int4(values) -> np.ndarray:
    """TFLite's INT4 buffer (uint8) of values in [-8, 7], the inverse of
    _unpack_int4: the flattened values two per byte, element 2i in the low
    nibble and 2i+1 in the high one; an odd count ends on a 0 nibble. Any
    4-bit codes pack the same way (their low 4 bits are kept)."""
    v = np.asarray(values, np.int64).reshape(-1) & 0xF
    if v.size % 2:
        v = np.append(v, 0)
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8)


def _unpack_int4(buf: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """TFLite's INT4 buffer as TFLM reads it: the flattened tensor's values two
    per byte, element 2i in the low nibble and 2i+1 in the high one, each a
    4-bit two's complement number; an odd count leaves the last high nibble
    unused. Every nibble is a valid value, so only the length can be wrong."""
    n = int(np.prod(shape, dtype=np.int64))
    if buf.size != (n + 1) // 2:
        raise ModelError(f"constant INT4 tensor {name!r} holds {buf.size} bytes; its shape {shape} "
                         f"packs into {(n + 1) // 2}")
    nibbles = np.stack([buf & 0xF, buf >> 4], axis=1).reshape(-1)[:n].astype(np.int8)
    return np.where(nibbles >= 8, nibbles - 16, nibbles).astype(np.int8).reshape(shape)


def model_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def read_tflite(path: Path | str) -> Graph:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_tflite(data, name=path.stem)


def parse_tflite(data: bytes, name: str = "model") -> Graph:
    schema, fb = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{name}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        with _strings_in_bounds():
            model = fb.read_model_from_bytearray(bytearray(data))
    except Exception as exc:  # the flatbuffer reader raises anything on corrupt input
        raise ModelError(f"{name}: corrupt or truncated .tflite file ({type(exc).__name__})") from None
    if not model.subgraphs:
        raise ModelError(f"{name}: the model has no subgraph")
    sub = model.subgraphs[0]  # the main one; others only as CALL_ONCE's initialisers
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    try:
        tensors = [_tensor(i, t, model.buffers) for i, t in enumerate(sub.tensors or ())]
        variables = Variables(model, codes, name, lambda i, t: _tensor(i, t, model.buffers))
        nodes = []
        for i, op in enumerate(sub.operators or ()):
            code = model.operatorCodes[op.opcodeIndex]
            opname = codes.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            outputs = tuple(int(t) for t in (op.outputs if op.outputs is not None else ()))
            label = tensors[outputs[0]].name if outputs and 0 <= outputs[0] < len(tensors) else f"#{i}"
            if opname == "CUSTOM" and code.customCode:
                opname = f"CUSTOM ({code.customCode.decode(errors='replace')})"
            if opname == "CUSTOM (ethos-u)":
                raise UnsupportedOpError(
                    f"layer {i} ({label!r}) is an Ethos-U custom op: this model was compiled for an "
                    "Arm Ethos-U NPU by Vela; pass tinycomp the model from before Vela")
            if variables.main_op(i, opname, op, tensors):
                continue  # VAR_HANDLE, CALL_ONCE: evaluated here
            try:
                kind = Op(opname)
            except ValueError:
                raise UnsupportedOpError(
                    f"unsupported op {opname} at layer {i} ({label!r}); tinycomp supports "
                    + ", ".join([o.value for o in Op] + list(HANDLED))) from None
            options = _options(op, kind, f"layer {i} ({opname}, {label!r})")
            if op.intermediates is not None and len(op.intermediates):
                # the converter's extra tensors of an integer LSTM (gate and
                # hidden scales); the shape rule checks them
                options = MappingProxyType({**options, "intermediates": tuple(int(t) for t in op.intermediates)})
            nodes.append(Node(i, kind, tuple(int(t) for t in (op.inputs if op.inputs is not None else ())), outputs,
                              options, label))
        tensors, nodes = variables.lower(tensors, nodes)
        graph = Graph(tuple(tensors), tuple(nodes), tuple(int(t) for t in (sub.inputs if sub.inputs is not None else ())),
                      tuple(int(t) for t in (sub.outputs if sub.outputs is not None else ())), name, model_hash(data))
    except (IndexError, TypeError, AttributeError, ValueError, OverflowError):
        raise ModelError(f"{name}: corrupt .tflite file (dangling tensor, buffer or opcode index)") from None
    graph = check_model(graph)
    graph = fold_constants(graph)  # SHAPE and shape arithmetic vanish before the type checks
    _check_integer_only(graph)
    return graph


# Types a model may take or give at its edges, converted to and from int8
# there by the model's own QUANTIZE / DEQUANTIZE ops (the TFLite converter's
# default keeps float32 edges around an integer graph). Inside, all is int8,
# except int16 activations (TFLite's 16x8 scheme) flowing through the ops
# below, which have int16 kernels (codegen/table.py; tests/unit checks the two
# lists agree).
EDGE_TYPES = ("float32", "int16", "uint8", "int32")
INT16_OPS = frozenset({
    Op.QUANTIZE, Op.FULLY_CONNECTED, Op.CONV_2D, Op.DEPTHWISE_CONV_2D,
    Op.ADD, Op.SUB, Op.MUL, Op.AVERAGE_POOL_2D, Op.MAX_POOL_2D,
    Op.RESHAPE, Op.SQUEEZE, Op.EXPAND_DIMS, Op.CONCATENATION, Op.PAD, Op.TRANSPOSE,
    Op.STRIDED_SLICE, Op.SLICE, Op.SPLIT, Op.SPLIT_V, Op.PACK, Op.RESIZE_NEAREST_NEIGHBOR,
    Op.LOGISTIC, Op.TANH, Op.RELU, Op.RELU6, Op.LEAKY_RELU, Op.SOFTMAX, Op.MEAN,
    Op.READ_VARIABLE, Op.ASSIGN_VARIABLE,
})  # not GATHER, DEPTH_TO_SPACE, SPACE_TO_DEPTH: TFLM refuses them on int16


def _layer(node) -> str:
    return f"layer {node.index} ({node.op.value}, {node.name!r})"


def _edge_tensors(graph: Graph) -> set[int]:
    """The graph inputs and outputs of an edge type, each checked to be converted
    right there: an input read only by QUANTIZE ops that make int8, an output
    made by DEQUANTIZE (to float32) or QUANTIZE (to int16, uint8) from int8."""
    consumers, producers = graph.consumers(), graph.producers()
    edges = set()
    for role, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for index in indices:
            t = graph.tensor(index)
            if t.dtype in ("int8", "int16"):
                # int16: an activation like any other, checked by op below
                if t.quant is None:
                    raise ModelError(f"{graph.name}: the model's int8 {role} {t.name!r} has no quantization")
                continue
            if t.dtype not in EDGE_TYPES:
                raise UnsupportedOpError(f"{graph.name}: the model's {role} {t.name!r} is {t.dtype}; "
                                         "tinycomp supports int8, int16, uint8 and float32 inputs and outputs")
            if t.quant is None and t.dtype == "int32":
                raise ModelError(f"{graph.name}: the model's int32 {role} {t.name!r} has no quantization")
            if role == "input":
                users = consumers.get(index, [])
                # int32 goes to int8 or int16 activations (16x8 models)
                inside = ("int8", "int16") if t.dtype == "int32" else ("int8",)
                wrong = [n for n in users
                         if n.op != Op.QUANTIZE or graph.tensor(n.outputs[0]).dtype not in inside]
            else:
                maker = producers.get(index)
                if maker is None:
                    raise ModelError(f"{graph.name}: the model's output {t.name!r} is not computed by any layer")
                wrong = [] if _converts_from_int8(graph, maker, t.dtype) else [maker]
            if wrong:
                what = (f"{_layer(wrong[0])} takes the model's {t.dtype} {role} {t.name!r}" if role == "input"
                        else f"{_layer(wrong[0])} makes the model's {t.dtype} {role} {t.name!r}")
                if t.dtype.startswith("float"):
                    raise ModelError(f"{graph.name}: {what} (a float or hybrid model); " + _FLOAT_HINT)
                raise UnsupportedOpError(f"{graph.name}: {what}; tinycomp supports {t.dtype} only at the "
                                         "model's edges, converted from or to int8 by QUANTIZE")
            edges.add(index)
    return edges


def _converts_from_int8(graph: Graph, node, dtype: str) -> bool:
    op = Op.DEQUANTIZE if dtype == "float32" else Op.QUANTIZE  # to int16 / uint8 / int32
    inside = ("int8", "int16") if dtype == "int32" else ("int8",)
    return node.op == op and graph.tensor(node.inputs[0]).dtype in inside


def _check_integer_only(graph: Graph) -> None:
    edges = _edge_tensors(graph)
    for node in graph.nodes:
        for index in node.inputs + node.outputs:
            if index < 0 or index in edges:
                continue
            t = graph.tensor(index)
            if t.dtype.startswith("float"):
                raise ModelError(f"{graph.name}: {_layer(node)} has {t.dtype} tensor {t.name!r} "
                                 f"(a float or hybrid model); {_FLOAT_HINT}")
            if t.is_const or t.variable:  # state: its kernel checks the type
                continue
            if t.dtype == "int16" and node.op not in INT16_OPS:
                raise UnsupportedOpError(f"{_layer(node)} has an int16 activation {t.name!r}; "
                                         "tinycomp's int16 (16x8) kernels are "
                                         + ", ".join(sorted(op.value for op in INT16_OPS)))
            if t.dtype not in ("int8", "int16"):
                raise UnsupportedOpError(f"{_layer(node)} has a {t.dtype} activation {t.name!r}; "
                                         "tinycomp supports int8 and int16 activations (other types "
                                         "only at the model's input and output)")
