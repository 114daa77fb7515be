"""IR -> C sources: one specialised function per layer, a static arena, a C API."""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ModelError, OutputError, UnsupportedOpError
from ..ir import Graph, Op
from ..passes.analysis import layer_summaries
from ..passes.depthwise_as_conv import depthwise_as_conv
from ..passes.fuse import fuse_residual_adds
from ..passes.memory import ARENA, OUTPUT, STATE, MemoryPlan, busy_at, lifetimes, plan_memory, state_tensors
from .layer import Constant, Layer, c_type
from .render import c_float, render
from .ops.conv import borrow_ram
from .ops.sparse import STORAGE_AIMS
from .table import feature_kernels, kernel_for

# TFLite's TensorType codes, which the firmware's DESCRIBE reply carries
TYPE_CODES = {"float32": 0, "int32": 2, "uint8": 3, "int16": 7, "int8": 9}
SOURCES = ("tinycomp_model.h", "tinycomp_model.c", "tinycomp_weights.c")


@dataclass(frozen=True)
class GeneratedModel:
    files: dict[str, str]  # file name -> C text
    graph: Graph  # after the passes (fusion): what the code computes
    plan: MemoryPlan
    weights_bytes: int
    macs: int
    layers: tuple[dict, ...]

    @property
    def state_bytes(self) -> int:
        """Static state outside the arena, kept between inferences."""
        return sum(self.graph.tensor(t).nbytes for t in state_tensors(self.graph))

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    def write(self, src_dir: Path) -> Path:
        try:
            src_dir.mkdir(parents=True, exist_ok=True)
            for name, text in self.files.items():
                (src_dir / name).write_text(text)
        except OSError as exc:
            raise OutputError(f"cannot write generated sources to {src_dir}: {exc.strerror}") from None
        return src_dir


def _check_aliases(graph: Graph) -> None:
    for node in graph.nodes:
        if node.op.is_alias:
            src, dst = graph.tensor(node.inputs[0]), graph.tensor(node.outputs[0])
            if src.size != dst.size:
                raise ModelError(f"{node.op.value} at layer {node.index} ({node.name!r}) turns "
                                 f"{src.size} values into {dst.size}")
            if src.dtype != dst.dtype:  # an alias shares the bytes: TFLM checks the byte sizes
                raise ModelError(f"{node.op.value} at layer {node.index} ({node.name!r}) turns "
                                 f"{src.dtype} into {dst.dtype}")
            if (src.scale, src.zero_point) != (dst.scale, dst.zero_point):
                raise UnsupportedOpError(f"{node.op.value} at layer {node.index} ({node.name!r}) "
                                         "changes the quantization; tinycomp needs it unchanged")


_UNSAFE_C = re.compile(r"[^\x20-\x7e\n]|\?\?|\\\n")


def _check_sources(files: dict[str, str]) -> None:
    """Defence in depth behind render.c_comment/c_ident: generated C is printable
    ASCII with no trigraph and no backslash-newline splice, so no text from a
    model file can end a comment or a string early."""
    for name, text in files.items():
        bad = _UNSAFE_C.search(text)
        if bad:
            line = text.count("\n", 0, bad.start()) + 1
            raise AssertionError(f"generated {name} line {line} holds {bad.group()!r}: "
                                 "a template let unescaped text through")


def _context(layer: Layer, features: frozenset[str]) -> dict:
    """The layer's kernel context: the first feature row that takes it, else
    the plain row; a context may pick a variant of its template."""
    for kernel in feature_kernels(layer, features):
        context = kernel.context(layer)
        if context is not None:
            context = dict(context)
            context.setdefault("template", kernel.template)
            return context
        layer.constants.clear()  # a row that declines leaves nothing behind
    kernel = kernel_for(layer)
    context = dict(kernel.context(layer))
    context.setdefault("template", kernel.template)
    return context


