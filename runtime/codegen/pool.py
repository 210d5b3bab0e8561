"""Lowerings of 2-D pooling and its gradients (NCHW), following ir/ops/pooling.py exactly.

Window of output (oh, ow): rows oh*sh - pad_top + [0, KH), likewise columns. Positions
outside the input are padding: -inf for max, 0 for average (this also covers ceil_mode
windows that run past the padded input).
- max_pool2d: NaN-propagating max over the window in scan order, from -inf (bit-exact with
  the reference's np.maximum chain).
- avg_pool2d: window sum in scan order divided by the window area clipped to the padded input
  (count_include_pad) or to the real input (not count_include_pad).
- max_pool2d_grad: dy goes to the window's first maximum in scan order among REAL input
  positions (padding never wins, even a window of -inf values sends dy to an element of x),
  a NaN counting as the maximum; a window with no real position sends nothing.
- avg_pool2d_grad: dy / area is added to every real input position of the window.
Gradients scatter window by window, so overlapping windows sum in a different order from the
reference: equal to rounding.
"""
from __future__ import annotations

import numpy as np

from . import helpers as h
from .kernel import KernelBuilder
from .registry import lowering
from .scalar import isnan, max_nan


class _Window:
    def __init__(self, kb: KernelBuilder, attrs, x_shape, out_hw):
        self.kb, self.b = kb, kb.b
        self.k = attrs["kernel"]
        self.s = attrs["stride"]
        self.p = attrs["padding"]                # top, left, bottom, right
        self.n, self.c = kb.dim(x_shape[0]), kb.dim(x_shape[1])
        self.hgt, self.wid = x_shape[2], x_shape[3]
        self.oh, self.ow = out_hw

    def outputs(self):
        return [self.n, self.c, h.i64(self.oh), h.i64(self.ow)]

    def taps(self):
        return [h.i64(self.k[0]), h.i64(self.k[1])]

    def position(self, oh, ow, kh, kw):
        b = self.b
        ih = b.add(b.sub(b.mul(oh, h.i64(self.s[0])), h.i64(self.p[0])), kh)
        iw = b.add(b.sub(b.mul(ow, h.i64(self.s[1])), h.i64(self.p[1])), kw)
        inside = b.and_(b.icmp_unsigned("<", ih, h.i64(self.hgt)),
                        b.icmp_unsigned("<", iw, h.i64(self.wid)))
        return ih, iw, inside

    def x_index(self, n, c, ih, iw):
        b = self.b
        plane = h.add(b, h.mul(b, n, self.c), c)
        return h.add(b, h.mul(b, h.add(b, h.mul(b, plane, h.i64(self.hgt)), ih), h.i64(self.wid)),
                     iw)

    def y_index(self, n, c, oh, ow):
        b = self.b
        plane = h.add(b, h.mul(b, n, self.c), c)
        return h.add(b, h.mul(b, h.add(b, h.mul(b, plane, h.i64(self.oh)), oh), h.i64(self.ow)),
                     ow)

    def load_or(self, buf, n, c, ih, iw, inside, fill):
        b = self.b
        safe = b.select(inside, self.x_index(n, c, ih, iw), h.i64(0))
        return b.select(inside, self.kb.load(buf, safe), fill)

    def divisor(self, oh, ow, include_pad: bool, typ):
        """Window area clipped to the padded input (include_pad) or the real input."""
        b = self.b

        def count(o, stride, pad_lo, pad_hi, k, size):
            start = b.sub(b.mul(o, h.i64(stride)), h.i64(pad_lo))
            lo, hi = (-pad_lo, size + pad_hi) if include_pad else (0, size)
            end = b.add(start, h.i64(k))
            first = b.select(b.icmp_signed(">", start, h.i64(lo)), start, h.i64(lo))
            last = b.select(b.icmp_signed("<", end, h.i64(hi)), end, h.i64(hi))
            n = b.sub(last, first)
            return b.select(b.icmp_signed(">", n, h.i64(0)), n, h.i64(0))

        rows = count(oh, self.s[0], self.p[0], self.p[2], self.k[0], self.hgt)
        cols = count(ow, self.s[1], self.p[1], self.p[3], self.k[1], self.wid)
        return b.sitofp(b.mul(rows, cols), typ)


def _zero(kb: KernelBuilder, buf) -> None:
    nbytes = h.mul(kb.b, kb.numel(buf.shape), h.i64(buf.dtype.itemsize))
    h.memset_zero(kb.b, buf.ptr, nbytes)


