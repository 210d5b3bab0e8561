"""Lowerings of the reductions: reduce_sum, reduce_max, reduce_min (any axes, keepdims) and
argmax.

reduce_*: the input's axes are merged into runs ("groups") of adjacent reduced or kept axes
(static size-1 axes dropped), so every case is a loop nest over alternating groups in
memory order. The output is filled with the identity first, then:
- innermost group KEPT (e.g. the bias gradient: reduce [N, F] over N): the innermost loop
  runs along the kept elements in `<W x T>` vectors, each lane combining its own output slot
  (out[j:j+W] = combine(out[j:j+W], x[..., j:j+W])); a scalar loop does the remainder. Each
  output element still combines its inputs in memory order, exactly as a sequential loop.
- innermost group REDUCED (e.g. a row sum, or a conv bias gradient over (N, H, W)): each
  contiguous row is reduced with 4 x W vector partial results (lane k of accumulator u
  takes elements u*W + k, u*W + k + 4W, ...), combined pairwise and across lanes by a shuffle
  tree, then the scalar remainder; the row's result is combined into its output slot. For
  float sums this REASSOCIATES: the sum of a row is taken in a different order from a
  sequential loop (and from numpy's pairwise sum), so float sums agree to rounding (the
  differential tests' `accum` tolerance), not bit for bit. max/min are unaffected (the
  NaN-propagating combine is order independent up to which NaN and the sign of zero).
Float sums start from +0.0, as numpy's do (the reference): a sum of nothing, or of negative
zeros only, is +0.0 (starting from -0.0, the IEEE additive identity, would give -0.0);
max/min use the NaN-propagating combine of scalar.py.

Threads: the loop nest is split over ranges of the outermost kept group (parallel.py), so
each output element is computed by one thread in the same order whatever the thread count.

argmax: per output position, a scan along the axis keeping the first maximum; once a NaN is
seen it is kept (numpy's rule: the first NaN is the argmax). An empty axis is an error.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ir import dtypes as dt

from .. import threads
from . import helpers as h
from .kernel import ERR_EMPTY_AXIS, KernelBuilder
from .parallel import chunking, parallel_for
from .registry import lowering
from .scalar import isnan, max_nan, min_nan

UNROLL = 4                       # independent vector accumulators in a row reduction


def reduce_identity(op: str, dtype):
    d = dt.dtype(dtype)
    typ = h.register_type(d)
    if op == "reduce_sum":
        return h.const_like(typ, 0.0 if d.is_float else 0)      # numpy's start, see above
    info_max = np.inf if d.is_float else np.iinfo(d.np_dtype).max
    info_min = -np.inf if d.is_float else np.iinfo(d.np_dtype).min
    return h.const_like(typ, info_min if op == "reduce_max" else info_max)


def combine(b, op, acc, v):
    if op == "reduce_sum":
        return b.fadd(acc, v) if h.is_float_type(acc.type) else b.add(acc, v)
    return max_nan(b, acc, v) if op == "reduce_max" else min_nan(b, acc, v)


def _splat_identity(op, dtype, lanes):
    scalar = reduce_identity(op, dtype)
    return ir.Constant(ir.VectorType(scalar.type, lanes), [scalar] * lanes)


def horizontal(b, op, vec):
    """Combine the lanes of `vec` pairwise (a shuffle tree: lanes k and k + n/2, ...)."""
    n = vec.type.count
    while n > 1:
        half = n // 2
        lo = b.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(h.I32, half),
                                                    [h.i32(k) for k in range(half)]))
        hi = b.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(h.I32, half),
                                                    [h.i32(k + half) for k in range(half)]))
        vec = combine(b, op, lo, hi)
        n = half
    return b.extract_element(vec, h.i32(0))


def axis_groups(shape, axes: set) -> list:
    """[(dims, reduced)] runs of adjacent axes of the same kind, static size-1 axes dropped."""
    groups = []
    for a, d in enumerate(shape):
        if d == 1:
            continue
        red = a in axes
        if groups and groups[-1][1] == red:
            groups[-1][0].append(d)
        else:
            groups.append(([d], red))
    return [(tuple(dims), red) for dims, red in groups]


@lowering("reduce_sum", "reduce_max", "reduce_min")
def _reduce(kb: KernelBuilder, node) -> None:
    (x,), (out,) = kb.inputs, kb.outputs
    b = kb.b
    rank = x.rank
    axes = {a % rank for a in node.attrs["axes"]} if rank else set()
    op = node.op
    width = kb.target.vector_width(x.dtype.itemsize)
    identity = reduce_identity(op, x.dtype)
    n_out = kb.numel(out.shape)
    with h.counted_loop(b, n_out, name="init") as i:
        kb.store(out, i, identity)
    groups = axis_groups(x.shape, axes)
    if not groups:                                   # one element: out = combine(id, x)
        kb.store(out, h.i64(0), combine(b, op, kb.load(out, h.i64(0)), kb.load(x, h.i64(0))))
        return
    kept = [k for k, (_, red) in enumerate(groups) if not red]
    split = kept[0] if kept else None
    if split is None:
        _emit_nest(kb, op, groups, width, None, None, None)
        return
    total = kb.numel(x.shape)
    work_ns = b.sdiv(b.mul(total, h.i64(x.dtype.itemsize * 16)), h.i64(1000))
    extent = h.product(b, [kb.dim(d) for d in groups[split][0]])
    innermost = split == len(groups) - 1
    chunk, items = chunking(b, extent, width if innermost else 1, width if innermost else 1,
                            max_items=16)

    def body(wkb, item, args):
        wb = wkb.b
        lo = wb.mul(item, args[0])
        hi = wb.add(lo, args[0])
        hi = wb.select(wb.icmp_signed("<", hi, args[1]), hi, args[1])
        _emit_nest(wkb, op, groups, width, split, lo, hi)
    static = isinstance(total, ir.Constant) and \
        total.constant * x.dtype.itemsize * 16 // 1000 < threads.MIN_PARALLEL_NS
    if static:
        _emit_nest(kb, op, groups, width, None, None, None)
    else:
        parallel_for(kb, items, work_ns, body, args=[chunk, extent], name="red")


def _emit_nest(kb, op, groups, width, split, lo, hi) -> None:
    """The loop nest over `groups`; group `split` runs over [lo, hi) only (None: all)."""
    (x,), (out,) = kb.inputs, kb.outputs
    b = kb.b
    extents = [h.product(b, [kb.dim(d) for d in dims]) for dims, _ in groups]
    x_strides = h.row_major_strides(b, extents)
    kept = [k for k, (_, red) in enumerate(groups) if not red]
    kept_strides = h.row_major_strides(b, [extents[k] for k in kept])
    out_strides = [h.i64(0)] * len(groups)
    for k, s in zip(kept, kept_strides):
        out_strides[k] = s
    last = len(groups) - 1

    def nest(level, x_off, o_off):
        if level == last:
            if groups[last][1]:
                _row(kb, op, x, out, x_off, o_off, extents[last], width)
            else:
                start = lo if split == last else h.i64(0)
                stop = hi if split == last else extents[last]
                _columns(kb, op, x, out, x_off, o_off, start, stop, width)
            return
        start = lo if split == level else h.i64(0)
        stop = hi if split == level else extents[level]
        with h.counted_loop(b, stop, start=start, name=f"g{level}") as i:
            nest(level + 1, h.add(b, x_off, h.mul(b, i, x_strides[level])),
                 h.add(b, o_off, h.mul(b, i, out_strides[level])))
    nest(0, h.i64(0), h.i64(0))


def _columns(kb, op, x, out, x_off, o_off, start, stop, width) -> None:
    """out[o_off + j] = combine(out[o_off + j], x[x_off + j]) for j in [start, stop)."""
    b = kb.b
    esize = x.dtype.itemsize
    span = b.sub(stop, start)
    vec_end = b.add(start, b.mul(b.sdiv(span, h.i64(width)), h.i64(width)))
    with h.counted_loop(b, vec_end, start=start, step=width, name="col") as j:
        o = h.add(b, o_off, j)
        acc = h.load_element(b, out.ptr, o, out.dtype, esize, width)
        v = h.load_element(b, x.ptr, h.add(b, x_off, j), x.dtype, esize, width)
        h.store_element(b, combine(b, op, acc, v), out.ptr, o, out.dtype, esize)
    with h.counted_loop(b, stop, start=vec_end, name="coltail") as j:
        o = h.add(b, o_off, j)
        kb.store(out, o, combine(b, op, kb.load(out, o), kb.load(x, h.add(b, x_off, j))))


def _row(kb, op, x, out, x_off, o_off, length, width) -> None:
    """out[o_off] = combine(out[o_off], reduce(x[x_off : x_off + length]))."""
    b = kb.b
    esize = x.dtype.itemsize
    step = width * UNROLL
    ident = _splat_identity(op, x.dtype, width)
    slots = [kb.local(ident.type, f"racc{u}") for u in range(UNROLL)]
    for s in slots:
        kb.put(s, ident)
    main_end = b.mul(b.sdiv(length, h.i64(step)), h.i64(step))
    with h.counted_loop(b, main_end, step=step, name="rmain") as i:
        for u, s in enumerate(slots):
            v = h.load_element(b, x.ptr, h.add(b, x_off, i, h.i64(u * width)), x.dtype, esize,
                               width)
            kb.put(s, combine(b, op, kb.get(s, ident.type), v))
    accs = [kb.get(s, ident.type) for s in slots]
    while len(accs) > 1:
        accs = [combine(b, op, accs[k], accs[k + 1]) for k in range(0, len(accs), 2)]
    kb.put(slots[0], accs[0])
    vec_end = b.mul(b.sdiv(length, h.i64(width)), h.i64(width))
    with h.counted_loop(b, vec_end, start=main_end, step=width, name="rvec") as i:
        v = h.load_element(b, x.ptr, h.add(b, x_off, i), x.dtype, esize, width)
        kb.put(slots[0], combine(b, op, kb.get(slots[0], ident.type), v))
    scalar = kb.local(ident.type.element, "rtotal")
    kb.put(scalar, horizontal(b, op, kb.get(slots[0], ident.type)))
    with h.counted_loop(b, length, start=vec_end, name="rtail") as i:
        kb.put(scalar, combine(b, op, kb.get(scalar, ident.type.element),
                                kb.load(x, h.add(b, x_off, i))))
    kb.store(out, o_off, combine(b, op, kb.load(out, o_off),
                                  kb.get(scalar, ident.type.element)))


@lowering("argmax")
def _argmax(kb: KernelBuilder, node) -> None:
    (x,), (out,) = kb.inputs, kb.outputs
    b = kb.b
    axis = node.attrs["axis"] % x.rank
    outer = h.product(b, kb.extents(x.shape[:axis]))
    n = kb.dim(x.shape[axis])
    inner = h.product(b, kb.extents(x.shape[axis + 1:]))
    typ = h.register_type(x.dtype)
    best_slot, index_slot = kb.local(typ, "best"), kb.local(h.I64, "best.index")
    lowest = -np.inf if x.dtype.is_float else np.iinfo(x.dtype.np_dtype).min
    # an empty axis has no maximum to index (a symbolic dim bound to 0): report, like ir.run
    kb.check(b.icmp_signed("!=", n, h.i64(0)), ERR_EMPTY_AXIS, n, h.i64(0), axis)
    with h.loop_nest(b, [outer, inner], name="a") as (o, t):
        # start below every value at index 0: an all-minimum (or empty) line gives index 0
        kb.put(best_slot, h.const_like(typ, lowest))
        kb.put(index_slot, h.i64(0))
        base = h.add(b, h.mul(b, h.mul(b, o, n), inner), t)
        with h.counted_loop(b, n, name="j") as j:
            v = kb.load(x, h.add(b, base, h.mul(b, j, inner)))
            best = kb.get(best_slot, typ)
            if x.dtype.is_float:
                better = b.or_(b.fcmp_ordered(">", v, best), isnan(b, v))
                take = b.and_(better, b.not_(isnan(b, best)))
            else:
                take = b.icmp_signed(">", v, best)
            kb.put(best_slot, b.select(take, v, best))
            kb.put(index_slot, b.select(take, j, kb.get(index_slot, h.I64)))
        kb.store(out, h.add(b, h.mul(b, o, inner), t), kb.get(index_slot, h.I64))
