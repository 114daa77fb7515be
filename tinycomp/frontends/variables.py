"""Resource variables of a .tflite model, lowered to state tensors.

A converter with resource variables writes: VAR_HANDLE ops (options
container, shared_name) that make a handle tensor of type RESOURCE,
READ_VARIABLE (handle -> tensor) and ASSIGN_VARIABLE (handle, value), and a
CALL_ONCE first in the main subgraph that runs an init subgraph on the first
invoke, which assigns the variables their initial constants.

tinycomp gives each variable (one per (container, shared_name), as TFLite
Micro identifies them) a state tensor of its own (Tensor.variable, a static
buffer outside the arena): READ_VARIABLE and ASSIGN_VARIABLE take it as their
input 0; VAR_HANDLE and CALL_ONCE vanish, the init subgraph is evaluated here
(its values become the state tensor's `init`). Anything else that runs a
subgraph (WHILE, IF, CALL) or an init subgraph that does more than assign
constants is refused.

Initial values, as measured on the tflite-micro interpreter: a variable
CALL_ONCE assigns holds that constant before the first invoke; one it does
not holds its zero point's low byte in every byte (TFLM fills the buffer
with memset(zero_point), so an int16 variable with zero point 3 reads
0x0303). tinycomp_reset_state() restores these values: a fresh start, as
after power-up. (TFLM's own MicroInterpreter::Reset() differs: it byte-fills
every variable with the zero point and does not run CALL_ONCE again.)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from ..ir import Node, Op, Tensor

# TFLite ops the front end evaluates itself: they never reach the IR
HANDLED = ("VAR_HANDLE", "CALL_ONCE")
VARIABLE_TYPES = ("int8", "int16")


def _text(value) -> str:
    """A name as TFLM compares it: a C string, which ends at the first NUL."""
    if value is None:
        return ""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return text.split("\0", 1)[0]


@dataclass
class Variables:
    """Collects the main subgraph's handles and CALL_ONCE initial values while
    the front end reads its operators, then lowers READ/ASSIGN_VARIABLE."""

    model: object  # the schema's ModelT
    codes: dict  # builtin code -> op name
    name: str  # the model's, for messages
    tensor: object  # (index, schema TensorT) -> Tensor, the front end's reader
    handles: dict = field(default_factory=dict)  # handle tensor -> (container, shared_name)
    inits: dict = field(default_factory=dict)  # (container, shared_name) -> Tensor
    init_subgraphs: set = field(default_factory=set)
    first_use: int | None = None  # the first READ/ASSIGN_VARIABLE layer

    def _op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        return self.codes.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    def _handle(self, where: str, op) -> tuple[int, tuple[str, str]]:
        """The handle tensor a VAR_HANDLE op makes, and its variable's key."""
        ins = list(op.inputs) if op.inputs is not None else []
        outs = list(op.outputs) if op.outputs is not None else []
        if ins or len(outs) != 1:
            raise ModelError(f"{self.name}: {where} has {len(ins)} inputs and {len(outs)} outputs; "
                             "VAR_HANDLE takes none and makes one handle")
        opts = op.builtinOptions
        if opts is not None and type(opts).__name__ != "VarHandleOptionsT":
            raise ModelError(f"{self.name}: {where} carries {type(opts).__name__[:-1]} instead of "
                             "VarHandleOptions")
        key = (_text(getattr(opts, "container", None)), _text(getattr(opts, "sharedName", None)))
        return int(outs[0]), key

    def main_op(self, i: int, opname: str, op, tensors) -> bool:
        """Take layer i if it is an op this module evaluates (True), else leave it."""
        where = f"layer {i} ({opname})"
        if opname == "VAR_HANDLE":
            t, key = self._handle(where, op)
            if not 0 <= t < len(tensors) or tensors[t].dtype != "resource" or tensors[t].size != 1:
                raise ModelError(f"{self.name}: {where} makes tensor {t}, which is not a resource tensor "
                                 "of one element")
            if t in self.handles:
                raise ModelError(f"{self.name}: {where} writes the handle {tensors[t].name!r}, "
                                 "which another VAR_HANDLE already made")
            self.handles[t] = key
            return True
        if opname == "CALL_ONCE":
            if self.first_use is not None:
                raise UnsupportedOpError(f"{self.name}: {where} comes after layer {self.first_use} uses a "
                                         "variable; tinycomp needs CALL_ONCE before every variable access")
            self._call_once(where, op)
            return True
        if opname in ("READ_VARIABLE", "ASSIGN_VARIABLE") and self.first_use is None:
            self.first_use = i
        return False

    def _call_once(self, where: str, op) -> None:
        opts = op.builtinOptions
        if opts is None or type(opts).__name__ != "CallOnceOptionsT":
            raise ModelError(f"{self.name}: {where} has no CallOnceOptions")
        if (op.inputs is not None and len(op.inputs)) or (op.outputs is not None and len(op.outputs)):
            raise ModelError(f"{self.name}: {where} has inputs or outputs; CALL_ONCE takes none")
        k = int(opts.initSubgraphIndex)
        if not 1 <= k < len(self.model.subgraphs):
            raise ModelError(f"{self.name}: {where} runs subgraph {k}, which "
                             + ("is the main subgraph" if k == 0 else "does not exist"))
        self.init_subgraphs.add(k)
        sub = self.model.subgraphs[k]
        if (sub.inputs is not None and len(sub.inputs)) or (sub.outputs is not None and len(sub.outputs)):
            raise ModelError(f"{self.name}: {where} runs subgraph {k}, which has inputs or outputs; "
                             "TFLite Micro's CALL_ONCE needs neither")
        sub_tensors = list(sub.tensors or ())
        handles = {}
        for j, init_op in enumerate(sub.operators or ()):
            name = self._op_name(init_op)
            inner = f"layer {j} ({name}) of subgraph {k}, the initialiser of {where}"
            if name == "VAR_HANDLE":
                t, key = self._handle(inner, init_op)
                handle = self.tensor(t, sub_tensors[t]) if 0 <= t < len(sub_tensors) else None
                if handle is None or handle.dtype != "resource" or handle.size != 1:
                    raise ModelError(f"{self.name}: {inner} makes tensor {t}, which is not a resource "
                                     "tensor of one element")
                handles[t] = key
                continue
            if name != "ASSIGN_VARIABLE":
                raise UnsupportedOpError(f"{self.name}: {inner} is {name}; tinycomp evaluates init "
                                         "subgraphs that only assign constants to variables "
                                         "(VAR_HANDLE, ASSIGN_VARIABLE)")
            ins = [int(t) for t in (init_op.inputs if init_op.inputs is not None else ())]
            if len(ins) != 2 or (init_op.outputs is not None and len(init_op.outputs)):
                raise ModelError(f"{self.name}: {inner} has {len(ins)} inputs; ASSIGN_VARIABLE takes a "
                                 "handle and a value and has no output")
            if ins[0] not in handles:
                raise ModelError(f"{self.name}: {inner} assigns through tensor {ins[0]}, which no earlier "
                                 "VAR_HANDLE of the subgraph made")
            if not 0 <= ins[1] < len(sub_tensors):
                raise ModelError(f"{self.name}: {inner} assigns tensor {ins[1]}, which does not exist")
            value = self.tensor(ins[1], sub_tensors[ins[1]])
            if not value.is_const:
                raise UnsupportedOpError(f"{self.name}: {inner} assigns {value.name!r}, which is not a "
                                         "constant; tinycomp evaluates init subgraphs at build time")
            self.inits[handles[ins[0]]] = value

    def lower(self, tensors: list[Tensor], nodes: list[Node]) -> tuple[list[Tensor], list[Node]]:
        """One state tensor per variable the main subgraph uses (appended to
        `tensors`), and READ/ASSIGN_VARIABLE nodes that take it as input 0."""
        extra = [k for k in range(1, len(self.model.subgraphs)) if k not in self.init_subgraphs]
        if extra:
            raise UnsupportedOpError(f"{self.name}: subgraph {extra[0]} is not the init subgraph of a "
                                     "CALL_ONCE; tinycomp runs one subgraph (no WHILE, IF or CALL)")
        state: dict[tuple[str, str], int] = {}
        uses: dict[tuple[str, str], list[Node]] = {}
        lowered = []
        for node in nodes:
            if node.op not in (Op.READ_VARIABLE, Op.ASSIGN_VARIABLE) or not node.inputs:
                lowered.append(node)  # arity: refused by the shape rule
                continue
            h = node.inputs[0]
            if h not in self.handles:
                raise ModelError(f"{self.name}: layer {node.index} ({node.op.value}) takes tensor {h} as its "
                                 "handle, which no VAR_HANDLE makes")
            key = self.handles[h]
            if key not in state:
                state[key] = len(tensors)
                tensors.append(self._state_tensor(len(tensors), key, node, tensors))
            uses.setdefault(key, []).append(node)
            label = node.name if node.outputs else key[1]
            lowered.append(replace(node, inputs=(state[key], *node.inputs[1:]), name=label))
        for key, t in state.items():
            if key not in self.inits and not any(n.op == Op.ASSIGN_VARIABLE for n in uses[key]):
                raise ModelError(f"{self.name}: variable {key[1]!r} is read by layer {uses[key][0].index} "
                                 "but never assigned (TFLite Micro reads no defined value)")
        return tensors, lowered

    def _state_tensor(self, index: int, key: tuple[str, str], node: Node, tensors) -> Tensor:
        """The variable's state tensor, typed by its first use (the shape rules
        check every other use against it)."""
        if node.op == Op.READ_VARIABLE:
            like = tensors[node.outputs[0]] if node.outputs and 0 <= node.outputs[0] < len(tensors) else None
        else:
            like = tensors[node.inputs[1]] if len(node.inputs) > 1 and 0 <= node.inputs[1] < len(tensors) else None
        if like is None:
            raise ModelError(f"{self.name}: layer {node.index} ({node.op.value}) has no value tensor")
        where = f"variable {key[1]!r} (layer {node.index}, {node.op.value})"
        if like.dtype not in VARIABLE_TYPES:
            hint = (" (convert with converter._experimental_variable_quantization = True to quantize "
                    "the variables too)" if like.dtype.startswith("float") else "")
            raise UnsupportedOpError(f"{self.name}: {where} is {like.dtype}; tinycomp supports "
                                     f"{' and '.join(VARIABLE_TYPES)} variables{hint}")
        init = self.inits.get(key)
        if init is not None:
            if (init.dtype, tuple(init.shape), init.quant) != (like.dtype, tuple(like.shape), like.quant):
                raise ModelError(f"{self.name}: CALL_ONCE assigns {where} {init.dtype} {list(init.shape)} "
                                 f"{_quant_text(init)}, but the model uses it as {like.dtype} "
                                 f"{list(like.shape)} {_quant_text(like)}")
            values = init.data
        else:
            # TFLM's memset of the zero point: every byte its low byte
            zp = like.zero_point if like.quant is not None and like.quant.zero_point else 0
            values = np.full(like.nbytes, zp & 0xFF, np.uint8).view(like.dtype).reshape(like.shape)
        label = "/".join(part for part in key if part) or f"variable{index}"  # container/shared_name
        return Tensor(index, label, tuple(like.shape), like.dtype, like.quant,
                      None, variable=True, init=np.array(values, dtype=like.dtype))


def _quant_text(t: Tensor) -> str:
    if t.quant is None:
        return "(not quantized)"
    return f"(scale {list(t.quant.scale)}, zero point {list(t.quant.zero_point)})"
