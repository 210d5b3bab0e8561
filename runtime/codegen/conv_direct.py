"""Direct convolutions for unit stride, vectorised along the output width (no im2col, no
packing, no scratch memory).

NCHW input x[N, C, H, W], OIHW weights w[O, C, KH, KW], output y[N, O, OH, OW], groups = 1,
stride 1 (any padding and dilation). An output row is cut into SEG = ceil(OW / W) segments
of W lanes; a register tile is MR output channels x NV segments (whole output rows, so the
segment of every vector, and with it its column masks, is known at compile time):

    conv2d:             acc[r][v] += w[o0+r, c, kh, kw] (broadcast)
                                     * x[n, c, oh_v + kh*dh - pt, ow0_v + kw*dw - pl + lane]
    conv2d_grad_filter: acc[r][kw] += dy[n, o0+r, oh, ow0 + lane]
                                      * x[n, c, oh + kh*dh - pt, ow0 + kw*dw - pl + lane]
                        summed over n, oh and segments in the lanes, then across the lanes

The x vector of a tap is ONE masked load straight from x: lanes whose column falls in the
padding (a compile-time mask per segment and kw) or whose row does (a run-time test per row
and kh) read nothing and give 0, so padding contributes 0 * w exactly as in the reference (a
NaN or inf weight still poisons the outputs it touches). conv2d_grad_input with unit stride
and dilation is a conv2d of dy with the flipped, transposed weights (conv.py builds those).

Threads: conv2d splits over images, conv2d_grad_filter over (channel block, c, kh) tiles
(each dw element is written by exactly one tile: deterministic whatever the thread count).
Float sums run in another order than the reference (fused multiply-adds; the filter gradient
also sums in W lanes), so results agree to rounding (the `accum` tolerance).
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import helpers as h
from .epilogue import OutputSite, apply, masked_load, masked_store
from .parallel import parallel_for
from .reduce import horizontal

MAX_ACCUMULATORS = 24             # of the 32 vector registers (AVX-512)
ENABLED = True                    # False: every convolution takes the gemm path (tests)


class DirectGeometry:
    """Static geometry of a unit-stride convolution (x, w, y as forward conv2d sees them)."""

    def __init__(self, attrs, x_shape, w_shape, out_hw, width: int):
        self.sh, self.sw = attrs["stride"]
        self.pt, self.pl = attrs["padding"][0], attrs["padding"][1]
        self.dh, self.dw = attrs["dilation"]
        self.c, self.hgt, self.wid = x_shape[1], x_shape[2], x_shape[3]
        self.o, _, self.kh, self.kw = w_shape
        self.oh, self.ow = out_hw
        self.ckk = self.c * self.kh * self.kw
        self.w = width
        self.seg = -(-self.ow // width)

    def col_mask(self, seg: int, kw: int) -> ir.Constant:
        """<W x i1>: lane l of segment `seg` reads a real input column at tap kw."""
        bits = []
        for lane in range(self.w):
            ow = seg * self.w + lane
            col = ow + kw * self.dw - self.pl
            bits.append(ir.Constant(h.I1, int(ow < self.ow and 0 <= col < self.wid)))
        return ir.Constant(ir.VectorType(h.I1, self.w), bits)

    def out_mask(self, seg: int) -> ir.Constant:
        return ir.Constant(ir.VectorType(h.I1, self.w),
                           [ir.Constant(h.I1, int(seg * self.w + k < self.ow))
                            for k in range(self.w)])


def supports(attrs, x_shape, w_shape, width: int) -> bool:
    """Unit stride, groups 1, and channel counts / widths where lanes are well used."""
    if not ENABLED or tuple(attrs["stride"]) != (1, 1) or attrs["groups"] != 1:
        return False
    if not all(isinstance(d, int) for d in tuple(x_shape[1:]) + tuple(w_shape)):
        return False
    c, kh, kw = w_shape[1], w_shape[2], w_shape[3]
    return c * kh * kw <= 2048


def _row_ok(b, ih, hgt):
    return b.icmp_unsigned("<", ih, h.i64(hgt))


def _tile_shape(g: DirectGeometry, rows_wanted: int) -> tuple:
    """(MR, output rows per tile) within the accumulator budget."""
    mr = min(rows_wanted, 8)
    rows = max(1, min(g.oh, MAX_ACCUMULATORS // (mr * g.seg)))
    while mr * rows * g.seg > MAX_ACCUMULATORS and mr > 1:
        mr -= 1
    return mr, rows


def emit_direct_forward(kb, x, w, y, g: DirectGeometry, w_ptr=None, epilogue=None) -> None:
    """y = conv2d(x, w) (unit stride); `w_ptr` replaces w's pointer (e.g. flipped weights
    built in the kernel's frame); x, w, y are the kernel's Buffers. `epilogue` (epilogue.py)
    is applied to each finished vector in the tile's store phase (coords (n, o, oh, ow0),
    lanes along ow, masked at the row end)."""
    b = kb.b
    ftype = h.register_type(y.dtype)
    n = kb.dim(x.shape[0])
    w_arg = w_ptr if w_ptr is not None else w.ptr
    mr, rows = _tile_shape(g, g.o)
    work_ns = b.sdiv(b.mul(n, h.i64(2 * g.o * g.oh * g.ow * g.ckk)), h.i64(60))

    def body(wkb, item, args):
        wb = wkb.b
        xw, yw = wkb.remap(x), wkb.remap(y)
        weights = wb.inttoptr(args[0], h.PTR)
        _forward_image(wb, g, ftype, xw.ptr, weights, yw.ptr, item, mr, rows, y.dtype.itemsize,
                       epilogue)
    parallel_for(kb, n, work_ns, body, args=[b.ptrtoint(w_arg, h.I64)], name="dconv")


def _forward_image(b, g, ftype, x_ptr, w_ptr, y_ptr, n, mr, rows, esize, epilogue) -> None:
    vt = ir.VectorType(ftype, g.w)
    fma = h.declare(b.module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])
    x_img = b.gep(x_ptr, [b.mul(n, h.i64(g.c * g.hgt * g.wid))], inbounds=True,
                  source_etype=ftype)
    y_img = b.gep(y_ptr, [b.mul(n, h.i64(g.o * g.oh * g.ow))], inbounds=True,
                  source_etype=ftype)

    def tile(o0, oh0, n_rows, n_out):
        """Output channels o0..o0+n_out, rows oh0..oh0+n_rows (all segments)."""
        segs = [(r, s) for r in range(n_rows) for s in range(g.seg)]
        zero = h.const_like(vt, 0.0)
        fn = b.function
        pre = b.block
        c_body = fn.append_basic_block("c.body")
        c_done = fn.append_basic_block("c.done")
        b.branch(c_body)
        b.position_at_end(c_body)
        c = b.phi(h.I64, name="c")
        c.add_incoming(h.i64(0), pre)
        accs = []
        for _ in range(n_out):
            row = []
            for _ in segs:
                phi = b.phi(vt)
                phi.add_incoming(zero, pre)
                row.append(phi)
            accs.append(row)
        cur = [list(r) for r in accs]
        x_plane = b.gep(x_img, [b.mul(c, h.i64(g.hgt * g.wid))], inbounds=True,
                        source_etype=ftype)
        w_c = b.gep(w_ptr, [b.mul(c, h.i64(g.kh * g.kw))], inbounds=True, source_etype=ftype)
        for kh in range(g.kh):
            row_oks = []
            row_ptrs = []
            for r in range(n_rows):
                ih = b.add(oh0, h.i64(r + kh * g.dh - g.pt))
                row_oks.append(h.splat(b, _row_ok(b, ih, g.hgt), g.w))
                row_ptrs.append(b.gep(x_plane, [b.mul(ih, h.i64(g.wid))], source_etype=ftype))
            for kw in range(g.kw):
                bvecs = []
                for r, s in segs:
                    p = b.gep(row_ptrs[r], [h.i64(s * g.w + kw * g.dw - g.pl)],
                              source_etype=ftype)
                    mask = b.and_(g.col_mask(s, kw), row_oks[r])
                    bvecs.append(masked_load(b, p, vt, mask, esize))
                for o in range(n_out):
                    wp = b.gep(w_c, [h.i64((o0 + o) * g.ckk + kh * g.kw + kw)], inbounds=True,
                               source_etype=ftype)
                    a = h.splat(b, b.load(wp, typ=ftype, align=esize), g.w)
                    for v in range(len(segs)):
                        cur[o][v] = b.call(fma, [a, bvecs[v], cur[o][v]])
        c_next = b.add(c, h.i64(1))
        c.add_incoming(c_next, b.block)
        for o in range(n_out):
            for v in range(len(segs)):
                accs[o][v].add_incoming(cur[o][v], b.block)
        b.cbranch(b.icmp_signed("<", c_next, h.i64(g.c)), c_body, c_done)
        b.position_at_end(c_done)
        for o in range(n_out):
            for v, (r, s) in enumerate(segs):
                oh = b.add(oh0, h.i64(r))
                at = b.add(b.mul(b.add(h.i64((o0 + o) * g.oh), oh), h.i64(g.ow)),
                           h.i64(s * g.w))
                p = b.gep(y_img, [at], inbounds=True, source_etype=ftype)
                value = cur[o][v]
                if epilogue is not None:
                    index = b.add(b.mul(n, h.i64(g.o * g.oh * g.ow)), at)
                    mask = g.out_mask(s) if (s + 1) * g.w > g.ow else None
                    site = OutputSite((n, h.i64(o0 + o), oh, h.i64(s * g.w)), index, g.w, 3,
                                      h.i64(1), mask)
                    value = apply(epilogue, b, value, site)
                masked_store(b, value, p, g.out_mask(s), esize)

    full_rows = g.oh - g.oh % rows
    for o0 in range(0, g.o, mr):
        n_out = min(mr, g.o - o0)
        if full_rows:
            with h.counted_loop(b, h.i64(full_rows), step=rows, name="oh") as oh0:
                tile(o0, oh0, rows, n_out)
        if g.oh % rows:
            tile(o0, h.i64(full_rows), g.oh % rows, n_out)


def emit_direct_grad_filter(kb, x, dy, dw, g: DirectGeometry) -> None:
    """dw[o, c, kh, kw] = sum over n, oh, ow of dy[n, o, oh, ow] * x[n, c, ih, iw]."""
    b = kb.b
    ftype = h.register_type(dw.dtype)
    n = kb.dim(x.shape[0])
    mr = max(1, min(g.o, MAX_ACCUMULATORS // g.kw, 6))
    blocks = -(-g.o // mr)
    items = h.i64(blocks * g.c * g.kh)
    work_ns = b.sdiv(b.mul(n, h.i64(2 * g.o * g.oh * g.ow * g.ckk)), h.i64(60))

    def body(wkb, item, args):
        wb = wkb.b
        xw, dyw, dww = wkb.remap(x), wkb.remap(dy), wkb.remap(dw)
        kh = wb.urem(item, h.i64(g.kh))
        rest = wb.udiv(item, h.i64(g.kh))
        c = wb.urem(rest, h.i64(g.c))
        blk = wb.udiv(rest, h.i64(g.c))
        o0 = wb.mul(blk, h.i64(mr))
        n_w = wkb.dim(x.shape[0])
        last = g.o - (blocks - 1) * mr
        if last == mr:
            _filter_tile(wkb, g, ftype, xw, dyw, dww, n_w, o0, c, kh, mr)
        else:
            with wb.if_else(wb.icmp_signed("<", blk, h.i64(blocks - 1))) as (full, tail):
                with full:
                    _filter_tile(wkb, g, ftype, xw, dyw, dww, n_w, o0, c, kh, mr)
                with tail:
                    _filter_tile(wkb, g, ftype, xw, dyw, dww, n_w, o0, c, kh, last)
    parallel_for(kb, items, work_ns, body, name="dfilt")


def _filter_tile(wkb, g, ftype, x, dy, dw, n, o0, c, kh, n_out) -> None:
    b = wkb.b
    esize = dw.dtype.itemsize
    vt = ir.VectorType(ftype, g.w)
    fma = h.declare(b.module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])
    slots = [[wkb.local(vt, "facc") for _ in range(g.kw)] for _ in range(n_out)]
    for row in slots:
        for s in row:
            wkb.put(s, h.const_like(vt, 0.0))
    with h.counted_loop(b, n, name="fn") as img:
        x_plane = b.gep(x.ptr, [b.mul(b.add(b.mul(img, h.i64(g.c)), c), h.i64(g.hgt * g.wid))],
                        inbounds=True, source_etype=ftype)
        dy_img = b.gep(dy.ptr, [b.mul(b.add(b.mul(img, h.i64(g.o)), o0), h.i64(g.oh * g.ow))],
                       inbounds=True, source_etype=ftype)
        with h.counted_loop(b, h.i64(g.oh), name="foh") as oh:
            ih = b.add(oh, b.sub(b.mul(kh, h.i64(g.dh)), h.i64(g.pt)))
            row_ok = h.splat(b, _row_ok(b, ih, g.hgt), g.w)
            x_row = b.gep(x_plane, [b.mul(ih, h.i64(g.wid))], source_etype=ftype)
            accs = [[wkb.get(s, vt) for s in row] for row in slots]
            for s in range(g.seg):
                dys = []
                for o in range(n_out):
                    p = b.gep(dy_img, [b.add(b.mul(oh, h.i64(g.ow)),
                                             h.i64(o * g.oh * g.ow + s * g.w))],
                              inbounds=True, source_etype=ftype)
                    dys.append(masked_load(b, p, vt, g.out_mask(s), esize))
                for kw in range(g.kw):
                    p = b.gep(x_row, [h.i64(s * g.w + kw * g.dw - g.pl)], source_etype=ftype)
                    xv = masked_load(b, p, vt, b.and_(g.col_mask(s, kw), row_ok), esize)
                    for o in range(n_out):
                        accs[o][kw] = b.call(fma, [dys[o], xv, accs[o][kw]])
            for o in range(n_out):
                for kw in range(g.kw):
                    wkb.put(slots[o][kw], accs[o][kw])
    for o in range(n_out):
        base = b.add(b.mul(b.add(b.mul(b.add(o0, h.i64(o)), h.i64(g.c)), c), h.i64(g.kh)), kh)
        for kw in range(g.kw):
            total = horizontal(b, "reduce_sum", wkb.get(slots[o][kw], vt))
            p = b.gep(dw.ptr, [b.add(b.mul(base, h.i64(g.kw)), h.i64(kw))], inbounds=True,
                      source_etype=ftype)
            b.store(total, p, align=esize)
