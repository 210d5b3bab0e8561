"""Creating nodes: attribute checking and type inference in one place.

Every way of making a node (the front end, the parser, passes) goes through `make_node`, so a
node can never exist with unchecked attributes or a type that disagrees with its op's rule.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .attrs import check_attrs
from .errors import GraphcError
from .graph import Graph, Node, Value
from .location import UNKNOWN
from .opdef import OpDef, get_op


def check_arity(opdef: OpDef, n: int, loc=UNKNOWN) -> None:
    if not opdef.arity_ok(n):
        names = ", ".join(opdef.inputs) or "none"
        raise GraphcError(f"op {opdef.name} takes {opdef.arity_text()} operand(s) ({names}), "
                          f"found {n}", loc)


def infer_types(opdef: OpDef, in_types: Sequence, attrs: dict, loc=UNKNOWN) -> list:
    """Run the op's shape/dtype rule; errors carry the location."""
    try:
        out = opdef.infer(list(in_types), attrs)
    except GraphcError as e:
        raise e.with_loc(loc) from None
    if len(out) != opdef.result_count(attrs):
        raise AssertionError(f"{opdef.name}.infer returned {len(out)} types")
    return out


def prepare(op: str, inputs: Sequence[Value], attrs: Optional[dict], loc=UNKNOWN):
    """Check op, arity and attrs; infer output types. Returns (opdef, attrs, out_types)."""
    try:
        opdef = get_op(op)
        check_arity(opdef, len(inputs), loc)
        attrs = check_attrs(op, opdef.attrs, attrs or {})
    except GraphcError as e:
        raise e.with_loc(loc) from None
    return opdef, attrs, infer_types(opdef, [v.type for v in inputs], attrs, loc)


def make_node(graph: Graph, op: str, inputs: Sequence[Value], attrs: Optional[dict] = None,
              loc=UNKNOWN, names: Optional[Sequence[str]] = None,
              append: bool = True) -> Node:
    """Create (and by default append) a checked, typed node whose outputs get fresh names."""
    _, attrs, out_types = prepare(op, inputs, attrs, loc)
    node = Node(op, list(inputs), attrs, [], loc)
    for i, t in enumerate(out_types):
        name = names[i] if names else graph.fresh_name()
        node.outputs.append(Value(name, t, node, i))
    if append:
        graph.nodes.append(node)
    return node


def emit(graph: Graph, op: str, inputs: Sequence[Value], attrs: Optional[dict] = None,
         loc=UNKNOWN) -> Value:
    """make_node for the common one-output case: returns the output Value."""
    return make_node(graph, op, inputs, attrs, loc).output
