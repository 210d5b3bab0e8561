"""Lowerings of the data-movement ops: broadcast, reshape, transpose, slice, pad, concat,
gather. (constant, iota and dim_value are element generators: see elementwise.py.)

All but gather are affine copies: a loop nest over a domain where the source and destination
offsets are affine in the loop indices (strides may be symbolic). broadcast is an elementwise
loop (a group of one, so fusion treats it the same way); reshape is a view the buffer plan
usually makes free, and a memcpy when it must be materialised.

gather checks every index against the axis size BEFORE copying anything; an out-of-range
index makes the kernel return an error (the Executable raises GraphcError naming the node),
so native code never reads outside `data`.
"""
from __future__ import annotations

import numpy as np

from ir import dtypes as dt
from ir.ops.elementwise import cast_array

from . import helpers as h
from .elementwise import lower_group_node
from .kernel import ERR_INDEX_OUT_OF_RANGE, Buffer, KernelBuilder
from .registry import lowering

lowering("broadcast")(lower_group_node)


def emit_affine_copy(kb: KernelBuilder, src: Buffer, dst: Buffer, extents, src_strides,
                     dst_strides, src_base=None, dst_base=None) -> None:
    """dst[dst_base + c . dst_strides] = src[src_base + c . src_strides] for c over extents."""
    b = kb.b
    with h.loop_nest(b, extents, name="m") as c:
        s = h.dot_index(b, c, src_strides, src_base)
        d = h.dot_index(b, c, dst_strides, dst_base)
        kb.store(dst, d, kb.load(src, s))


@lowering("reshape", view_of=0)
def _reshape(kb: KernelBuilder, node) -> None:
    (src,), (dst,) = kb.inputs, kb.outputs
    nbytes = h.mul(kb.b, kb.numel(src.shape), h.i64(src.dtype.itemsize))
    h.memcpy(kb.b, dst.ptr, src.ptr, nbytes)


@lowering("transpose")
def _transpose(kb: KernelBuilder, node) -> None:
    (src,), (dst,) = kb.inputs, kb.outputs
    in_strides = kb.strides(src.shape)
    perm = node.attrs["perm"]
    emit_affine_copy(kb, src, dst, kb.extents(dst.shape), [in_strides[p] for p in perm],
                     kb.strides(dst.shape))


@lowering("slice")
def _slice(kb: KernelBuilder, node) -> None:
    (src,), (dst,) = kb.inputs, kb.outputs
    b = kb.b
    in_strides = kb.strides(src.shape)
    starts, steps = node.attrs["starts"], node.attrs["steps"]
    base = h.dot_index(b, [kb.dim(s) for s in starts], in_strides)
    src_strides = [h.mul(b, st, h.i64(step)) for st, step in zip(in_strides, steps)]
    emit_affine_copy(kb, src, dst, kb.extents(dst.shape), src_strides, kb.strides(dst.shape),
                     src_base=base)


def fill_constant(dtype, value: float):
    """The element the float attr `value` converts to in `dtype`, with cast semantics
    (float -> int truncates and saturates, NaN -> 0; -> bool is value != 0)."""
    d = dt.dtype(dtype)
    converted = cast_array(np.array(value, np.float64), d).reshape(()).item()
    return h.const_like(h.register_type(d), converted)


@lowering("pad")
def _pad(kb: KernelBuilder, node) -> None:
    (src,), (dst,) = kb.inputs, kb.outputs
    b = kb.b
    fill = fill_constant(dst.dtype, node.attrs["value"])
    with h.counted_loop(b, kb.numel(dst.shape), name="fill") as i:
        kb.store(dst, i, fill)
    out_strides = kb.strides(dst.shape)
    base = h.dot_index(b, [h.i64(lo) for lo in node.attrs["low"]], out_strides)
    emit_affine_copy(kb, src, dst, kb.extents(src.shape), kb.strides(src.shape), out_strides,
                     dst_base=base)


@lowering("concat")
def _concat(kb: KernelBuilder, node) -> None:
    (dst,) = kb.outputs
    b = kb.b
    axis = node.attrs["axis"] % dst.rank
    out_strides = kb.strides(dst.shape)
    offset = h.i64(0)
    for src in kb.inputs:
        base = h.mul(b, offset, out_strides[axis])
        emit_affine_copy(kb, src, dst, kb.extents(src.shape), kb.strides(src.shape),
                         out_strides, dst_base=base)
        offset = h.add(b, offset, kb.dim(src.shape[axis]))


@lowering("gather")
def _gather(kb: KernelBuilder, node) -> None:
    (data, idx), (dst,) = kb.inputs, kb.outputs
    b = kb.b
    axis = node.attrs["axis"] % data.rank
    outer = h.product(b, kb.extents(data.shape[:axis]))
    inner = h.product(b, kb.extents(data.shape[axis + 1:]))
    n = kb.dim(data.shape[axis])
    count = kb.numel(idx.shape)
    # validate every index first: nothing is read unless all are in range
    with h.counted_loop(b, count, name="chk") as j:
        ix = _index_value(kb, idx, j)
        kb.check(b.icmp_unsigned("<", ix, n), ERR_INDEX_OUT_OF_RANGE, ix, n, axis)
    with h.loop_nest(b, [outer, count, inner], name="g") as (o, j, t):
        ix = _index_value(kb, idx, j)
        src = h.add(b, h.mul(b, h.add(b, h.mul(b, o, n), ix), inner), t)
        out = h.add(b, h.mul(b, h.add(b, h.mul(b, o, count), j), inner), t)
        kb.store(dst, out, kb.load(data, src))


def _index_value(kb: KernelBuilder, idx: Buffer, j):
    v = kb.load(idx, j)
    return kb.b.sext(v, h.I64) if idx.dtype is dt.i32 else v
