"""What the symbol values of a call must satisfy beyond the input shapes.

Shape rules accept symbolic dims they cannot prove non-negative only where the program says
so: `x[N-3:]` slices from N-3, and its result has 3 rows; `x[:N-3]` has N-3 rows. Both are
fine for N >= 3 and meaningless below (a negative extent, or a read before the start of the
buffer). `dim_constraints(graph)` lists every such dim with the node that needs it, so a call
boundary (the interpreter's and the native one) can refuse a binding that breaks one with a
message naming the user's line, instead of running on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from .errors import ArgumentError, ShapeError
from .graph import Graph
from .symbolic import SymDim, evaluate, format_dim


@dataclass(frozen=True)
class DimConstraint:
    dim: SymDim                 # must be >= 0 under the call's binding
    what: str                   # "the start of slice axis 0", "axis 1 of %3"
    op: str
    loc: object

    def describe(self, binding: Mapping[str, int], value: int) -> str:
        values = ", ".join(f"{k}={v}" for k, v in sorted(binding.items()))
        return (f"{self.op} needs {self.what} = {format_dim(self.dim)} >= 0, found {value} "
                f"with {values}")


def _maybe_negative(d) -> bool:
    return isinstance(d, SymDim) and any(c < 0 for _, c in d.terms)


def dim_constraints(graph: Graph) -> list:
    """Every symbolic dim of `graph` (nested fused bodies included) that a binding could make
    negative, once each (the first node that needs it)."""
    found: dict = {}

    def add(dim, what, node, loc):
        if _maybe_negative(dim) and dim not in found:
            found[dim] = DimConstraint(dim, what, node.op, loc)

    def walk(g: Graph, outer_loc):
        for node in g.nodes:
            loc = node.loc if node.loc is not None else outer_loc
            if node.op == "slice":
                for axis, start in enumerate(node.attrs["starts"]):
                    add(start, f"the start of slice axis {axis}", node, loc)
            for out in node.outputs:
                for axis, d in enumerate(out.type.shape):
                    add(d, f"the size of axis {axis} of its result {out.type}", node, loc)
            for value in node.attrs.values():
                if isinstance(value, Graph):
                    walk(value, loc)
    walk(graph, None)
    return list(found.values())


def check_dim_constraints(constraints, binding: Mapping[str, int],
                          graph_name: Optional[str] = None) -> None:
    """Raise ArgumentError for the first constraint `binding` breaks."""
    for c in constraints:
        try:
            value = evaluate(c.dim, binding)
        except ShapeError:            # a symbol this binding lacks: nothing to check here
            continue
        if value < 0:
            prefix = f"graph {graph_name!r}: " if graph_name else ""
            raise ArgumentError(f"{prefix}the input shapes are too small for this graph: "
                                + c.describe(binding, value), c.loc)