@lowering("max_pool2d")
def _max_pool(kb: KernelBuilder, node) -> None:
    (x,), (y,) = kb.inputs, kb.outputs
    w = _Window(kb, node.attrs, x.shape, y.shape[2:])
    b = kb.b
    typ = h.register_type(y.dtype)
    neg_inf = h.const_like(typ, -np.inf)
    acc = kb.local(typ)
    with h.loop_nest(b, w.outputs(), name="y") as (n, c, oh, ow):
        kb.put(acc, neg_inf)
        with h.loop_nest(b, w.taps(), name="t") as (kh, kw):
            ih, iw, inside = w.position(oh, ow, kh, kw)
            v = w.load_or(x, n, c, ih, iw, inside, neg_inf)
            kb.put(acc, max_nan(b, kb.get(acc, typ), v))
        kb.store(y, w.y_index(n, c, oh, ow), kb.get(acc, typ))


@lowering("avg_pool2d")
def _avg_pool(kb: KernelBuilder, node) -> None:
    (x,), (y,) = kb.inputs, kb.outputs
    w = _Window(kb, node.attrs, x.shape, y.shape[2:])
    b = kb.b
    typ = h.register_type(y.dtype)
    zero = h.const_like(typ, 0.0)
    acc = kb.local(typ)
    with h.loop_nest(b, w.outputs(), name="y") as (n, c, oh, ow):
        kb.put(acc, zero)
        with h.loop_nest(b, w.taps(), name="t") as (kh, kw):
            ih, iw, inside = w.position(oh, ow, kh, kw)
            kb.put(acc, b.fadd(kb.get(acc, typ), w.load_or(x, n, c, ih, iw, inside, zero)))
        area = w.divisor(oh, ow, node.attrs["count_include_pad"], typ)
        kb.store(y, w.y_index(n, c, oh, ow), b.fdiv(kb.get(acc, typ), area))


@lowering("max_pool2d_grad")
def _max_pool_grad(kb: KernelBuilder, node) -> None:
    (x, dy), (dx,) = kb.inputs, kb.outputs
    w = _Window(kb, node.attrs, x.shape, dy.shape[2:])
    b = kb.b
    typ = h.register_type(x.dtype)
    best, found = kb.local(typ, "best"), kb.local(h.I1, "found")
    best_h, best_w = kb.local(h.I64, "bh"), kb.local(h.I64, "bw")
    _zero(kb, dx)
    with h.loop_nest(b, w.outputs(), name="y") as (n, c, oh, ow):
        kb.put(best, h.const_like(typ, -np.inf))
        kb.put(found, h.const_like(h.I1, 0))
        kb.put(best_h, h.i64(0))
        kb.put(best_w, h.i64(0))
        with h.loop_nest(b, w.taps(), name="t") as (kh, kw):
            ih, iw, inside = w.position(oh, ow, kh, kw)
            v = w.load_or(x, n, c, ih, iw, inside, h.const_like(typ, -np.inf))
            cur, seen = kb.get(best, typ), kb.get(found, h.I1)
            # only real positions compete: the first one, then a strictly larger value or the
            # first NaN (after which nothing replaces it)
            better = b.or_(b.or_(b.fcmp_ordered(">", v, cur), isnan(b, v)), b.not_(seen))
            take = b.and_(inside, b.and_(better, b.not_(isnan(b, cur))))
            kb.put(best, b.select(take, v, cur))
            kb.put(found, b.or_(seen, inside))
            kb.put(best_h, b.select(take, kh, kb.get(best_h, h.I64)))
            kb.put(best_w, b.select(take, kw, kb.get(best_w, h.I64)))
        with b.if_then(kb.get(found, h.I1)):
            ih, iw, _ = w.position(oh, ow, kb.get(best_h, h.I64), kb.get(best_w, h.I64))
            at = w.x_index(n, c, ih, iw)
            kb.store(dx, at, b.fadd(kb.load(dx, at), kb.load(dy, w.y_index(n, c, oh, ow))))


@lowering("avg_pool2d_grad")
def _avg_pool_grad(kb: KernelBuilder, node) -> None:
    (dy,), (dx,) = kb.inputs, kb.outputs
    w = _Window(kb, node.attrs, dx.shape, dy.shape[2:])
    b = kb.b
    typ = h.register_type(dx.dtype)
    _zero(kb, dx)
    with h.loop_nest(b, w.outputs(), name="y") as (n, c, oh, ow):
        area = w.divisor(oh, ow, node.attrs["count_include_pad"], typ)
        scaled = b.fdiv(kb.load(dy, w.y_index(n, c, oh, ow)), area)
        with h.loop_nest(b, w.taps(), name="t") as (kh, kw):
            ih, iw, inside = w.position(oh, ow, kh, kw)
            with b.if_then(inside):
                at = w.x_index(n, c, ih, iw)
                kb.store(dx, at, b.fadd(kb.load(dx, at), scaled))
