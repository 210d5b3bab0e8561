"""Elementwise loops: one counted loop computes a whole DAG of elementwise ops.

`emit_elementwise_group(kb, nodes, leaves, stores)` is the one way elementwise code is made.
A single elementwise node is a group of one; a fused group (the fusion pass) is a group of
many, computed in ONE loop by composing the per-element emitters of scalar.py: no
intermediate is ever written to memory.

Evaluation is demand-driven over "sites": a site is an element position (flat index and, when
needed, coordinates) in the shape of the value being computed. A store asks for each output
value at the loop's site; an elementwise op asks for its operands at the same site; a
`broadcast` asks for its operand at the remapped site (coordinates of stretched or new axes
dropped); a leaf (a buffer the group reads) is loaded at its site. Results are memoised per
(value, site), so shared subexpressions are computed once per element.

Loop shape: a flat counted loop over the element count when no op needs coordinates (the form
LLVM's vectoriser likes best); a loop nest over the output shape when some op does (iota, a
broadcast), with the flat index maintained from the coordinates.

Explicit vectors (`lanes` > 1, flat loops only): the main loop computes `lanes` elements per
iteration with `<lanes x T>` values (the same emitters, fed vectors), and a scalar loop does
the remainder. By default (lanes = 1) LLVM's loop vectoriser picks the width itself; the
speed work switches groups to explicit vectors of the target's width W where that is better
(e.g. with vector polynomial exp/log that the auto-vectoriser cannot form).
"""
from __future__ import annotations

from typing import Optional, Sequence

import llvmlite.ir as ir

from ir import CompileError

from . import helpers as h
from .kernel import Buffer, KernelBuilder
from .registry import lowering
from .scalar import ElementContext, emit_element

NEEDS_COORDS = frozenset({"iota", "broadcast"})


class _Site:
    """An element position inside the shape of one value: `base` is the (scalar) index of the
    first element, `flat` the index of each lane (a vector when lanes > 1, else == base)."""
    __slots__ = ("base", "flat", "coords", "shape")

    def __init__(self, flat, coords: Optional[list], shape: tuple, base=None):
        self.flat, self.coords, self.shape = flat, coords, shape
        self.base = flat if base is None else base


class _GroupEmitter:
    def __init__(self, kb: KernelBuilder, nodes: Sequence, leaves: dict, lanes: int = 1):
        self.kb, self.b = kb, kb.b
        self.leaves = leaves                     # Value -> Buffer
        self.producer = {}                       # Value -> node inside the group
        for node in nodes:
            for out in node.outputs:
                self.producer[out] = node
        self.lanes = lanes
        self.memo: dict = {}
        self.hoisted: dict = {}                  # rank-0 leaves loaded once before the loop

    def hoist_scalar_leaves(self, loop_shape: tuple) -> None:
        for value, buf in self.leaves.items():
            if buf.rank == 0 and len(loop_shape) > 0:
                v = self.kb.load(buf, h.i64(0))
                self.hoisted[value] = h.splat(self.b, v, self.lanes) if self.lanes > 1 else v

    def value_at(self, value, site: _Site):
        key = (id(value), id(site))
        if key in self.memo:
            return self.memo[key][2]
        result = self._compute(value, site)
        self.memo[key] = (value, site, result)   # keeps both alive, so their ids stay unique
        return result

    def _compute(self, value, site: _Site):
        node = self.producer.get(value)
        if node is None:
            return self._load_leaf(value, site)
        if node.op == "broadcast":
            return self.value_at(node.inputs[0], self._broadcast_site(node, site))
        args = [self.value_at(v, site) for v in node.inputs]
        ec = ElementContext(self.b, self.kb, node, site.flat, site.coords, self.lanes,
                            site.base)
        return emit_element(ec, args)

    def _load_leaf(self, value, site: _Site):
        if value in self.hoisted:
            return self.hoisted[value]
        buf = self.leaves.get(value)
        if buf is None:
            raise CompileError(f"elementwise group reads %{value.name}, which is neither "
                               "computed in the group nor one of its inputs")
        if tuple(buf.shape) != tuple(site.shape):
            if buf.rank == 0:
                return self.kb.load(buf, h.i64(0))
            raise CompileError(f"elementwise group reads %{value.name}: {buf.shape} at a "
                               f"position of shape {site.shape} (missing broadcast)")
        return self.kb.load(buf, site.base, self.lanes)

    def _broadcast_site(self, node, site: _Site) -> _Site:
        src = node.inputs[0]
        src_shape = tuple(src.type.shape)
        coords = []
        for i, d in enumerate(node.attrs["dims"]):
            coords.append(h.i64(0) if src_shape[i] == 1 else site.coords[d])
        flat = h.dot_index(self.b, coords, self.kb.strides(src_shape))
        return _Site(flat, coords, src_shape)


