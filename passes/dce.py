"""dce: remove nodes whose results nothing uses.

A node is live when one of its outputs is a graph output (parameter updates included: they
are outputs aliased to inputs) or feeds a live node, or when its op is 'stateful' (it has an
effect beyond its results, so it is never removed). 'random' ops are pure functions of their
seed and counter, so an unused one is dead like any other. Graph inputs stay even when
unused: they are the function's signature, and callers pass them.

Stats: removed_nodes.
"""
from __future__ import annotations

from ir import Graph
from ir.opdef import get_op

from .registry import PassContext, function_pass


def live_nodes(graph: Graph) -> list:
    """One bool per node of `graph`: does the node have to stay?"""
    live_values = {id(v) for v in graph.outputs}
    keep = [False] * len(graph.nodes)
    for i in range(len(graph.nodes) - 1, -1, -1):
        node = graph.nodes[i]
        if get_op(node.op).purity == "stateful" or \
                any(id(v) in live_values for v in node.outputs):
            keep[i] = True
            live_values.update(id(v) for v in node.inputs)
    return keep


@function_pass("dce", "remove nodes whose results are unused (keeps outputs and stateful ops)")
def eliminate_dead_code(graph: Graph, ctx: PassContext | None = None):
    """Return (graph without dead nodes, stats). Never mutates `graph`."""
    keep = live_nodes(graph)
    out = graph.clone()     # clone keeps node order, so `keep` indexes its nodes too
    out.nodes = [node for node, k in zip(out.nodes, keep) if k]
    return out, {"removed_nodes": keep.count(False)}