def _contexts(graph: Graph, storage: str, features: frozenset[str]) -> tuple[list[Layer], list[dict]]:
    layers, contexts = [], []
    for node in graph.nodes:
        if node.op.is_alias:
            continue
        layer = Layer(graph, node, storage=storage, features=features)
        context = _context(layer, features)
        layers.append(layer)
        contexts.append(context)
    return layers, contexts


def _plan(graph: Graph, layers: list[Layer], contexts: list[dict]) -> MemoryPlan:
    return plan_memory(graph, scratch_bytes={l.node.index: c.get("scratch_bytes", 0) for l, c in zip(layers, contexts)},
                       inplace=_inplace_lags(layers, contexts))


def _spend_spare_ram(graph: Graph, layers: list[Layer], contexts: list[dict], arena: int) -> None:
    """Give each layer whose kernel can trade scratch for speed (Layer.spare_ram)
    the most it can have with the arena staying `arena` bytes, in graph order:
    speed from RAM the model already needs, never a larger arena."""
    twins = _twins(graph, layers)
    for i, layer in enumerate(layers):
        for level in (2, 1):
            faster = Layer(graph, layer.node, storage=layer.storage, features=layer.features, spare_ram=level)
            context = _context(faster, layer.features)
            if context.get("scratch_bytes", 0) <= contexts[i].get("scratch_bytes", 0):
                continue  # the kernel has no use for more
            kept = layers[i], contexts[i]
            layers[i], contexts[i] = faster, context
            if _plan(graph, layers, contexts).arena_bytes <= arena:
                break
            layers[i], contexts[i] = kept
        g = contexts[i].get("g")
        # paired weights (conv.pack_pairs) step at 13 instructions where
        # unpacked ones take 12, unpaired packed ones 15: unpacking a part
        # (which unpairs the rest) loses unless nearly all fit
        if (g and g.get("xq_off") is not None and not g["wexp"] and not g["paired"]
                and layer.node.index not in twins):
            _spend_on_some_weights(graph, layers, contexts, arena, i, g)


def _twins(graph: Graph, layers: list[Layer]) -> set[int]:
    """Nodes with another node of the same op, options and tensor shapes:
    their functions may be one (_share) unless their RAM grants differ, and
    a partial weights grant (the block count the arena leaves each) would
    make every one its own: KWS's four pointwise convolutions cost 10 KB of
    code more for 2% fewer instructions."""
    def key(node):
        opts = sorted((k, repr(v)) for k, v in node.options.items() if k != "residual_add")
        shapes = [tuple(graph.tensor(t).shape) if t >= 0 else None for t in node.inputs + node.outputs]
        return repr((node.op, opts, shapes, "residual_add" in node.options))
    count: dict[str, int] = {}
    for layer in layers:
        count[key(layer.node)] = count.get(key(layer.node), 0) + 1
    return {layer.node.index for layer in layers if count[key(layer.node)] > 1}


def _spend_on_some_weights(graph: Graph, layers: list[Layer], contexts: list[dict], arena: int,
                           i: int, g: dict) -> None:
    """Where all of a convolution's unpacked weights do not fit, the most
    whole blocks of them that do (conv.reserve_wexp: Layer.wexp_units),
    found by bisection on the block count."""
    layer, block = layers[i], g["block"]
    lo, hi = 0, g["nfull"] - 1  # blocks known to fit, blocks that might
    best = None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        trial = Layer(graph, layer.node, storage=layer.storage, features=layer.features,
                      spare_ram=2, wexp_units=mid * block)
        context = _context(trial, layer.features)
        kept = layers[i], contexts[i]
        layers[i], contexts[i] = trial, context
        fits = context.get("g", {}).get("wexp") and _plan(graph, layers, contexts).arena_bytes <= arena
        layers[i], contexts[i] = kept
        if fits:
            lo, best = mid, (trial, context)
        else:
            hi = mid - 1
    if best:
        layers[i], contexts[i] = best


