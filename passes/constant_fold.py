"""constant-fold: compute nodes whose operands are all known at compile time.

A node folds when its op is pure, every operand is a `constant` (or, with `freeze=true`, a
param/state input with an initializer that no output updates), and its results have static
shapes. It is evaluated with the op's numpy reference in the graph's own dtypes (f32 stays
f32: the folded value is bit for bit what the runtime would compute with the reference), and
replaced by `constant` nodes with the same names and location.

What never folds:
- random ops (their value is a function of seed and counter, which a training step varies),
  stateful ops, and fused groups containing a random op;
- results larger than `max-elements` unless they are no larger than the operands they come
  from (a frozen weight transposed is fine; a scalar broadcast to [4096,4096] is not: fusion
  makes that broadcast free instead, so materialising it would only cost memory);
- `broadcast` that grows its operand (same reason; its value still feeds later folds);
- a node whose reference raises (e.g. a gather index out of range): the error stays a
  runtime error of the compiled graph, noted as a remark.
Parameters stay runtime inputs unless the graph is frozen for inference (`freeze=true`), and
even then a parameter that an output updates in place is never frozen.

Stats: folded_nodes, folded_bytes (bytes of the new constants), skipped_large, fold_errors.
"""
from __future__ import annotations

import numpy as np

from ir import Graph, GraphcError
from ir import dtypes as dt
from ir.graph import Node, Value
from ir.interpreter import resolve_attrs
from ir.opdef import get_op
from ir.symbolic import SymDim, evaluate

from .registry import PassContext, PassOption, function_pass


def contains_random(node: Node) -> bool:
    """Is `node` a random or stateful op, or a fused group containing one?"""
    if get_op(node.op).purity != "pure":
        return True
    body = node.attrs.get("body") if node.op == "fused" else None
    return body is not None and any(contains_random(n) for n in body.nodes)


def _has_symbolic_attr(attrs: dict) -> bool:
    for value in attrs.values():
        items = value if isinstance(value, tuple) else (value,)
        if any(isinstance(x, SymDim) for x in items):
            return True
    return False


def _static_size(v: Value):
    if not v.type.is_static:
        return None
    return int(np.prod([evaluate(d, {}) for d in v.type.shape], dtype=np.int64))


@function_pass("constant-fold", "evaluate nodes whose operands are constants (never random "
               "ops; params only when frozen)",
               options=[PassOption("freeze", bool, False,
                                   "treat params/state with initial values as constants "
                                   "(inference graphs)"),
                        PassOption("max-elements", int, 65536,
                                   "largest result folded when it is bigger than its operands")])
def fold_constants(graph: Graph, ctx: PassContext | None = None, freeze: bool = False,
                   max_elements: int = 65536):
    out = graph.clone()
    known: dict = {}                       # id(Value) -> numpy array
    if freeze:
        updated = set(out.aliases.values())
        for v in out.inputs:
            if v.role in ("param", "state") and v.name in out.initializers \
                    and v.name not in updated:
                known[id(v)] = np.asarray(out.initializers[v.name])
    stats = {"folded_nodes": 0, "folded_bytes": 0, "skipped_large": 0, "fold_errors": 0}
    new_nodes = []
    for node in out.nodes:
        if node.op == "constant":
            known[id(node.output)] = node.attrs["value"]
            new_nodes.append(node)
            continue
        folded = _try_fold(node, known, max_elements, stats, ctx)
        if folded is None:
            new_nodes.append(node)
            continue
        for value, arr in zip(node.outputs, folded):
            const = Node("constant", [], {"value": arr}, [value], node.loc)
            value.producer, value.index = const, 0
            known[id(value)] = arr
            new_nodes.append(const)
            stats["folded_bytes"] += arr.nbytes
        stats["folded_nodes"] += 1
    out.nodes = new_nodes
    return out, stats


def _try_fold(node: Node, known: dict, max_elements: int, stats: dict, ctx):
    if contains_random(node) or not all(id(v) in known for v in node.inputs):
        return None
    sizes = [_static_size(v) for v in node.outputs]
    if any(s is None for s in sizes):
        return None
    in_size = sum(int(np.asarray(known[id(v)]).size) for v in node.inputs)
    out_size = sum(sizes)
    if node.op == "broadcast" and out_size > in_size:
        # kept as a node (fusion makes it free), but its value is known to later folds
        if out_size > max_elements:
            stats["skipped_large"] += 1
        elif not _has_symbolic_attr(node.attrs):
            value = get_op("broadcast").reference([known[id(node.inputs[0])]], node.attrs)
            known[id(node.outputs[0])] = value
        return None
    if out_size > max_elements and out_size > in_size:
        stats["skipped_large"] += 1
        return None
    if _has_symbolic_attr(node.attrs):
        return None                       # e.g. dim_value(N): known only at call time
    opdef = get_op(node.op)
    try:
        attrs = resolve_attrs(opdef, node.attrs, {}, dt.f32)
        with np.errstate(all="ignore"):
            result = opdef.reference([known[id(v)] for v in node.inputs], attrs)
    except GraphcError as e:
        stats["fold_errors"] += 1
        if ctx is not None:
            ctx.remark(f"not folded: {node.op} %{node.outputs[0].name}: {e.message}")
        return None
    results = result if isinstance(result, (tuple, list)) else (result,)
    arrays = []
    for value, arr in zip(node.outputs, results):
        arr = np.array(arr, dtype=value.type.dtype.np_dtype)     # a fresh, owned copy
        arr.flags.writeable = False
        arrays.append(arr)
    return arrays
