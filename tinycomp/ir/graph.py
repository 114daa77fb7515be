"""IR data types. Tensors are referred to by index into Graph.tensors."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np


class Op(enum.Enum):
    """Every op tinycomp compiles. Names match TFLite's BuiltinOperator names."""

    CONV_2D = "CONV_2D"
    DEPTHWISE_CONV_2D = "DEPTHWISE_CONV_2D"
    FULLY_CONNECTED = "FULLY_CONNECTED"
    ADD = "ADD"
    MUL = "MUL"
    AVERAGE_POOL_2D = "AVERAGE_POOL_2D"
    MAX_POOL_2D = "MAX_POOL_2D"
    MEAN = "MEAN"
    RESHAPE = "RESHAPE"
    SQUEEZE = "SQUEEZE"
    EXPAND_DIMS = "EXPAND_DIMS"
    CONCATENATION = "CONCATENATION"
    PAD = "PAD"
    TRANSPOSE = "TRANSPOSE"
    SOFTMAX = "SOFTMAX"
    LOGISTIC = "LOGISTIC"
    TANH = "TANH"
    RELU = "RELU"
    RELU6 = "RELU6"
    HARD_SWISH = "HARD_SWISH"
    QUANTIZE = "QUANTIZE"
    DEQUANTIZE = "DEQUANTIZE"
    SUB = "SUB"
    MINIMUM = "MINIMUM"
    MAXIMUM = "MAXIMUM"
    LEAKY_RELU = "LEAKY_RELU"
    PRELU = "PRELU"
    STRIDED_SLICE = "STRIDED_SLICE"
    SLICE = "SLICE"
    SPLIT = "SPLIT"
    SPLIT_V = "SPLIT_V"
    GATHER = "GATHER"
    PACK = "PACK"
    SHAPE = "SHAPE"
    DEPTH_TO_SPACE = "DEPTH_TO_SPACE"
    SPACE_TO_DEPTH = "SPACE_TO_DEPTH"
    RESIZE_NEAREST_NEIGHBOR = "RESIZE_NEAREST_NEIGHBOR"
    SVDF = "SVDF"
    TRANSPOSE_CONV = "TRANSPOSE_CONV"
    BATCH_MATMUL = "BATCH_MATMUL"
    # resource variables: the front end turns each VAR_HANDLE's variable into
    # a state tensor (variable=True) and evaluates CALL_ONCE's initialiser
    READ_VARIABLE = "READ_VARIABLE"  # state -> its output, a copy
    ASSIGN_VARIABLE = "ASSIGN_VARIABLE"  # (state, value): value -> state; no output
    UNIDIRECTIONAL_SEQUENCE_LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"

    @property
    def is_alias(self) -> bool:
        """Ops that only reinterpret the shape: the output shares the input's bytes."""
        return self in (Op.RESHAPE, Op.SQUEEZE, Op.EXPAND_DIMS)


@dataclass(frozen=True)
class Quant:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True, eq=False)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    # numpy dtype name: "int8", "int32", ...; "int4" (TFLite's packed INT4
    # weights) holds its values unpacked, as int8 in [-8, 7]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None  # constant tensors only
    # state kept between inferences: TFLite's isVariable (SVDF's state, read
    # before any layer of the same inference writes it, updated in place by
    # its one reader) or a resource variable (READ_VARIABLE, ASSIGN_VARIABLE)
    variable: bool = False
    # a state tensor's value at start and after tinycomp_reset_state(), of its
    # shape and dtype; None: zeros
    init: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.dtype == "int4":  # two values per byte, as the file stores them
            return (self.size + 1) // 2
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        assert self.quant is not None, f"tensor {self.name} is not quantized"
        return self.quant.scale[0]

    @property
    def zero_point(self) -> int:
        assert self.quant is not None, f"tensor {self.name} is not quantized"
        return self.quant.zero_point[0]


@dataclass(frozen=True)
class Node:
    index: int
    op: Op
    inputs: tuple[int, ...]  # tensor indices; -1 marks an absent optional input
    outputs: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    name: str = ""  # a readable name for messages: the output tensor's name


@dataclass(frozen=True)
class Graph:
    tensors: tuple[Tensor, ...]
    nodes: tuple[Node, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    name: str = "model"
    model_hash: str = ""  # first 16 hex digits of the source model's sha256

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    def with_nodes(self, nodes) -> "Graph":
        return replace(self, nodes=tuple(nodes))

    def producers(self) -> dict[int, Node]:
        return {t: n for n in self.nodes for t in n.outputs}

    def consumers(self) -> dict[int, list[Node]]:
        users: dict[int, list[Node]] = {}
        for n in self.nodes:
            for t in n.inputs:
                if t >= 0:
                    users.setdefault(t, []).append(n)
        return users
