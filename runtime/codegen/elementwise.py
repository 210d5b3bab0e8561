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

from .. import threads
from . import helpers as h
from .kernel import KernelBuilder
from .parallel import chunking, parallel_for
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


HEAVY_OPS = frozenset({"exp", "log", "log1p", "tanh", "erf", "sigmoid", "pow", "div", "sqrt",
                       "rsqrt", "reciprocal"})
MIN_CHUNK = 4096              # elements per parallel item at least


def work_per_element_ps(nodes, leaves: dict, stores) -> int:
    """Estimated single-thread picoseconds per element of a group's loop: memory traffic at
    ~60 GB/s plus ~25 ps per vector-friendly op (4x that for transcendentals and divisions);
    only used to decide whether a loop is worth splitting over threads."""
    traffic = sum(buf.dtype.itemsize for buf in leaves.values() if buf.rank > 0)
    traffic += sum(buf.dtype.itemsize for _, buf in stores)
    ops = sum(4 if n.op in HEAVY_OPS else 1 for n in nodes if n.op != "broadcast")
    return max(1, traffic * 16 + ops * 25)


def emit_elementwise_group(kb: KernelBuilder, nodes: Sequence, leaves: dict,
                           stores: Sequence, lanes: int = 1, parallel: bool = True) -> None:
    """Emit one loop computing `stores` = [(Value, Buffer)] from `leaves` = {Value: Buffer}.

    `nodes` are the group's nodes in topological order (elementwise ops and broadcasts).
    Every stored value must have the same shape: the loop runs over it. `lanes` > 1 asks for
    explicit `<lanes x T>` vectors (flat groups only). With `parallel`, a loop whose
    estimated work passes the threads' threshold is split into chunks run on the pool
    (parallel.py): flat loops by element ranges, coordinate loops by ranges of the outermost
    axis."""
    if not stores:
        return
    shape = tuple(stores[0][1].shape)
    for value, buf in stores:
        if tuple(buf.shape) != shape:
            raise CompileError(f"elementwise group stores %{value.name} of shape {buf.shape} "
                               f"in a loop over shape {shape}")
    coords = any(n.op in NEEDS_COORDS for n in nodes)
    if coords and lanes > 1:
        users = ", ".join(sorted({n.op for n in nodes} & NEEDS_COORDS))
        raise CompileError("explicit vectors need a flat elementwise loop; this group uses "
                           f"coordinates ({users})")
    b = kb.b
    count = kb.numel(shape)
    ps = work_per_element_ps(nodes, leaves, stores)
    # static shapes below the threshold (and rank-0 loops) never split: no worker at all
    static = isinstance(count, ir.Constant)
    small = static and count.constant * ps // 1000 < threads.MIN_PARALLEL_NS
    if not parallel or small or not shape or (coords and shape[0] == 1):
        _emit_range(kb, nodes, leaves, stores, lanes, coords, shape, None, None)
        return
    work_ns = b.sdiv(b.mul(count, h.i64(ps)), h.i64(1000))
    if coords:
        outer = kb.dim(shape[0])
        inner = b.sdiv(count, b.select(b.icmp_signed(">", outer, h.i64(0)), outer, h.i64(1)))
        rows = b.sdiv(b.add(h.i64(MIN_CHUNK), b.sub(inner, h.i64(1))),
                      b.select(b.icmp_signed(">", inner, h.i64(0)), inner, h.i64(1)))
        chunk, items = chunking(b, outer, 1, 1)
        chunk = b.select(b.icmp_signed("<", chunk, rows), rows, chunk)
        items = b.sdiv(b.add(outer, b.sub(chunk, h.i64(1))), chunk)
        extent = outer
    else:
        chunk, items = chunking(b, count, MIN_CHUNK, max(lanes, 16))
        extent = count
    # one copy of the loop, in the worker: run directly (no pool) when the work is small

    def body(wkb, item, args):
        wb = wkb.b
        lo = wb.mul(item, args[0])
        hi = wb.add(lo, args[0])
        hi = wb.select(wb.icmp_signed("<", hi, args[1]), hi, args[1])
        w_leaves = {v: wkb.remap(buf) for v, buf in leaves.items()}
        w_stores = [(v, wkb.remap(buf)) for v, buf in stores]
        _emit_range(wkb, nodes, w_leaves, w_stores, lanes, coords, shape, lo, hi)
    parallel_for(kb, items, work_ns, body, args=[chunk, extent], name="ew")


def _emit_range(kb, nodes, leaves, stores, lanes, coords, shape, lo, hi) -> None:
    """The loop over [lo, hi) of the flat index (or of the outermost axis for coordinate
    loops); None: the whole range."""
    b = kb.b
    if coords and not shape:                     # rank 0: one element, no axis to loop over
        g = _GroupEmitter(kb, nodes, leaves)
        _store_all(kb, g, stores, _Site(h.i64(0), [], shape))
        return
    if coords:
        g = _GroupEmitter(kb, nodes, leaves)
        g.hoist_scalar_leaves(shape)
        extents = kb.extents(shape)
        strides = kb.strides(shape)
        if lo is None:
            lo, hi = h.i64(0), extents[0]
        with h.counted_loop(b, hi, start=lo, name=f"e{len(extents)}") as first:
            with h.loop_nest(b, extents[1:], name="e") as rest:
                idx = [first] + rest
                flat = h.dot_index(b, idx, strides)
                _store_all(kb, g, stores, _Site(flat, idx, shape))
        return
    if lo is None:
        lo, hi = None, kb.numel(shape)
    start = lo
    if lanes > 1:
        g = _GroupEmitter(kb, nodes, leaves, lanes)
        g.hoist_scalar_leaves(shape)
        first = lo if lo is not None else h.i64(0)
        span = b.sub(hi, first)
        start = b.add(first, b.mul(b.udiv(span, h.i64(lanes)), h.i64(lanes)), name="vector.end")
        steps = ir.Constant(ir.VectorType(h.I64, lanes), [h.i64(k) for k in range(lanes)])
        with h.counted_loop(b, start, start=lo, step=lanes, name="v") as i:
            flat = b.add(h.splat(b, i, lanes), steps)
            _store_all(kb, g, stores, _Site(flat, None, shape, base=i))
    g = _GroupEmitter(kb, nodes, leaves)
    g.hoist_scalar_leaves(shape)
    with h.counted_loop(b, hi, start=start, name="e") as i:
        _store_all(kb, g, stores, _Site(i, None, shape))


def _store_all(kb, g: _GroupEmitter, stores, site: _Site) -> None:
    g.memo.clear()                               # memoised values belong to this iteration
    for value, buf in stores:
        kb.store(buf, site.base, g.value_at(value, site))


def vector_lanes(kb: KernelBuilder, values) -> int:
    """W for the widest element among `values` (bools and 4-byte types: the f32 width)."""
    widest = max((v.type.dtype.itemsize for v in values), default=4)
    return kb.target.vector_width(max(widest, 4))


def lower_group_node(kb: KernelBuilder, node) -> None:
    """Lowering of one elementwise node: a group of one, in explicit `<W x T>` vectors when
    its loop is flat (the vector math of vecmath.py then applies; LLVM's vectoriser would
    leave transcendental calls scalar)."""
    leaves = dict(zip(node.inputs, kb.inputs))
    flat = node.op not in NEEDS_COORDS and node.outputs[0].type.rank > 0
    lanes = vector_lanes(kb, node.inputs + node.outputs) if flat else 1
    emit_elementwise_group(kb, [node], leaves, list(zip(node.outputs, kb.outputs)), lanes)


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
