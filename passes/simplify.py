"""simplify: algebraic simplification by a table of named rules, run to a fixed point.

Each sweep walks the nodes in order and offers every node to the rules for its op
(passes/simplify_rules.py, where each rule says why it is exact). The first rule that returns
a replacement wins: the node's result is replaced by it (uses are renamed as the sweep goes
on, graph outputs at the end) and the node is dropped; nodes a rule emits take its place.
Sweeps repeat until one changes nothing, at most `max-iterations` times. Rules that are wrong
for some IEEE values (x*0 -> 0, x-x -> 0, x+0 -> x, reassociation) run only with
`fast-math=true`. Nodes that a rewrite leaves unused stay for `dce`.

Stats: one hit count per rule (by rule name, fast-math rules included so a report shows
they did not fire), `rewrites` (all hits) and `iterations` (sweeps run).
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

import numpy as np

from ir import Graph
from ir.builder import make_node
from ir.graph import Value
from ir.location import UNKNOWN

from .registry import PassContext, PassOption, function_pass
from .simplify_rules import RULES


class Rewriter:
    """What rules use: emit nodes before the current one, read uniform constant values."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list = []
        self.earlier_relu: dict = {}          # id(x) -> relu(x) already emitted this sweep

    def emit(self, op: str, inputs, attrs: Optional[dict] = None, node=None,
             keep_name: bool = True) -> Value:
        """A new node placed before `node`; it inherits `node`'s location and, when it
        replaces `node`'s result (keep_name), its result name."""
        names = [node.outputs[0].name] if keep_name and node is not None else None
        new = make_node(self.graph, op, list(inputs), attrs or {}, node.loc if node else UNKNOWN,
                        names=names, append=False)
        self.nodes.append(new)
        return new.outputs[0]

    @staticmethod
    def uniform(v: Value):
        """The value of every element of `v` when it is a constant (seen through broadcast
        and reshape) whose elements all have the same bits; else None."""
        seen = 0
        while v.producer is not None and v.producer.op in ("broadcast", "reshape") and seen < 8:
            v = v.producer.inputs[0]
            seen += 1
        p = v.producer
        if p is None or p.op != "constant":
            return None
        arr = p.attrs["value"]
        if arr.size == 0:
            return None
        flat = np.ascontiguousarray(arr).reshape(-1)
        raw = flat.view(np.uint8).reshape(flat.size, -1)
        return flat[0] if bool((raw == raw[0]).all()) else None


def _sweep(graph: Graph, rules_by_op: dict, hits: Counter) -> bool:
    rw = Rewriter(graph)
    subst: dict = {}
    changed = False
    for node in graph.nodes:
        if any(id(v) in subst for v in node.inputs):
            node.inputs = [subst.get(id(v), v) for v in node.inputs]
        replacement = None
        if len(node.outputs) == 1:
            for r in rules_by_op.get(node.op, ()):
                start = len(rw.nodes)
                got = r.fn(rw, node)
                if got is not None and got is not node.output and got.type == node.output.type:
                    replacement = got
                    hits[r.name] += 1
                    break
                del rw.nodes[start:]                 # a rule that gave up leaves nothing behind
        if replacement is None:
            rw.nodes.append(node)
            if node.op == "relu":
                rw.earlier_relu.setdefault(id(node.inputs[0]), node.output)
            continue
        subst[id(node.output)] = replacement
        changed = True
    graph.nodes = rw.nodes
    graph.outputs = [subst.get(id(v), v) for v in graph.outputs]
    return changed


@function_pass("simplify", "algebraic simplification: named rewrite rules to a fixed point "
               "(IEEE-exact unless fast-math)",
               options=[PassOption("fast-math", bool, False,
                                   "also apply rules wrong for some floats (x*0 -> 0, x-x -> 0, "
                                   "x+0 -> x, reassociation)"),
                        PassOption("max-iterations", int, 8, "sweeps before giving up on a "
                                   "fixed point")])
def simplify(graph: Graph, ctx: PassContext | None = None, fast_math: bool = False,
             max_iterations: int = 8):
    out = graph.clone()
    rules_by_op: dict = {}
    for r in RULES:
        if r.fast_math and not fast_math:
            continue
        for op in r.ops:
            rules_by_op.setdefault(op, []).append(r)
    hits: Counter = Counter()
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        if not _sweep(out, rules_by_op, hits):
            break
    else:
        if ctx is not None:
            ctx.remark(f"simplify stopped after {max_iterations} sweeps without a fixed point")
    stats = {r.name: hits[r.name] for r in RULES}
    stats["rewrites"] = sum(hits.values())
    stats["iterations"] = iterations
    return out, stats
