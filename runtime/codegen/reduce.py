"""Lowerings of the reductions: reduce_sum, reduce_max, reduce_min (any axes, keepdims) and
argmax.

reduce_*: the output is filled with the identity, then ONE loop nest walks the input in
memory order and combines each element into its output slot (output offset = the input
coordinates dotted with output strides that are 0 on reduced axes). Memory-order traversal
keeps every access contiguous whatever the axes (reducing the batch axis, the common bias
gradient, vectorises over the kept inner axis); LLVM promotes the slot to a register when the
reduced axes are innermost. The float sum's identity is -0.0 (the IEEE additive identity:
-0.0 + x == x for every x, including +0.0 and -0.0); max/min use the NaN-propagating combine
of scalar.py. Summation order is sequential (numpy sums pairwise), so float sums agree to
rounding, not bit for bit.

argmax: per output position, a scan along the axis keeping the first maximum; once a NaN is
seen it is kept (numpy's rule: the first NaN is the argmax). An empty axis is an error.
"""
from __future__ import annotations

import numpy as np

from ir import dtypes as dt

from . import helpers as h
from .kernel import ERR_EMPTY_AXIS, KernelBuilder
from .registry import lowering
from .scalar import isnan, max_nan, min_nan


def reduce_identity(op: str, dtype):
    d = dt.dtype(dtype)
    typ = h.register_type(d)
    if op == "reduce_sum":
        return h.const_like(typ, -0.0 if d.is_float else 0)
    info_max = np.inf if d.is_float else np.iinfo(d.np_dtype).max
    info_min = -np.inf if d.is_float else np.iinfo(d.np_dtype).min
    return h.const_like(typ, info_min if op == "reduce_max" else info_max)


def _combine(b, op, acc, v):
    if op == "reduce_sum":
        return b.fadd(acc, v) if h.is_float_type(acc.type) else b.add(acc, v)
    return max_nan(b, acc, v) if op == "reduce_max" else min_nan(b, acc, v)


@lowering("reduce_sum", "reduce_max", "reduce_min")
def _reduce(kb: KernelBuilder, node) -> None:
    (x,), (out,) = kb.inputs, kb.outputs
    b = kb.b
    rank = x.rank
    axes = {a % rank for a in node.attrs["axes"]} if rank else set()
    identity = reduce_identity(node.op, x.dtype)
    with h.counted_loop(b, kb.numel(out.shape), name="init") as i:
        kb.store(out, i, identity)
    extents = kb.extents(x.shape)
    kept = [a for a in range(rank) if a not in axes]
    kept_strides = h.row_major_strides(b, [extents[a] for a in kept])
    out_strides = [h.i64(0)] * rank
    for a, s in zip(kept, kept_strides):
        out_strides[a] = s
    in_strides = kb.strides(x.shape)
    with h.loop_nest(b, extents, name="r") as c:
        o = h.dot_index(b, c, out_strides)
        acc = kb.load(out, o)
        kb.store(out, o, _combine(b, node.op, acc, kb.load(x, h.dot_index(b, c, in_strides))))


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
