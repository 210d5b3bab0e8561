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

Vectorised along the output width: one `<W x T>` vector holds W consecutive outputs of a row
(masked at the row end). For each window row kh the input "span" those W windows cover,
(W-1)*sw + KW consecutive elements, is ONE masked load (padding and positions past the row
read nothing and give the fill value); the tap kw of every lane is then a shufflevector of
the span (lane l takes element l*sw + kw). Gradients: when windows do not overlap (KH <= sh
and KW <= sw, e.g. 2x2 stride 2) each input element gets at most one contribution, so the
row of dx a span covers is built with one shuffle and written with one masked store; when
they overlap, contributions are added lane by lane in window order (the reference's order).
Every sum runs in the same order as the reference, so results are bit-exact except for the
gradients of overlapping windows (summed in a different order: equal to rounding).

Threads: planes (n, c) are split over the pool (parallel.py).
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from . import helpers as h
from .epilogue import masked_load, masked_store
from .kernel import KernelBuilder
from .parallel import chunking, parallel_for
from .registry import lowering
from .scalar import isnan, max_nan


class _Pool:
    """Static window geometry plus the vector helpers of one pooling kernel."""

    def __init__(self, kb: KernelBuilder, attrs, x_shape, out_hw, dtype):
        self.kb = kb
        self.kh, self.kw = attrs["kernel"]
        self.sh, self.sw = attrs["stride"]
        self.pt, self.pl, self.pb, self.pr = attrs["padding"]
        self.hgt, self.wid = x_shape[2], x_shape[3]
        self.oh, self.ow = out_hw
        self.dtype = dtype
        self.w = kb.target.vector_width(dtype.itemsize)
        self.esize = dtype.itemsize
        self.ftype = h.register_type(dtype)
        self.vt = ir.VectorType(self.ftype, self.w)
        span = (self.w - 1) * self.sw + self.kw
        self.span = -(-span // self.w) * self.w          # whole vectors: cheap to legalise
        self.st = ir.VectorType(self.ftype, self.span)
        self.blocks = -(-self.ow // self.w)
        self.overlap = self.kh > self.sh or self.kw > self.sw
        self.planes = h.mul(kb.b, kb.dim(x_shape[0]), kb.dim(x_shape[1]))

    # index vectors ---------------------------------------------------------------------------
    def lanes(self, n, base=0):
        return ir.Constant(ir.VectorType(h.I64, n), [h.i64(base + k) for k in range(n)])

    def out_valid(self, b, ow0):
        """<W x i1>: lane l is a real output (ow0 + l < OW)."""
        return b.icmp_signed("<", b.add(h.splat(b, ow0, self.w), self.lanes(self.w)),
                             h.splat(b, h.i64(self.ow), self.w))

    def span_mask(self, b, ih, col0):
        """<span x i1>: element e of the span (input column col0 + e of row ih) is real.
        (i32 lanes: half the registers of i64; columns of one row always fit.)"""
        lanes = ir.Constant(ir.VectorType(h.I32, self.span), [h.i32(k) for k in range(self.span)])
        cols = b.add(h.splat(b, b.trunc(col0, h.I32), self.span), lanes)
        inside = b.icmp_unsigned("<", cols, h.splat(b, h.i32(self.wid), self.span))
        row_ok = b.icmp_unsigned("<", ih, h.i64(self.hgt))
        return b.and_(inside, h.splat(b, row_ok, self.span))

    def tap(self, b, span, kw):
        """Lane l <- span element l*sw + kw."""
        idx = ir.Constant(ir.VectorType(h.I32, self.w), [h.i32(l * self.sw + kw)
                                                         for l in range(self.w)])
        return b.shuffle_vector(span, span, idx)

    def row_start(self, b, oh, kh):
        return b.add(b.sub(b.mul(oh, h.i64(self.sh)), h.i64(self.pt)), h.i64(kh))

    def col_start(self, b, ow0):
        return b.sub(b.mul(ow0, h.i64(self.sw)), h.i64(self.pl))

    def load_span(self, b, plane_ptr, ih, col0, fill):
        mask = self.span_mask(b, ih, col0)
        ptr = b.gep(plane_ptr, [b.add(b.mul(ih, h.i64(self.wid)), col0)],
                    source_etype=self.ftype)
        return masked_load(b, ptr, self.st, mask, self.esize, h.const_like(self.st, fill)), mask

    def divisor(self, b, oh, ow0, include_pad: bool):
        """<W x T> window areas clipped to the padded input (include_pad) or the input."""
        def count(o, stride, pad_lo, pad_hi, k, size, vec):
            lo_b, hi_b = (-pad_lo, size + pad_hi) if include_pad else (0, size)
            if vec:
                c = lambda v: h.splat(b, h.i64(v), self.w)  # noqa: E731
                start = b.sub(b.mul(o, c(stride)), c(pad_lo))
                end = b.add(start, c(k))
                first = b.select(b.icmp_signed(">", start, c(lo_b)), start, c(lo_b))
                last = b.select(b.icmp_signed("<", end, c(hi_b)), end, c(hi_b))
                n = b.sub(last, first)
                return b.select(b.icmp_signed(">", n, c(0)), n, c(0))
            start = b.sub(b.mul(o, h.i64(stride)), h.i64(pad_lo))
            end = b.add(start, h.i64(k))
            first = b.select(b.icmp_signed(">", start, h.i64(lo_b)), start, h.i64(lo_b))
            last = b.select(b.icmp_signed("<", end, h.i64(hi_b)), end, h.i64(hi_b))
            n = b.sub(last, first)
            return b.select(b.icmp_signed(">", n, h.i64(0)), n, h.i64(0))
        rows = count(oh, self.sh, self.pt, self.pb, self.kh, self.hgt, False)
        ows = b.add(h.splat(b, ow0, self.w), self.lanes(self.w))
        cols = count(ows, self.sw, self.pl, self.pr, self.kw, self.wid, True)
        return b.sitofp(b.mul(h.splat(b, rows, self.w), cols), self.vt)


def _over_planes(kb: KernelBuilder, pool: _Pool, per_plane_elems: int, body) -> None:
    """Run `body(wkb, plane)` for every (n, c) plane, split over the pool's threads."""
    b = kb.b
    chunk, items = chunking(b, pool.planes, 1, 1, max_items=32)
    work_ns = b.sdiv(b.mul(pool.planes, h.i64(per_plane_elems)), h.i64(2))

    def run(wkb, item, args):
        wb = wkb.b
        lo = wb.mul(item, args[0])
        hi = wb.add(lo, args[0])
        hi = wb.select(wb.icmp_signed("<", hi, args[1]), hi, args[1])
        with h.counted_loop(wb, hi, start=lo, name="plane") as plane:
            body(wkb, plane)
    parallel_for(kb, items, work_ns, run, args=[chunk, pool.planes], name="pool")


def _rows(b, pool: _Pool, fn):
    """fn(oh, ow0) for every output row and vector block of the row."""
    with h.counted_loop(b, h.i64(pool.oh), name="oh") as oh:
        with h.counted_loop(b, h.i64(pool.blocks * pool.w), step=pool.w, name="ow") as ow0:
            fn(oh, ow0)


def _plane_ptr(b, pool, buf, plane, hw):
    return b.gep(buf.ptr, [b.mul(plane, h.i64(hw))], inbounds=True, source_etype=pool.ftype)


@lowering("max_pool2d", "avg_pool2d")
def _pool_forward(kb: KernelBuilder, node) -> None:
    x, y = kb.inputs[0], kb.outputs[0]
    pool = _Pool(kb, node.attrs, x.shape, y.shape[2:], x.dtype)
    is_max = node.op == "max_pool2d"
    include_pad = node.attrs.get("count_include_pad", True)
    fill = -np.inf if is_max else 0.0

    def plane_body(wkb, plane):
        b = wkb.b
        xw, yw = wkb.remap(x), wkb.remap(y)
        xp = _plane_ptr(b, pool, xw, plane, pool.hgt * pool.wid)
        yp = _plane_ptr(b, pool, yw, plane, pool.oh * pool.ow)

        def block(oh, ow0):
            acc = h.const_like(pool.vt, fill)
            col0 = pool.col_start(b, ow0)
            for kh in range(pool.kh):
                span, _ = pool.load_span(b, xp, pool.row_start(b, oh, kh), col0, fill)
                for kw in range(pool.kw):
                    v = pool.tap(b, span, kw)
                    acc = max_nan(b, acc, v) if is_max else b.fadd(acc, v)
            if not is_max:
                acc = b.fdiv(acc, pool.divisor(b, oh, ow0, include_pad))
            out = b.gep(yp, [b.add(b.mul(oh, h.i64(pool.ow)), ow0)], source_etype=pool.ftype)
            masked_store(b, acc, out, pool.out_valid(b, ow0), pool.esize)
        _rows(b, pool, block)
    _over_planes(kb, pool, pool.oh * pool.ow * pool.kh * pool.kw, plane_body)


def _zero_plane(b, pool, ptr, n):
    h.memset_zero(b, ptr, h.i64(n * pool.esize))


def _span_scatter(b, pool, dxp, ih, col0, vals, valid):
    """dx row ih, columns col0 + e: write span element e where `valid` (non-overlapping
    windows: each element is written by at most one window)."""
    ptr = b.gep(dxp, [b.add(b.mul(ih, h.i64(pool.wid)), col0)], source_etype=pool.ftype)
    masked_store(b, vals, ptr, valid, pool.esize)


def _lane_adds(b, pool, dxp, index, vals, mask):
    """dx[index[l]] += vals[l] for the lanes in `mask`, in lane order (overlapping windows)."""
    for lane in range(pool.w):
        take = b.extract_element(mask, h.i32(lane))
        with b.if_then(take):
            p = b.gep(dxp, [b.extract_element(index, h.i32(lane))], source_etype=pool.ftype)
            old = b.load(p, typ=pool.ftype, align=pool.esize)
            b.store(b.fadd(old, b.extract_element(vals, h.i32(lane))), p, align=pool.esize)


def _spread(pool, b, lane_vals):
    """<span x T>: element e <- lane_vals[e // sw] (the lane whose window covers it)."""
    idx = ir.Constant(ir.VectorType(h.I32, pool.span),
                      [h.i32(min(e // pool.sw, pool.w - 1)) for e in range(pool.span)])
    return b.shuffle_vector(lane_vals, lane_vals, idx)


def _covered(pool, b, kw_vec_of_lane=None):
    """<span x i1> constant: element e is tap (e % sw) < KW of lane e // sw < W."""
    return ir.Constant(ir.VectorType(h.I1, pool.span),
                       [ir.Constant(h.I1, int(e % pool.sw < pool.kw and e // pool.sw < pool.w))
                        for e in range(pool.span)])


@lowering("max_pool2d_grad")
def _max_pool_grad(kb: KernelBuilder, node) -> None:
    (x, dy), (dx,) = kb.inputs, kb.outputs
    pool = _Pool(kb, node.attrs, x.shape, dy.shape[2:], x.dtype)
    i32v = ir.VectorType(h.I32, pool.w)
    i1v = ir.VectorType(h.I1, pool.w)
    # every input element in exactly one window: the span stores write all of dx
    tiled = (pool.kh, pool.kw) == (pool.sh, pool.sw) and not any(node.attrs["padding"]) \
        and pool.hgt == pool.oh * pool.sh and pool.wid == pool.ow * pool.sw

    def plane_body(wkb, plane):
        b = wkb.b
        xw, dyw, dxw = wkb.remap(x), wkb.remap(dy), wkb.remap(dx)
        hw = pool.hgt * pool.wid
        xp, dxp = _plane_ptr(b, pool, xw, plane, hw), _plane_ptr(b, pool, dxw, plane, hw)
        dyp = _plane_ptr(b, pool, dyw, plane, pool.oh * pool.ow)
        if pool.overlap or not tiled:
            _zero_plane(b, pool, dxp, hw)

        def block(oh, ow0):
            col0 = pool.col_start(b, ow0)
            best = h.const_like(pool.vt, -np.inf)
            seen = ir.Constant(i1v, [ir.Constant(h.I1, 0)] * pool.w)
            bh = bw = ir.Constant(i32v, [h.i32(0)] * pool.w)
            for kh in range(pool.kh):
                span, smask = pool.load_span(b, xp, pool.row_start(b, oh, kh), col0, -np.inf)
                for kw in range(pool.kw):
                    v = pool.tap(b, span, kw)
                    inside = pool.tap(b, smask, kw)
                    # only real positions compete: the first, then a strictly larger value or
                    # the first NaN (after which nothing replaces it)
                    better = b.or_(b.or_(b.fcmp_ordered(">", v, best), isnan(b, v)),
                                   b.not_(seen))
                    take = b.and_(inside, b.and_(better, b.not_(isnan(b, best))))
                    best = b.select(take, v, best)
                    seen = b.or_(seen, inside)
                    bh = b.select(take, h.const_like(i32v, kh), bh)
                    bw = b.select(take, h.const_like(i32v, kw), bw)
            valid = pool.out_valid(b, ow0)
            send = b.and_(seen, valid)
            grad = masked_load(b, b.gep(dyp, [b.add(b.mul(oh, h.i64(pool.ow)), ow0)],
                                        source_etype=pool.ftype), pool.vt, valid, pool.esize)
            grad = b.fadd(h.const_like(pool.vt, 0.0), grad)       # 0 + dy, as the reference
            if pool.overlap:
                ows = b.add(h.splat(b, ow0, pool.w), pool.lanes(pool.w))
                ih = b.add(h.splat(b, pool.row_start(b, oh, 0), pool.w), b.sext(bh, ows.type))
                iw = b.add(b.sub(b.mul(ows, h.splat(b, h.i64(pool.sw), pool.w)),
                                 h.splat(b, h.i64(pool.pl), pool.w)), b.sext(bw, ows.type))
                index = b.add(b.mul(ih, h.splat(b, h.i64(pool.wid), pool.w)), iw)
                _lane_adds(b, pool, dxp, index, grad, send)
                return
            # non-overlapping: row kh of the windows gets, at span element e (lane e // sw,
            # tap e % sw), that lane's dy if its maximum is that tap
            lane_grad = _spread(pool, b, grad)
            lane_h, lane_w = _spread(pool, b, bh), _spread(pool, b, bw)
            lane_send = _spread(pool, b, send)
            taps = ir.Constant(ir.VectorType(h.I32, pool.span),
                               [h.i32(e % pool.sw) for e in range(pool.span)])
            zero = h.const_like(pool.st, 0.0)
            for kh in range(pool.kh):
                ih = pool.row_start(b, oh, kh)
                mask = b.and_(pool.span_mask(b, ih, col0), _covered(pool, b))
                mine = b.and_(lane_send, b.and_(
                    b.icmp_signed("==", lane_h, h.const_like(lane_h.type, kh)),
                    b.icmp_signed("==", lane_w, taps)))
                lane_ok = _spread(pool, b, valid)
                _span_scatter(b, pool, dxp, ih, col0, b.select(mine, lane_grad, zero),
                              b.and_(mask, lane_ok))
        _rows(b, pool, block)
    _over_planes(kb, pool, pool.oh * pool.ow * pool.kh * pool.kw * 2, plane_body)


@lowering("avg_pool2d_grad")
def _avg_pool_grad(kb: KernelBuilder, node) -> None:
    (dy,), (dx,) = kb.inputs, kb.outputs
    pool = _Pool(kb, node.attrs, dx.shape, dy.shape[2:], dx.dtype)
    include_pad = node.attrs["count_include_pad"]

    def plane_body(wkb, plane):
        b = wkb.b
        dyw, dxw = wkb.remap(dy), wkb.remap(dx)
        hw = pool.hgt * pool.wid
        dxp = _plane_ptr(b, pool, dxw, plane, hw)
        dyp = _plane_ptr(b, pool, dyw, plane, pool.oh * pool.ow)
        _zero_plane(b, pool, dxp, hw)

        def block(oh, ow0):
            col0 = pool.col_start(b, ow0)
            valid = pool.out_valid(b, ow0)
            grad = masked_load(b, b.gep(dyp, [b.add(b.mul(oh, h.i64(pool.ow)), ow0)],
                                        source_etype=pool.ftype), pool.vt, valid, pool.esize)
            scaled = b.fdiv(grad, pool.divisor(b, oh, ow0, include_pad))
            if pool.overlap:
                ows = b.add(h.splat(b, ow0, pool.w), pool.lanes(pool.w))
                for kh in range(pool.kh):
                    ih = pool.row_start(b, oh, kh)
                    row_ok = b.icmp_unsigned("<", ih, h.i64(pool.hgt))
                    for kw in range(pool.kw):
                        iw = b.add(b.sub(b.mul(ows, h.splat(b, h.i64(pool.sw), pool.w)),
                                         h.splat(b, h.i64(pool.pl), pool.w)),
                                   h.splat(b, h.i64(kw), pool.w))
                        inside = b.and_(b.icmp_unsigned("<", iw, h.splat(b, h.i64(pool.wid),
                                                                         pool.w)),
                                        h.splat(b, row_ok, pool.w))
                        index = b.add(h.splat(b, b.mul(ih, h.i64(pool.wid)), pool.w), iw)
                        _lane_adds(b, pool, dxp, index, scaled, b.and_(inside, valid))
                return
            spread = b.fadd(h.const_like(pool.st, 0.0), _spread(pool, b, scaled))
            lane_ok = _spread(pool, b, valid)
            for kh in range(pool.kh):
                ih = pool.row_start(b, oh, kh)
                mask = b.and_(b.and_(pool.span_mask(b, ih, col0), _covered(pool, b)), lane_ok)
                _span_scatter(b, pool, dxp, ih, col0, spread, mask)
        _rows(b, pool, block)
    _over_planes(kb, pool, pool.oh * pool.ow * pool.kh * pool.kw * 2, plane_body)