def _borrow_ram(graph: Graph, plan: MemoryPlan, layers: list[Layer], contexts: list[dict]) -> None:
    """After the final plan: let the blocked convolutions without a RAM grant
    unpack into arena bytes that hold nothing while they run (conv.py:
    borrow_ram): their output's not-yet-written tail, or the consumed head
    of an input that dies with them. Neither changes the plan."""
    find, _, step_of, _, last = lifetimes(graph)
    for layer, ctx in zip(layers, contexts):
        if ctx.get("template") != "kernels/conv_2d_fast.c.j2":
            continue
        busy = busy_at(graph, plan, layer.node.index, ctx.get("scratch_bytes", 0))

        def free_of(owner):
            return lambda a, b: all(e <= a or b <= s for s, e, k in busy if k != owner)
        out = find(layer.node.outputs[0])
        ins = [find(t) for t in layer.node.inputs if t >= 0 and not graph.tensor(t).is_const]
        tail = head = None
        if plan.places[out][0] == ARENA:
            tail = (plan.places[out][1], free_of(out))
        # in0 read by no later layer, and not also this layer's other input
        if (ins and plan.places[ins[0]][0] == ARENA and last[ins[0]] == step_of[layer.node.index]
                and ins.count(ins[0]) == 1):
            head = (plan.places[ins[0]][1], free_of(ins[0]))
        borrow_ram(layer, ctx, tail, head)


def _pointer(plan: MemoryPlan, graph: Graph, tensor: int, const: bool) -> str:
    """C expression of a tensor's buffer, typed: the caller's output buffer
    or a place in the arena."""
    region, offset = plan.places[tensor]
    if region == OUTPUT:
        return output_names(graph)[offset]
    if region == STATE:
        return f"tc_state{offset}"
    assert region == ARENA
    ctype = c_type(graph.tensor(tensor).dtype)
    return f"({'const ' if const else ''}{ctype} *)(tc_arena + {offset})"


def output_names(graph: Graph) -> list[str]:
    """The C API's output parameters: `output`, or `output0`, `output1`, ..."""
    n = len(graph.outputs)
    return ["output"] if n == 1 else [f"output{k}" for k in range(n)]


def input_names(graph: Graph) -> list[str]:
    n = len(graph.inputs)
    return ["input"] if n == 1 else [f"input{k}" for k in range(n)]


def _layer_code(graph: Graph, plan: MemoryPlan, layer: Layer, context: dict) -> tuple[str, str]:
    """(function definition, call statement) of one layer.

    A context that sets 'shared_args' has its layer's constant arrays
    passed to its main function as pointer parameters (only where no helper
    uses them), so that layers of the same shape render the same body and
    share one function (see _share). Opt-in: an array that only one #if
    branch uses is then linked whatever the branch, and a kernel may prefer
    link-time addresses."""
    ins = [t for t in layer.node.inputs if t >= 0 and not graph.tensor(t).is_const]
    outs = layer.node.outputs
    names = ["out"] if len(outs) == 1 else [f"out{k}" for k in range(len(outs))]  # SPLIT: out0, out1, ...
    # a state tensor is an input its layer updates in place: not const
    params = ([f"{'' if graph.tensor(t).variable else 'const '}{c_type(graph.tensor(t).dtype)} *in{i}"
               for i, t in enumerate(ins)]
              + [f"{c_type(graph.tensor(t).dtype)} *{name}" for t, name in zip(outs, names)])
    args = [_pointer(plan, graph, t, not graph.tensor(t).variable) for t in ins] + [_pointer(plan, graph, t, False) for t in outs]
    if context.get("scratch_bytes", 0) > 0:
        params.append("int8_t *scratch")
        args.append(f"(tc_arena + {plan.scratch[layer.node.index]})")

    def signature(ps: list[str]) -> str:
        return f"static TC_LAYER_FN void {layer.fn}({', '.join(ps)})"

    body = render(context["template"], signature=signature(params), fn=layer.fn, **context)
    head, sig, tail = body.partition(signature(params))
    prefix = f"tinycomp_w_l{layer.node.index}_"
    used = [k for k in layer.constants if re.search(rf"\b{k.name}\b", tail)]
    if context.get("shared_args") and sig and used and not any(re.search(rf"\b{k.name}\b", head) for k in used):
        for k in used:
            param = "k_" + k.name[len(prefix):] if k.name.startswith(prefix) else f"k{len(params)}"
            tail = re.sub(rf"\b{k.name}\b", param, tail)
            params.append(f"const {k.ctype} *{param}")
            args.append(k.name)
        body = head + signature(params) + tail
    return body, f"{layer.fn}({', '.join(args)});"


