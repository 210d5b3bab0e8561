"""Reverse-mode autodiff as a graph-to-graph transform.

`append_gradients` extends a graph with the backward computation of `loss` with respect to
some of its values; `autodiff` is the pass form (clone, append, add `grad_<input>` outputs).

How it works:
1. Activity analysis. A value is *varying* if it is a float value that depends on a wrt value
   through differentiable ops, and *useful* if the loss depends on it. Only nodes whose output
   is both (and which have such an input) are differentiated, so nothing off the path from wrt
   to loss gets gradient nodes.
2. Every such node must have a VJP rule; if some don't, ONE GradientError lists them all
   (op, node and location) before the graph is touched.
3. Reverse topological order: a node's output adjoint is the sum (with `add`) of the
   contributions from its users, then its rule appends the input contributions. A value with a
   single use gets its one contribution as is: no adds of zeros.
4. Each wrt value gets its summed adjoint, or zeros of its type (a broadcast constant, so
   symbolic shapes work) when the loss does not depend on it.
The backward nodes are ordinary IR, located at the forward node's loc + "/grad", so later
passes optimise them like the forward graph and errors still name the user's line.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ir.errors import GradientError
from ir.graph import Graph, Node, Value
from ir.location import Loc

from .context import GradContext, grad_loc
from .table import NON_DIFFERENTIABLE, VJP_RULES

_BACKWARD_LOC = Loc(None, None, "grad")


def append_gradients(graph: Graph, loss: Value, wrt: Sequence[Value],
                     seed: Optional[Value] = None) -> list[Value]:
    """Append the backward graph of `loss` to `graph`; return d loss / d w for each w in wrt.

    `loss` must be a float scalar unless `seed` (the cotangent of the loss, a value of the
    loss's type already in the graph) is given. `wrt` may hold graph inputs of any role or
    intermediate values; the gradient of an intermediate value treats it as an independent
    variable (its own inputs stay fixed). Mutates `graph` (appends nodes only)."""
    wrt = list(wrt)
    forward = list(graph.nodes)
    graph.reserve_names()     # fresh numbered names must not collide with hand-named values
    _check_request(graph, loss, wrt, seed)

    active = _active_values(forward, loss, wrt)
    path = [n for n in forward if n.op not in NON_DIFFERENTIABLE
            and any(o in active for o in n.outputs) and any(i in active for i in n.inputs)]
    _check_rules(path, loss)

    ctx = GradContext(graph)
    adjoints: dict[Value, list[Value]] = {}
    totals: dict[Value, Value] = {}
    if loss in active:        # else every gradient is zero: no seed needed
        if seed is None:
            ctx.loc = _producer_grad_loc(loss)
            seed = ctx.const(1.0, loss.dtype)
        adjoints[loss] = [seed]

    for node in reversed(path):
        out = node.outputs[0]
        parts = adjoints.pop(out, None)
        if not parts:
            continue        # every user's rule contributed nothing (e.g. through sign)
        ctx.at(node)
        dy = ctx.sum_all(parts)
        totals[out] = dy
        needs = tuple(v in active for v in node.inputs)
        grads = VJP_RULES[node.op](ctx, node, dy, needs)
        _check_rule_result(node, grads)
        for v, g, need in zip(node.inputs, grads, needs):
            if need and g is not None:
                adjoints.setdefault(v, []).append(g)

    result = []
    for w in wrt:
        if w not in totals:
            parts = adjoints.get(w)
            if parts:
                ctx.loc = _contribution_loc(parts[0])
                totals[w] = ctx.sum_all(parts)
            else:
                ctx.loc = _BACKWARD_LOC
                totals[w] = ctx.zeros(w.type)
        result.append(totals[w])
    return result


def autodiff(graph: Graph, loss: str, wrt: Sequence[str]) -> Graph:
    """The pass form: a new graph (the input is not mutated) with an extra output
    `grad_<name>` holding d loss / d input for each input name in `wrt`."""
    out = graph.clone()
    if loss not in out.output_names:
        raise GradientError(f"autodiff: the loss must be an output of graph {graph.name!r}; "
                            f"found {loss!r}, outputs are {out.output_names}")
    names = {v.name: v for v in out.inputs}
    unknown = [n for n in wrt if n not in names]
    if unknown:
        raise GradientError(f"autodiff: wrt names must be inputs of graph {graph.name!r}; "
                            f"found {unknown}, inputs are {list(names)}")
    taken = [f"grad_{n}" for n in wrt if f"grad_{n}" in out.output_names]
    if taken or len(set(wrt)) != len(wrt):
        raise GradientError(f"autodiff: cannot add gradient outputs {taken or list(wrt)}: "
                            "names must be new and wrt must not repeat an input")
    grads = append_gradients(out, out.output(loss), [names[n] for n in wrt])
    for n, g in zip(wrt, grads):
        out.add_output(g, f"grad_{n}")
    return out


# -- analysis ----------------------------------------------------------------------------------
def _active_values(forward: list[Node], loss: Value, wrt: list[Value]) -> set:
    """Float values that depend on a wrt value (through differentiable ops) and that the loss
    depends on."""
    varying = set(wrt)
    for node in forward:
        if node.op in NON_DIFFERENTIABLE:
            continue
        if any(v in varying for v in node.inputs):
            varying.update(o for o in node.outputs if o.dtype.is_float)
    useful = {loss}
    for node in reversed(forward):
        if any(o in useful for o in node.outputs):
            useful.update(node.inputs)
    return varying & useful


def _check_rules(path: list[Node], loss: Value) -> None:
    missing = [n for n in path if n.op not in VJP_RULES]
    multi = [n for n in path if n.op in VJP_RULES and len(n.outputs) != 1]
    if not missing and not multi:
        return
    lines = [f"  {n.op}: {_node_text(n)} at {n.loc.describe()}" for n in missing]
    lines += [f"  {n.op}: {_node_text(n)} at {n.loc.describe()} (has {len(n.outputs)} outputs; "
              "rules handle one)" for n in multi]
    ops = sorted({n.op for n in missing + multi})
    raise GradientError(f"cannot differentiate %{loss.name}: no gradient rule for op(s) "
                        f"{', '.join(ops)} on the path from the wrt values to the loss "
                        f"({len(lines)} node(s)):\n" + "\n".join(lines))


def _check_request(graph: Graph, loss: Value, wrt: list[Value], seed: Optional[Value]) -> None:
    defined = set(graph.values())
    where = getattr(loss.producer, "loc", None)
    if loss not in defined:
        raise GradientError(f"the loss %{loss.name} is not a value of graph {graph.name!r}")
    if not loss.dtype.is_float:
        raise GradientError(f"the loss must be a float tensor, found %{loss.name}: {loss.type}",
                            where)
    if seed is None:
        if loss.type.rank != 0:
            raise GradientError(f"the loss must be a float scalar (f32[] or f64[]) to be "
                                f"differentiated without a seed, found %{loss.name}: "
                                f"{loss.type}; reduce it (sum/mean) or pass a seed cotangent "
                                "of its type", where)
    else:
        if seed not in defined:
            raise GradientError(f"the seed %{seed.name} is not a value of graph {graph.name!r}")
        if seed.type != loss.type:
            raise GradientError(f"the seed must have the loss's type {loss.type}, found "
                                f"%{seed.name}: {seed.type}", where)
    for w in wrt:
        if w not in defined:
            raise GradientError(f"cannot differentiate with respect to %{w.name}: it is not a "
                                f"value of graph {graph.name!r}")
        if not w.dtype.is_float:
            raise GradientError(f"cannot differentiate with respect to %{w.name}: {w.type} is "
                                "not a float tensor", getattr(w.producer, "loc", None))


def _check_rule_result(node: Node, grads) -> None:
    """A rule bug (wrong arity or type) is caught here, next to the rule that made it."""
    if len(grads) != len(node.inputs):
        raise GradientError(f"VJP rule for {node.op} returned {len(grads)} gradients for "
                            f"{len(node.inputs)} inputs (a bug in passes/autodiff)", node.loc)
    for i, (v, g) in enumerate(zip(node.inputs, grads)):
        if g is not None and g.type != v.type:
            raise GradientError(f"VJP rule for {node.op} returned {g.type} for input {i} of "
                                f"type {v.type} (a bug in passes/autodiff)", node.loc)


def _node_text(node: Node) -> str:
    outs = ", ".join(f"%{v.name}" for v in node.outputs)
    ins = ", ".join(f"%{v.name}" for v in node.inputs)
    return f"{outs} = {node.op}({ins})"


def _producer_grad_loc(v: Value):
    return grad_loc(v.producer.loc, v.producer.op) if v.producer is not None else _BACKWARD_LOC


def _contribution_loc(v: Value):
    return v.producer.loc if v.producer is not None else _BACKWARD_LOC
