"""cse: common-subexpression elimination.

Two nodes are the same expression when they apply the same op, with bit-identical
attributes (floats by bits, arrays by bytes, nested graphs structurally), to the same operand
values. The later one is removed and its results renamed to the earlier one's. Only pure
nodes merge: random ops (two dropout masks with equal seeds still come from separate calls
in the user's program, and a fused group containing a random op) and stateful ops never do.
Operand order matters (no commutativity): `add(a, b)` and `add(b, a)` can differ in which
NaN payload they return, and CSE must never change a bit.

Stats: merged_nodes.
"""
from __future__ import annotations

from ir import Graph
from ir.equality import attr_key

from .constant_fold import contains_random
from .registry import PassContext, function_pass


def expression_key(node) -> tuple:
    """What makes two nodes the same expression (operands by identity)."""
    attrs = tuple((name, attr_key(node.attrs[name])) for name in sorted(node.attrs))
    return (node.op, tuple(id(v) for v in node.inputs), attrs)


@function_pass("cse", "merge identical pure nodes (never random or stateful ones)")
def eliminate_common_subexpressions(graph: Graph, ctx: PassContext | None = None):
    out = graph.clone()
    seen: dict = {}
    subst: dict = {}
    kept = []
    merged = 0
    for node in out.nodes:
        if any(id(v) in subst for v in node.inputs):
            node.inputs = [subst.get(id(v), v) for v in node.inputs]
        if contains_random(node):
            kept.append(node)
            continue
        key = expression_key(node)
        first = seen.get(key)
        if first is None:
            seen[key] = node
            kept.append(node)
            continue
        for mine, theirs in zip(node.outputs, first.outputs):
            subst[id(mine)] = theirs
        merged += 1
    out.nodes = kept
    out.outputs = [subst.get(id(v), v) for v in out.outputs]
    return out, {"merged_nodes": merged}
