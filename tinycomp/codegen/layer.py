"""What a kernel's context function sees of one layer, and what it hands back."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node, Tensor

CTYPES = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "uint16_t": np.uint16,
          "int32_t": np.int32, "uint32_t": np.uint32, "int64_t": np.int64}
# C type of a tensor's elements, by numpy dtype name (activations and I/O)
TENSOR_CTYPES = {"int8": "int8_t", "int16": "int16_t", "uint8": "uint8_t", "float32": "float",
                 "int32": "int32_t"}


def c_type(dtype: str) -> str:
    return TENSOR_CTYPES[dtype]


@dataclass(frozen=True)
class Constant:
    name: str
    ctype: str
    values: np.ndarray  # flat, already of the C type's range


@dataclass
class Layer:
    graph: Graph
    node: Node
    constants: list[Constant] = field(default_factory=list)
    storage: str = "balanced"  # build --optimize: how weights are stored (codegen/ops/sparse.py)
    # the target core's features (Board.features): a context may spend scratch
    # on a DSP-only layout where "dsp" is in them; its C stays correct anywhere
    features: frozenset = frozenset()
    # scratch the kernel may spend on speed alone, in a balanced build: 0 none,
    # 1 int16 rows (conv.reserve_xq), 2 also int16 weights (conv.reserve_wexp);
    # generate() grants the most that leaves the arena as it is
    spare_ram: int = 0
    # with spare_ram 2: unpack only the first this many output channels'
    # weights (a multiple of the block; None: all), where all do not fit
    wexp_units: int | None = None

    @property
    def fn(self) -> str:
        return f"tc_layer{self.node.index}"

    @property
    def options(self):
        return self.node.options

    def input(self, i: int = 0) -> Tensor:
        return self.graph.tensor(self.node.inputs[i])

    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] >= 0

    def output(self, i: int = 0) -> Tensor:
        return self.graph.tensor(self.node.outputs[i])

    def activation_inputs(self) -> list[Tensor]:
        """The non-constant inputs, in order: the kernel's in0, in1, ..."""
        return [self.graph.tensor(t) for t in self.node.inputs
                if t >= 0 and not self.graph.tensor(t).is_const]

    def const(self, suffix: str, values, ctype: str) -> str:
        """Emit a constant array in tinycomp_weights.c; returns its C name."""
        array = np.asarray(values).reshape(-1)
        info = np.iinfo(CTYPES[ctype])
        if array.size and (array.min() < info.min or array.max() > info.max):
            # e.g. a bias near the int32 limits, which the input offset folded into it pushes over
            raise self.refuse(f"its {suffix.replace('_', ' ')} values exceed {ctype} "
                              "(a bias or zero point at the limits of its type)")
        name = f"tinycomp_w_l{self.node.index}_{suffix}"
        self.constants.append(Constant(name, ctype, array.astype(CTYPES[ctype])))
        return name

    def refuse(self, what: str) -> UnsupportedOpError:
        """An error naming the op and layer, for options tinycomp cannot compile."""
        return UnsupportedOpError(
            f"{self.node.op.value} at layer {self.node.index} ({self.node.name!r}): {what}")


@dataclass(frozen=True)
class Kernel:
    """One row of the op table: the template that lays out the C, and the
    function that computes its numbers. The context dict may set
    'scratch_bytes' (int), 'inplace' (bool: out may alias in0) and
    'template' (a variant of the family, e.g. a sparse or a 1x1 kernel)."""

    template: str
    context: Callable[[Layer], dict[str, Any]]
