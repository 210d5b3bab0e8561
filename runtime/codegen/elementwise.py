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
    first element, `flat` the index of each lane (a vector when lanes > 1, else == base).
    `uniform`: in a loop vectorised along its innermost axis, a position that is the same
    for every lane (an operand broadcast along that axis); `coords` are then lane 0's."""
    __slots__ = ("base", "flat", "coords", "shape", "uniform")

    def __init__(self, flat, coords: Optional[list], shape: tuple, base=None,
                 uniform: bool = False):
        self.flat, self.coords, self.shape = flat, coords, shape
        self.base = flat if base is None else base
        self.uniform = uniform


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


class _RowVectorEmitter(_GroupEmitter):
    """A coordinate loop vectorised along its innermost axis (contiguous in the output):
    values at a lane-varying site are `<lanes x T>` vectors loaded and stored contiguously;
    a broadcast that stretches the innermost axis turns its operand's site uniform, and the
    operand's whole subexpression is computed once, with scalars (`scalar`), then splat."""

    def __init__(self, kb, nodes, leaves, lanes: int, scalar: _GroupEmitter):
        super().__init__(kb, nodes, leaves, lanes)
        self.scalar = scalar
        self.steps = ir.Constant(ir.VectorType(h.I64, lanes), [h.i64(k) for k in range(lanes)])

    def vector_site(self, base, coords, shape) -> _Site:
        return _Site(self.b.add(h.splat(self.b, base, self.lanes), self.steps), coords, shape,
                     base=base)

    def _compute(self, value, site: _Site):
        if site.uniform:
            one = _Site(site.base, site.coords, site.shape)
            return h.splat(self.b, self.scalar.value_at(value, one), self.lanes)
        return super()._compute(value, site)

    def _load_leaf(self, value, site: _Site):
        buf = self.leaves.get(value)
        if value in self.hoisted or buf is None or buf.rank == 0:
            return super()._load_leaf(value, site)
        # rows start anywhere: only element alignment is known
        return h.load_element(self.b, buf.ptr, site.base, buf.dtype, buf.dtype.itemsize,
                              self.lanes)

    def _broadcast_site(self, node, site: _Site) -> _Site:
        src_shape = tuple(node.inputs[0].type.shape)
        innermost = len(site.shape) - 1
        coords, varies = [], False
        for i, d in enumerate(node.attrs["dims"]):
            if src_shape[i] == 1:
                coords.append(h.i64(0))
            else:
                coords.append(site.coords[d])
                varies = varies or d == innermost     # then i is the operand's last axis
        base = h.dot_index(self.b, coords, self.kb.strides(src_shape))
        if varies:
            return self.vector_site(base, coords, src_shape)
        return _Site(base, coords, src_shape, uniform=True)


def row_vector_lanes(kb, nodes, leaves: dict, stores) -> int:
    """W for a coordinate loop vectorised along its innermost axis, or 1 when it cannot be:
    iota needs every lane's coordinates, and a broadcast that puts its operand's axis other
    than the last on the innermost output axis would need a gather."""
    for n in nodes:
        if n.op == "iota":
            return 1
        if n.op == "broadcast":
            dims = tuple(n.attrs["dims"])
            last = len(n.outputs[0].type.shape) - 1
            if last in dims and dims.index(last) != len(n.inputs[0].type.shape) - 1:
                return 1
    values = [o for n in nodes for o in n.outputs] + list(leaves) + [v for v, _ in stores]
    lanes = vector_lanes(kb, values)
    inner = stores[0][0].type.shape[-1] if stores and stores[0][0].type.rank else 0
    if isinstance(inner, int) and inner < lanes:
        return 1                  # rows too short for one vector: the scalar nest only
    return lanes


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
    row_lanes = row_vector_lanes(kb, nodes, leaves, stores) if coords and shape else 1
    b = kb.b
    count = kb.numel(shape)
    ps = work_per_element_ps(nodes, leaves, stores)
    # static shapes below the threshold (and rank-0 loops) never split: no worker at all
    static = isinstance(count, ir.Constant)
    small = static and count.constant * ps // 1000 < threads.MIN_PARALLEL_NS
    if not parallel or small or not shape or (coords and shape[0] == 1):
        _emit_range(kb, nodes, leaves, stores, lanes, coords, shape, None, None, row_lanes)
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
        _emit_range(wkb, nodes, w_leaves, w_stores, lanes, coords, shape, lo, hi, row_lanes)
    parallel_for(kb, items, work_ns, body, args=[chunk, extent], name="ew")


def _emit_range(kb, nodes, leaves, stores, lanes, coords, shape, lo, hi,
                row_lanes: int = 1) -> None:
    """The loop over [lo, hi) of the flat index (or of the outermost axis for coordinate
    loops); None: the whole range. `row_lanes` > 1: a coordinate loop vectorised along its
    innermost axis."""
    b = kb.b
    if coords and shape and row_lanes > 1:
        _emit_row_vectors(kb, nodes, leaves, stores, shape, lo, hi, row_lanes)
        return
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


def _emit_row_vectors(kb, nodes, leaves, stores, shape, lo, hi, lanes) -> None:
    """Each row of the innermost axis: `lanes` elements per step in vectors, then the
    remainder with scalars (rank 1: the axis range [lo, hi) is the one row)."""
    b = kb.b
    extents, strides = kb.extents(shape), kb.strides(shape)
    scalar = _GroupEmitter(kb, nodes, leaves)
    scalar.hoist_scalar_leaves(shape)
    vector = _RowVectorEmitter(kb, nodes, leaves, lanes, _GroupEmitter(kb, nodes, leaves))
    vector.hoist_scalar_leaves(shape)
    vector.scalar.hoisted = scalar.hoisted

    def row(row_coords, row_base, start, stop):
        span = b.sub(stop, start)
        vend = b.add(start, b.mul(b.udiv(span, h.i64(lanes)), h.i64(lanes)), name="row.vend")
        with h.counted_loop(b, vend, start=start, step=lanes, name="rv") as j:
            vector.scalar.memo.clear()
            site = vector.vector_site(b.add(row_base, j), row_coords + [j], shape)
            vector.memo.clear()
            values = [vector.value_at(value, site) for value, _ in stores]   # then stores
            for (_, buf), result in zip(stores, values):
                h.store_element(b, result, buf.ptr, site.base, buf.dtype, buf.dtype.itemsize)
        with h.counted_loop(b, stop, start=vend, name="rs") as j:
            _store_all(kb, scalar, stores, _Site(b.add(row_base, j), row_coords + [j], shape))

    first = lo if lo is not None else h.i64(0)
    last = hi if hi is not None else extents[0]
    if len(shape) == 1:
        row([], h.i64(0), first, last)
        return
    with h.counted_loop(b, last, start=first, name="r0") as i:
        with h.loop_nest(b, extents[1:-1], name="r") as mids:
            row_coords = [i] + mids
            row([*row_coords], h.dot_index(b, row_coords, strides[:-1]), h.i64(0),
                extents[-1])


def _store_all(kb, g: _GroupEmitter, stores, site: _Site) -> None:
    g.memo.clear()                               # memoised values belong to this iteration
    # every value first, then the stores: an output written in place over an input (a
    # parameter update, runtime/plan.py) must not be read back by another output
    values = [g.value_at(value, site) for value, _ in stores]
    for (_, buf), result in zip(stores, values):
        kb.store(buf, site.base, result)


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