def emit_elementwise_group(kb: KernelBuilder, nodes: Sequence, leaves: dict,
                           stores: Sequence, lanes: int = 1) -> None:
    """Emit one loop computing `stores` = [(Value, Buffer)] from `leaves` = {Value: Buffer}.

    `nodes` are the group's nodes in topological order (elementwise ops and broadcasts).
    Every stored value must have the same shape: the loop runs over it. `lanes` > 1 asks for
    explicit `<lanes x T>` vectors (flat groups only)."""
    if not stores:
        return
    shape = tuple(stores[0][1].shape)
    for value, buf in stores:
        if tuple(buf.shape) != shape:
            raise CompileError(f"elementwise group stores %{value.name} of shape {buf.shape} "
                               f"in a loop over shape {shape}")
    b = kb.b
    if any(n.op in NEEDS_COORDS for n in nodes):
        if lanes > 1:
            users = ", ".join(sorted({n.op for n in nodes} & NEEDS_COORDS))
            raise CompileError("explicit vectors need a flat elementwise loop; this group uses "
                               f"coordinates ({users})")
        g = _GroupEmitter(kb, nodes, leaves)
        g.hoist_scalar_leaves(shape)
        extents = kb.extents(shape)
        strides = kb.strides(shape)
        with h.loop_nest(b, extents, name="e") as coords:
            flat = h.dot_index(b, coords, strides)
            _store_all(kb, g, stores, _Site(flat, coords, shape))
        return
    count = kb.numel(shape)
    start = None
    if lanes > 1:
        g = _GroupEmitter(kb, nodes, leaves, lanes)
        g.hoist_scalar_leaves(shape)
        start = b.mul(b.udiv(count, h.i64(lanes)), h.i64(lanes), name="vector.end")
        steps = ir.Constant(ir.VectorType(h.I64, lanes), [h.i64(k) for k in range(lanes)])
        with h.counted_loop(b, start, step=lanes, name="v") as i:
            flat = b.add(h.splat(b, i, lanes), steps)
            _store_all(kb, g, stores, _Site(flat, None, shape, base=i))
    g = _GroupEmitter(kb, nodes, leaves)
    g.hoist_scalar_leaves(shape)
    with h.counted_loop(b, count, start=start, name="e") as i:
        _store_all(kb, g, stores, _Site(i, None, shape))


def _store_all(kb, g: _GroupEmitter, stores, site: _Site) -> None:
    g.memo.clear()                               # memoised values belong to this iteration
    for value, buf in stores:
        kb.store(buf, site.base, g.value_at(value, site))


def lower_group_node(kb: KernelBuilder, node) -> None:
    """Lowering of one elementwise node: a group of one."""
    leaves = dict(zip(node.inputs, kb.inputs))
    emit_elementwise_group(kb, [node], leaves, list(zip(node.outputs, kb.outputs)))


def lower_fused_subgraph(kb: KernelBuilder, subgraph) -> None:
    """Lowering of a fused elementwise group given as a nested Graph (the fusion pass's form):
    the kernel's inputs are the subgraph's inputs, its outputs the subgraph's outputs."""
    leaves = dict(zip(subgraph.inputs, kb.inputs))
    emit_elementwise_group(kb, subgraph.nodes, leaves, list(zip(subgraph.outputs, kb.outputs)))


ELEMENTWISE_OPS = (
    "neg", "abs", "sign", "relu", "exp", "log", "log1p", "sqrt", "rsqrt", "reciprocal", "tanh",
    "sigmoid", "erf", "add", "sub", "mul", "div", "pow", "maximum", "minimum", "less",
    "less_equal", "greater", "greater_equal", "equal", "not_equal", "logical_and",
    "logical_or", "logical_not", "select", "cast", "iota", "dim_value")

lowering(*ELEMENTWISE_OPS)(lower_group_node)
lowering("constant", constant=True)(lower_group_node)