def _own_names(layer: Layer) -> re.Pattern:
    """The layer's function name and its helpers' names (tc_layerN_window,
    ...), not tc_layerNM: what differs between two layers' equal bodies."""
    return re.compile(rf"\b{layer.fn}(?![0-9])")


def _share(layers: list[Layer], code: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Emit each distinct function body once: a layer whose body equals an
    earlier one's (up to the function name) calls the earlier function.
    Returns (function definitions, call statements)."""
    functions, calls, first = [], [], {}
    for layer, (body, call) in zip(layers, code):
        own = _own_names(layer)
        key = hashlib.sha256(own.sub("@", body).encode()).hexdigest()
        if key not in first:
            first[key] = layer.fn
            functions.append(body)
        calls.append(own.sub(first[key], call, count=1))
    return functions, calls


# A bias array narrowed to int16 (ops/common.bias_const) that is passed to a
# shared function as this parameter: the only type difference _widen undoes
_NARROW_PARAM = re.compile(r"const int16_t \*(k_bias(?:_folded)?)\b")


def _widen(graph: Graph, plan: MemoryPlan, layers: list[Layer], contexts: list[dict],
           code: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Layers whose bodies differ only in an int16 vs int32 bias parameter
    would each get their own function: a function costs far more flash than
    the int16 bias saves, so such layers take their biases as int32 again
    (re-rendered) and share one function."""
    def erased(layer, body, widen):
        body = _own_names(layer).sub("@", body)
        return _NARROW_PARAM.sub(r"const int32_t *\1", body) if widen else body

    groups: dict[str, list[int]] = {}
    for i, (layer, (body, _)) in enumerate(zip(layers, code)):
        groups.setdefault(erased(layer, body, True), []).append(i)
    code = list(code)
    for members in groups.values():
        if len({erased(layers[i], code[i][0], False) for i in members}) < 2:
            continue  # one body already (or one layer)
        for i in members:
            layer = layers[i]
            narrow = set(_NARROW_PARAM.findall(code[i][0]))
            if not narrow:
                continue
            prefix = f"tinycomp_w_l{layer.node.index}_"
            layer.constants[:] = [Constant(k.name, "int32_t", k.values.astype("int32"))
                                  if k.ctype == "int16_t" and k.name.startswith(prefix)
                                  and "k_" + k.name[len(prefix):] in narrow else k
                                  for k in layer.constants]
            code[i] = _layer_code(graph, plan, layer, contexts[i])
    return code


# A blocked GEMM's per-tensor requantization pair, rendered as literals
# (conv_2d_gemm.c.j2: qmN, qsN): the only difference between the bodies of,
# e.g., an autoencoder's same-shape FULLY_CONNECTED layers
_REQUANT_LITERAL = re.compile(r"\b(const int32_t qm\d+|const int qs\d+) = -?\d+;")


def _share_requant(graph: Graph, plan: MemoryPlan, layers: list[Layer], contexts: list[dict],
                   code: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Layers whose bodies differ only in those literals take the pair from
    a two-word array instead (a load each per block, and a shift by register)
    and so share one function: each copy costs ~500 B of flash."""
    groups: dict[str, list[int]] = {}
    for i, (layer, (body, _)) in enumerate(zip(layers, code)):
        g = contexts[i].get("g")
        if contexts[i].get("shared_args") and g and _REQUANT_LITERAL.search(body):
            erased = _own_names(layer).sub("@", body)
            groups.setdefault(_REQUANT_LITERAL.sub(r"\1 = @;", erased), []).append(i)
    code = list(code)
    for members in groups.values():
        if len(members) < 2:
            continue
        for i in members:
            g = contexts[i]["g"]
            pair = layers[i].const("requant", [int(g["mult"]("0")), int(g["shift"]("0"))], "int32_t")
            g["mult"], g["shift"] = (lambda c, a=pair: f"{a}[0]"), (lambda c, a=pair: f"{a}[1]")
            code[i] = _layer_code(graph, plan, layers[i], contexts[i])
    return code


def _dedupe(constants: list[Constant], code: list[tuple[str, str]]
            ) -> tuple[list[Constant], list[tuple[str, str]]]:
    """Identical constant arrays (same C type and values: e.g. the tables of
    two ADDs whose inputs are quantized alike) are stored once; the code of
    later layers names the first copy. Before _share, so bodies that become
    equal share one function too."""
    first, alias, kept = {}, {}, []
    for k in constants:
        key = (k.ctype, k.values.size, k.values.tobytes())
        if key in first:
            alias[k.name] = first[key]
        else:
            first[key] = k.name
            kept.append(k)
    if not alias:
        return constants, code
    names = re.compile(r"\b(" + "|".join(map(re.escape, alias)) + r")\b")
    rename = lambda text: names.sub(lambda m: alias[m.group(1)], text)  # noqa: E731
    return kept, [(rename(body), rename(call)) for body, call in code]


def _inplace_lags(layers: list[Layer], contexts: list[dict]) -> dict[int, dict[int, int]]:
    """node -> {k: lag in bytes} for the planner: out may start that many bytes
    below inK. 'inplace_lag' (in0) or 'inplace' (in0, lag 0), and
    'inplace_lags' ({k: lag} for other inputs)."""
    lags = {}
    for layer, context in zip(layers, contexts):
        own = {int(k): int(v) for k, v in context.get("inplace_lags", {}).items()}
        if context.get("inplace_lag") is not None:
            own[0] = int(context["inplace_lag"])
        elif context.get("inplace"):
            own[0] = 0
        if own:
            lags[layer.node.index] = own
    return lags


def _fusable(graph: Graph, conv, add, storage: str = "balanced",
             features: frozenset[str] = frozenset()) -> bool:
    """A CONV_2D -> ADD pair whose kernels can run as one: the dense blocked
    convolution and the same-shape ADD with its exact shortcuts (contexts
    computed on throwaway layers, with the storage the build will use)."""
    try:
        conv_layer, add_layer = Layer(graph, conv, storage=storage), Layer(graph, add, storage=storage)
        # Where feature kernels take the conv (Helium: the MVE GEMM, about 5x
        # fewer instructions than the fused DSP kernel on ResNet-8's blocks),
        # fuse only if they take the ADD too (mve.py: _conv_2d_add_mve)
        conv_rows = [k for k in feature_kernels(conv_layer, features)
                     if k.context(Layer(graph, conv, storage=storage)) is not None]
        if conv_rows:
            return any(k.context(Layer(graph, add, storage=storage)) is not None
                       for k in feature_kernels(add_layer, features))
        c = kernel_for(conv_layer).context(conv_layer)
        a = kernel_for(add_layer).context(add_layer)
    except UnsupportedOpError:
        return False
    return c.get("template") == "kernels/conv_2d_fast.c.j2" and a.get("template") == "kernels/add_fast.c.j2"


def _fuse(graph: Graph, storage: str = "balanced", features: frozenset[str] = frozenset()) -> Graph:
    return fuse_residual_adds(graph, functools.partial(_fusable, storage=storage, features=features))


def passes(storage: str = "balanced", features: frozenset[str] = frozenset()) -> tuple:
    """Graph -> Graph passes before code generation, in order (the memory plan
    runs after the kernel contexts, which declare scratch and in-place lags).
    Fusion comes after the alias check: a fused pair must see the graph's own
    tensors, and the storage aim and the core's features, which decide the
    conv's kernel."""
    return (depthwise_as_conv, functools.partial(_fuse, storage=storage, features=frozenset(features)))



def _summaries(graph: Graph) -> list[dict]:
    """One row per function called. A fused CONV_2D+ADD is one row (the
    profiler counts one function): op "CONV_2D+ADD", the conv's index and
    name, the ADD's in "fused"."""
    rows = layer_summaries(graph)
    for row, node in zip(rows, graph.nodes):
        if node.options.get("depthwise_as_conv"):  # the model's op, and the kernel it runs
            row["op"], row["kernel"] = Op.DEPTHWISE_CONV_2D.value, Op.CONV_2D.value
        fused = node.options.get("residual_add")
        if fused:
            add = fused["add"]
            row["op"] = f"{node.op.value}+{add.op.value}"
            row["fused"] = [{"index": add.index, "name": add.name, "op": add.op.value}]
    return rows


def _io(graph: Graph, plan: MemoryPlan, role: str) -> list[dict]:
    """What the C API's templates say about each model input or output, in
    the model's order."""
    indices = graph.inputs if role == "input" else graph.outputs
    names = input_names(graph) if role == "input" else output_names(graph)
    rows = []
    for k, (index, param) in enumerate(zip(indices, names)):
        t = graph.tensor(index)
        quantized = t.quant is not None and not t.quant.per_channel and t.dtype != "float32"
        rows.append({
            "param": param, "name": t.name, "dtype": t.dtype, "ctype": c_type(t.dtype),
            "size": t.size, "bytes": t.nbytes, "shape": list(t.shape), "quantized": quantized,
            "scale": t.scale if quantized else None,
            "zero_point": t.zero_point if quantized else None,
            # inputs live in the arena; the C API offers their place there
            "offset": plan.places[index][1] if role == "input" else None,
            "buffer_fn": ("tinycomp_input_buffer" if len(indices) == 1
                          else f"tinycomp_input{k}_buffer"),
        })
    return rows


def _io_lists(inputs: list[dict], outputs: list[dict]) -> list[tuple[str, list]]:
    """(macro name, values) of the header's per-input / per-output lists."""
    lists = []
    for role, rows in (("INPUT", inputs), ("OUTPUT", outputs)):
        lists += [
            (f"{role}_TYPE_CODES", [TYPE_CODES[r["dtype"]] for r in rows]),
            (f"{role}_RANKS", [len(r["shape"]) for r in rows]),
            (f"{role}_DIMS", [d for r in rows for d in r["shape"]] or [0]),
            (f"{role}_SCALES", [c_float(r["scale"]) if r["quantized"] else "0.0f" for r in rows]),
            (f"{role}_ZERO_POINTS", [r["zero_point"] if r["quantized"] else 0 for r in rows]),
        ]
    return lists


def _check_io(graph: Graph) -> None:
    """Every model output is its own tensor, computed by the model: the C API
    gives each its own buffer."""
    from ..passes.aliases import storage_roots
    root = storage_roots(graph)
    find = lambda t: root.get(t, t)  # noqa: E731
    ins = {find(t) for t in graph.inputs}
    seen = {}
    for k, t in enumerate(graph.outputs):
        r = find(t)
        if graph.tensor(r).is_const:
            raise UnsupportedOpError(f"{graph.name}: output {k} ({graph.tensor(t).name!r}) is a constant "
                                     "(or folds to one at build time); tinycomp needs every output computed")
        if r in ins:
            raise UnsupportedOpError(f"{graph.name}: output {k} ({graph.tensor(t).name!r}) is a model "
                                     "input passed through unchanged; tinycomp needs every output computed")
        if r in seen:
            raise UnsupportedOpError(f"{graph.name}: outputs {seen[r]} and {k} are the same values "
                                     f"({graph.tensor(t).name!r}); tinycomp needs distinct outputs")
        seen[r] = k


def _states(graph: Graph, plan: MemoryPlan, constants: list[Constant]) -> list[dict]:
    """What the C API's templates say about each state buffer. One whose
    start value is not all zeros (a resource variable's CALL_ONCE value, or
    TFLM's zero-point fill) gets that value as a constant array, which
    tinycomp_reset_state() copies in (and the first invoke, through it); an
    int8 variable tensor (an LSTM's hidden state) a fill byte, its zero point."""
    rows = []
    for k, t in enumerate(state_tensors(graph)):
        tensor = graph.tensor(t)
        ctype = c_type(tensor.dtype)
        init = None
        if tensor.init is not None and np.any(tensor.init):
            init = f"tinycomp_w_state{k}_init"
            constants.append(Constant(init, ctype, np.asarray(tensor.init, dtype=tensor.dtype).reshape(-1)))
        # without one, TFLM fills a variable tensor with zeros, an int8 one with
        # its zero point (MicroGraph::ResetVariableTensors)
        fill = tensor.zero_point & 0xFF if tensor.dtype == "int8" and tensor.init is None else 0
        rows.append({"name": tensor.name, "ctype": ctype, "size": tensor.size, "bytes": tensor.nbytes,
                     "var": _pointer(plan, graph, t, False), "init": init, "fill": fill})
    return rows


def generate(graph: Graph, storage: str = "balanced",
             features: frozenset[str] = frozenset()) -> GeneratedModel:
    """The C library for `graph`, in memory; .write(dir) puts it on disk.
    storage: build --optimize, the weights' storage aim (ops/sparse.py).
    features: the target core's (Board.features): with "mve" the Helium
    kernels are chosen where they apply; the default C runs on any core."""
    if storage not in STORAGE_AIMS:
        raise ValueError(f"storage must be one of {STORAGE_AIMS}, not {storage!r}")
    _check_aliases(graph)
    _check_io(graph)
    for graph_pass in passes(storage, features):
        graph = graph_pass(graph)
    layers, contexts = _contexts(graph, storage, frozenset(features))
    if not layers:
        raise UnsupportedOpError(f"{graph.name}: the model computes nothing (only reshapes)")
    plan = _plan(graph, layers, contexts)
    if storage == "balanced" and "dsp" in features:  # the only builds whose kernels hold back RAM
        _spend_spare_ram(graph, layers, contexts, plan.arena_bytes)
        plan = _plan(graph, layers, contexts)
        _borrow_ram(graph, plan, layers, contexts)
    if plan.arena_bytes >= 1 << 31:  # offsets into the arena are C ints
        raise ModelError(f"{graph.name}: the model needs an arena of {plan.arena_bytes:,} bytes; "
                         "no target holds that")
    code = [_layer_code(graph, plan, l, c) for l, c in zip(layers, contexts)]
    code = _widen(graph, plan, layers, contexts, code)
    code = _share_requant(graph, plan, layers, contexts, code)
    constants, code = _dedupe([k for l in layers for k in l.constants], code)
    functions, calls = _share(layers, code)
    summaries = _summaries(graph)
    inputs, outputs = _io(graph, plan, "input"), _io(graph, plan, "output")
    states = _states(graph, plan, constants)
    context = dict(
        version=__version__, model_hash=graph.model_hash, name=graph.name,
        inputs=inputs, outputs=outputs, io_lists=_io_lists(inputs, outputs),
        arena_bytes=plan.arena_bytes, num_layers=len(layers),
        functions=functions, calls=calls,
        call_names=[f"{l.node.op.value}{'+ADD' if 'residual_add' in l.node.options else ''} {l.node.name}"
                    for l in layers],
        constants=constants, states=states, state_bytes=sum(st["bytes"] for st in states),
        state_init=any(st["init"] or st["fill"] for st in states),
    )
    files = {name: render(f"{name.replace('tinycomp_', '')}.j2", **context) for name in SOURCES}
    _check_sources(files)
    return GeneratedModel(
        files=files,
        graph=graph,
        plan=plan,
        weights_bytes=sum(k.values.nbytes for k in constants),
        macs=sum(s["macs"] for s in summaries),
        layers=tuple(summaries),
    )
