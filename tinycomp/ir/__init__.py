"""The typed IR: a Graph of Nodes over Tensors. Frozen dataclasses; ops are an Enum."""
from .graph import Graph, Node, Op, Quant, Tensor

__all__ = ["Graph", "Node", "Op", "Quant", "Tensor"]
