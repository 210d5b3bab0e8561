"""Lowerings of conv2d and its two gradients (NCHW, OIHW).

Float convolutions with groups = 1 run on the gemm workers with im2col folded into the
packing (conv_gemm.py): vectorised, register-tiled, threaded. An epilogue is then applied by
one vectorised pass over y (lanes along ow, masked at the row end), in this kernel's own
function. Other cases (grouped convolutions, integer dtypes) use the direct loop nests below,
correct for every stride / padding / dilation / groups combination.

Geometry shared by all three: input row ih = oh*sh - pad_top + kh*dh (likewise iw). A
position outside the input is padding. The references pad with zeros and multiply them in,
so here padding contributes 0 * w (not nothing): a NaN or inf weight poisons the output
exactly as in the reference. Loads use a clamped index and a select, so nothing outside a
buffer is read. The gradient wrt the input scatters each dy element into the taps it came
from (padding taps are dropped, as the reference's crop does).
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import helpers as h
from . import conv_direct
from .conv_gemm import (ConvGeometry, can_flip, emit_conv_forward, emit_conv_grad_filter,
                        emit_conv_grad_input, flip_for_grad_input)
from .epilogue import Epilogue, OutputSite, apply, masked_load, masked_store
from .kernel import Buffer, KernelBuilder
from .registry import lowering


class _Geometry:
    """Static conv attributes and the runtime index helpers built on them."""

    def __init__(self, kb: KernelBuilder, attrs, x_shape, w_shape, out_hw):
        self.kb, self.b = kb, kb.b
        self.sh, self.sw = attrs["stride"]
        self.pt, self.pl = attrs["padding"][0], attrs["padding"][1]
        self.dh, self.dw = attrs["dilation"]
        self.groups = attrs["groups"]
        self.n = kb.dim(x_shape[0])
        self.c, self.hgt, self.wid = x_shape[1], x_shape[2], x_shape[3]
        self.o, self.cg, self.kh, self.kw = w_shape
        self.og = self.o // self.groups
        self.oh, self.ow = out_hw

    def tap(self, oh, ow, kh, kw):
        """(ih, iw, inside) for output position (oh, ow) and kernel tap (kh, kw)."""
        b = self.b
        ih = b.add(b.sub(b.mul(oh, h.i64(self.sh)), h.i64(self.pt)), b.mul(kh, h.i64(self.dh)))
        iw = b.add(b.sub(b.mul(ow, h.i64(self.sw)), h.i64(self.pl)), b.mul(kw, h.i64(self.dw)))
        inside = b.and_(b.icmp_unsigned("<", ih, h.i64(self.hgt)),
                        b.icmp_unsigned("<", iw, h.i64(self.wid)))
        return ih, iw, inside

    def x_index(self, n, ch, ih, iw):
        b = self.b
        return h.add(b, h.mul(b, h.add(b, h.mul(b, h.add(b, h.mul(b, n, h.i64(self.c)), ch),
                                                h.i64(self.hgt)), ih), h.i64(self.wid)), iw)

    def w_index(self, oc, c, kh, kw):
        b = self.b
        return h.add(b, h.mul(b, h.add(b, h.mul(b, h.add(b, h.mul(b, oc, h.i64(self.cg)), c),
                                                h.i64(self.kh)), kh), h.i64(self.kw)), kw)

    def y_index(self, n, oc, oh, ow):
        b = self.b
        return h.add(b, h.mul(b, h.add(b, h.mul(b, h.add(b, h.mul(b, n, h.i64(self.o)), oc),
                                                h.i64(self.oh)), oh), h.i64(self.ow)), ow)

    def in_channel(self, oc, c):
        """Input channel of filter channel c for output channel oc (its group's block)."""
        b = self.b
        group = b.udiv(oc, h.i64(self.og))
        return h.add(b, h.mul(b, group, h.i64(self.cg)), c)

    def load_x_or_zero(self, buf, n, ch, ih, iw, inside, typ):
        b = self.b
        safe = b.select(inside, self.x_index(n, ch, ih, iw), h.i64(0))
        return b.select(inside, self.kb.load(buf, safe), h.const_like(typ, 0.0))


def _fma(b, acc, x, y):
    return b.fadd(acc, b.fmul(x, y))


def _zero(kb: KernelBuilder, buf) -> None:
    nbytes = h.mul(kb.b, kb.numel(buf.shape), h.i64(buf.dtype.itemsize))
    h.memset_zero(kb.b, buf.ptr, nbytes)


@lowering("conv2d")
def _conv2d(kb: KernelBuilder, node) -> None:
    (x, w), (y,) = kb.inputs, kb.outputs
    emit_conv2d(kb, x, w, y, node.attrs)


def emit_conv2d(kb: KernelBuilder, x: Buffer, w: Buffer, y: Buffer, attrs,
                epilogue: Epilogue = None) -> None:
    """y = conv2d(x, w) with the op's attrs (stride, padding, dilation, groups); `epilogue`
    (see epilogue.py) maps each finished output value to the value stored, with coords
    (n, channel, oh, ow)."""
    if y.dtype.is_float and attrs["groups"] == 1:
        width = kb.target.vector_width(y.dtype.itemsize)
        if conv_direct.supports(attrs, x.shape, w.shape, width):
            geo = conv_direct.DirectGeometry(attrs, x.shape, w.shape, y.shape[2:], width)
            if conv_direct.prefers_channels(geo):
                conv_direct.emit_direct_forward_channels(kb, x, w, y, geo, epilogue=epilogue)
            else:
                conv_direct.emit_direct_forward(kb, x, w, y, geo, epilogue=epilogue)
            return
        else:
            emit_conv_forward(kb, x, w, y, ConvGeometry(attrs, x.shape, w.shape, y.shape[2:]))
        if epilogue is not None:
            _epilogue_pass(kb, y, epilogue)
        return
    g = _Geometry(kb, attrs, x.shape, w.shape, y.shape[2:])
    b = kb.b
    typ = h.register_type(y.dtype)
    acc = kb.local(typ)
    extents = [g.n, h.i64(g.o), h.i64(g.oh), h.i64(g.ow)]
    with h.loop_nest(b, extents, name="y") as (n, oc, oh, ow):
        kb.put(acc, h.const_like(typ, 0.0))
        with h.loop_nest(b, [h.i64(g.cg), h.i64(g.kh), h.i64(g.kw)], name="t") as (c, kh, kw):
            ih, iw, inside = g.tap(oh, ow, kh, kw)
            xv = g.load_x_or_zero(x, n, g.in_channel(oc, c), ih, iw, inside, typ)
            kb.put(acc, _fma(b, kb.get(acc, typ), xv, kb.load(w, g.w_index(oc, c, kh, kw))))
        at = g.y_index(n, oc, oh, ow)
        kb.store(y, at, apply(epilogue, b, kb.get(acc, typ), OutputSite((n, oc, oh, ow), at)))


def _epilogue_pass(kb: KernelBuilder, y: Buffer, epilogue: Epilogue) -> None:
    """y[n, c, oh, ow:ow+W] = epilogue(...) with each row's last vector masked."""
    b = kb.b
    width = kb.target.vector_width(y.dtype.itemsize)
    vt = ir.VectorType(h.register_type(y.dtype), width)
    n, ch, oh, ow = kb.dim(y.shape[0]), y.shape[1], y.shape[2], y.shape[3]
    lane_ids = ir.Constant(ir.VectorType(h.I64, width), [h.i64(k) for k in range(width)])
    esize = y.dtype.itemsize
    with h.loop_nest(b, [n, h.i64(ch), h.i64(oh)], name="ep") as (i, c, r):
        row = h.mul(b, h.add(b, h.mul(b, h.add(b, h.mul(b, i, h.i64(ch)), c), h.i64(oh)), r),
                    h.i64(ow))
        with h.counted_loop(b, h.i64(ow), step=width, name="epw") as j:
            mask = b.icmp_signed("<", b.add(h.splat(b, j, width), lane_ids),
                                 h.splat(b, h.i64(ow), width))
            at = h.add(b, row, j)
            ptr = h.element_ptr(b, y.ptr, at, y.dtype)
            site = OutputSite((i, c, r, j), at, width, 3, h.i64(1), mask)
            masked_store(b, apply(epilogue, b, masked_load(b, ptr, vt, mask, esize), site), ptr,
                         mask, esize)


@lowering("conv2d_grad_input")
def _conv2d_grad_input(kb: KernelBuilder, node) -> None:
    (dy, w), (dx,) = kb.inputs, kb.outputs
    if dx.dtype.is_float and node.attrs["groups"] == 1:
        # The fast forms run over dy padded with zeros (or taps zeroed in packing), so a tap
        # the reference crops away still multiplies its weight by 0: harmless unless a weight
        # is NaN or inf (0 * inf = NaN). Then the exact loop runs, which skips those taps.
        with kb.b.if_else(_all_finite(kb, w)) as (fast, exact):
            with fast:
                _grad_input_fast(kb, node, dy, w, dx)
            with exact:
                _grad_input_exact(kb, node, dy, w, dx)
        return
    _grad_input_exact(kb, node, dy, w, dx)


def _all_finite(kb: KernelBuilder, buf) -> ir.Value:
    """i1: no element of the float buffer `buf` is NaN or +-inf (x - x == 0 exactly then)."""
    b = kb.b
    flag = kb.local(h.I8, "finite")
    b.store(ir.Constant(h.I8, 1), flag)
    with h.counted_loop(b, kb.numel(buf.shape), name="finite") as i:
        x = kb.load(buf, i)
        ok = b.fcmp_ordered("==", b.fsub(x, x), h.const_like(x.type, 0.0))
        b.store(b.and_(b.load(flag, typ=h.I8), b.zext(ok, h.I8)), flag)
    return b.icmp_unsigned("!=", b.load(flag, typ=h.I8), ir.Constant(h.I8, 0))


def _grad_input_fast(kb: KernelBuilder, node, dy, w, dx) -> None:
    geo = ConvGeometry(node.attrs, dx.shape, w.shape, dy.shape[2:])
    width = kb.target.vector_width(dx.dtype.itemsize)
    if can_flip(geo):
        flipped, attrs = flip_for_grad_input(kb, w, dx.dtype, geo)
        t_w = (geo.c, geo.o, geo.kh, geo.kw)
        if conv_direct.supports(attrs, dy.shape, t_w, width):
            dgeo = conv_direct.DirectGeometry(attrs, dy.shape, t_w, dx.shape[2:], width)
            conv_direct.emit_direct_forward(kb, dy, None, dx, dgeo, w_ptr=flipped,
                                            skip_rows=True)
            return
    emit_conv_grad_input(kb, dy, w, dx, geo)


def _grad_input_exact(kb: KernelBuilder, node, dy, w, dx) -> None:
    """dx by scattering every dy element through the taps that land inside the input (the
    reference's sum, in another order): any dtype and groups."""
    g = _Geometry(kb, node.attrs, dx.shape, w.shape, dy.shape[2:])
    b = kb.b
    _zero(kb, dx)
    extents = [g.n, h.i64(g.o), h.i64(g.oh), h.i64(g.ow)]
    with h.loop_nest(b, extents, name="dy") as (n, oc, oh, ow):
        d = kb.load(dy, g.y_index(n, oc, oh, ow))
        with h.loop_nest(b, [h.i64(g.cg), h.i64(g.kh), h.i64(g.kw)], name="t") as (c, kh, kw):
            ih, iw, inside = g.tap(oh, ow, kh, kw)
            with b.if_then(inside):
                at = g.x_index(n, g.in_channel(oc, c), ih, iw)
                kb.store(dx, at, _fma(b, kb.load(dx, at), d, kb.load(w, g.w_index(oc, c, kh, kw))))


@lowering("conv2d_grad_filter")
def _conv2d_grad_filter(kb: KernelBuilder, node) -> None:
    (x, dy), (dw,) = kb.inputs, kb.outputs
    if dw.dtype.is_float and node.attrs["groups"] == 1:
        width = kb.target.vector_width(dw.dtype.itemsize)
        if conv_direct.supports(node.attrs, x.shape, dw.shape, width):
            geo = conv_direct.DirectGeometry(node.attrs, x.shape, dw.shape, dy.shape[2:], width)
            if conv_direct.filter_prefers_channels(geo):
                conv_direct.emit_direct_grad_filter_channels(kb, x, dy, dw, geo)
            else:
                conv_direct.emit_direct_grad_filter(kb, x, dy, dw, geo)
            return
        emit_conv_grad_filter(kb, x, dy, dw, ConvGeometry(node.attrs, x.shape, dw.shape,
                                                          dy.shape[2:]))
        return
    g = _Geometry(kb, node.attrs, x.shape, dw.shape, dy.shape[2:])
    b = kb.b
    typ = h.register_type(dw.dtype)
    acc = kb.local(typ)
    extents = [h.i64(g.o), h.i64(g.cg), h.i64(g.kh), h.i64(g.kw)]
    with h.loop_nest(b, extents, name="w") as (oc, c, kh, kw):
        kb.put(acc, h.const_like(typ, 0.0))
        ch = g.in_channel(oc, c)
        with h.loop_nest(b, [g.n, h.i64(g.oh), h.i64(g.ow)], name="s") as (n, oh, ow):
            ih, iw, inside = g.tap(oh, ow, kh, kw)
            xv = g.load_x_or_zero(x, n, ch, ih, iw, inside, typ)
            kb.put(acc, _fma(b, kb.get(acc, typ), kb.load(dy, g.y_index(n, oc, oh, ow)), xv))
        kb.store(dw, g.w_index(oc, c, kh, kw), kb.get(acc, typ))

