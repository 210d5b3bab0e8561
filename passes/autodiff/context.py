"""The emitting side of autodiff: what a VJP rule uses to append backward IR.

A `GradContext` wraps the graph under construction and the location of the forward node whose
rule is running, so every backward node carries the user's file:line with "/grad" appended to
its layer path (backward errors and fusion reports then point at the user's code). It also
keeps the emitted graph lean: constants and zero tensors are made once per type and shared,
and the shape helpers return their operand unchanged when the operation would be an identity.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ir import emit
from ir.graph import Graph, Node, Value
from ir.location import UNKNOWN, FusedLoc, Loc
from ir.types import TensorType


def grad_loc(loc, op: str):
    """The location of backward nodes made for a forward node at `loc` running `op`.

    The layer path gets "/grad" appended ("net/dense1/matmul/grad"); a node without a path
    uses its op name ("matmul/grad") so readers still see where the gradient came from."""
    if isinstance(loc, FusedLoc):
        return FusedLoc(tuple(grad_loc(p, op) for p in loc.parts))
    if loc is None:
        loc = UNKNOWN
    return Loc(loc.file, loc.line, f"{loc.path or op}/grad")


class GradContext:
    """Emits backward nodes into `graph` at the current forward node's gradient location."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.loc = Loc(None, None, "grad")
        self._memo: dict = {}

    # -- locations ----------------------------------------------------------------------------
    def at(self, node: Node) -> "GradContext":
        """Point subsequent emits at the gradient location of forward `node`."""
        self.loc = grad_loc(node.loc, node.op)
        return self

    # -- raw emission -------------------------------------------------------------------------
    def emit(self, op: str, inputs: Sequence[Value], **attrs) -> Value:
        return emit(self.graph, op, list(inputs), attrs, self.loc)

    # -- shared constants ---------------------------------------------------------------------
    def const(self, value: float, dtype) -> Value:
        """A scalar constant of `dtype` (one node per value and dtype per autodiff call)."""
        key = ("const", float(value), dtype.name)
        if key not in self._memo:
            arr = np.array(value, dtype=dtype.np_dtype)
            self._memo[key] = self.emit("constant", [], value=arr)
        return self._memo[key]

    def full(self, value: float, type: TensorType) -> Value:
        """A tensor of `type` filled with `value`: a scalar constant broadcast to the shape, so
        it works for symbolic shapes and stays one tiny constant in the printed IR."""
        c = self.const(value, type.dtype)
        if not type.shape:
            return c
        key = ("full", float(value), type)
        if key not in self._memo:
            self._memo[key] = self.emit("broadcast", [c], shape=type.shape, dims=())
        return self._memo[key]

    def zeros(self, type: TensorType) -> Value:
        return self.full(0.0, type)

    def like(self, value: float, ref: Value) -> Value:
        """`value` broadcast to the type of `ref` (for elementwise formulas)."""
        return self.full(value, ref.type)

    # -- elementwise shorthands ---------------------------------------------------------------
    def add(self, a, b):
        return self.emit("add", [a, b])

    def sub(self, a, b):
        return self.emit("sub", [a, b])

    def mul(self, a, b):
        return self.emit("mul", [a, b])

    def div(self, a, b):
        return self.emit("div", [a, b])

    def neg(self, a):
        return self.emit("neg", [a])

    def select(self, cond, a, b):
        return self.emit("select", [cond, a, b])

    def sum_all(self, values: Sequence[Value]) -> Value:
        """Sum adjoint contributions with `add` (a single contribution is returned as is)."""
        total = values[0]
        for v in values[1:]:
            total = self.add(total, v)
        return total

    # -- shape helpers that skip identities ---------------------------------------------------
    def reshape(self, v: Value, shape) -> Value:
        shape = tuple(shape)
        return v if tuple(v.shape) == shape else self.emit("reshape", [v], shape=shape)

    def transpose(self, v: Value, perm) -> Value:
        perm = tuple(perm)
        return v if perm == tuple(range(len(perm))) else self.emit("transpose", [v], perm=perm)

    def broadcast(self, v: Value, shape, dims) -> Value:
        shape, dims = tuple(shape), tuple(dims)
        if tuple(v.shape) == shape and dims == tuple(range(len(shape))):
            return v
        return self.emit("broadcast", [v], shape=shape, dims=dims)

    def reduce_sum(self, v: Value, axes, keepdims: bool = False) -> Value:
        axes = tuple(sorted(axes))
        return v if not axes else self.emit("reduce_sum", [v], axes=axes, keepdims=keepdims)

    def cast(self, v: Value, dtype) -> Value:
        return v if v.dtype == dtype else self.emit("cast", [v], dtype=dtype)

    def slice(self, v: Value, starts, stops, steps: Optional[Sequence[int]] = None) -> Value:
        starts, stops = tuple(starts), tuple(stops)
        steps = tuple(steps) if steps is not None else (1,) * len(starts)
        if all(s == 0 for s in starts) and stops == tuple(v.shape) and all(s == 1 for s in steps):
            return v
        return self.emit("slice", [v], starts=starts, stops=stops, steps=steps)

    def pad(self, v: Value, low, high, value: float = 0.0) -> Value:
        low, high = tuple(low), tuple(high)
        if not any(low) and not any(high):
            return v
        return self.emit("pad", [v], low=low, high=high, value=value)
