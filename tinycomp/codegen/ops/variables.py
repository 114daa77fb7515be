"""READ_VARIABLE and ASSIGN_VARIABLE: byte copies between a resource
variable's state buffer (outside the arena, kept between inferences) and a
tensor, as TFLite Micro copies them. Each runs at its place in the layer
order, so a READ before an ASSIGN of the same inference keeps the value the
variable had before it (the copy is the READ's own tensor)."""
from __future__ import annotations

from ..layer import Layer, c_type


def read_variable(layer: Layer) -> dict:
    state = layer.input(0)
    return {"kind": "read", "bytes": state.nbytes}


def assign_variable(layer: Layer) -> dict:
    state, value = layer.input(0), layer.input(1)
    # a constant value (a variable set to the same values every inference)
    # is an array of the weights, else the kernel's in1
    source = layer.const("value", value.data, c_type(value.dtype)) if value.is_const else "in1"
    return {"kind": "assign", "bytes": state.nbytes, "source": source}
