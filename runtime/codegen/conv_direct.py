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
and dilation is a conv2d of dy with the flipped, transposed weights (conv.py builds those,
and takes this path only when every weight is finite: the reference crops dy's padding
taps rather than multiplying them).

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
        # every window row inside the input (no vertical padding reached): no row tests
        self.rows_inside = self.pt <= 0 and self.oh - 1 + (self.kh - 1) * self.dh - self.pt \
            < self.hgt
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


VECTOR_REGISTERS = 28             # of 32: accumulators + broadcasts + loaded vectors


def _tile_shape(g: DirectGeometry, rows_wanted: int) -> tuple:
    """(MR, output rows per tile): channels in balanced blocks of at most 8, then as many
    output rows as keep the MR x NV accumulators (NV = rows * segments), the MR weight
    broadcasts and the NV input vectors all in registers (a spill costs more than a smaller
    tile; 12 accumulators already hide the FMA latency)."""
    blocks = -(-rows_wanted // 8)
    mr = -(-rows_wanted // blocks)
    rows = 1
    while rows < g.oh and mr * (rows + 1) * g.seg + mr + (rows + 1) * g.seg <= VECTOR_REGISTERS:
        rows += 1
    return mr, rows


def emit_direct_forward(kb, x, w, y, g: DirectGeometry, w_ptr=None, epilogue=None,
                        skip_rows: bool = False) -> None:
    """y = conv2d(x, w) (unit stride); `w_ptr` replaces w's pointer (e.g. flipped weights
    built in the kernel's frame); x, w, y are the kernel's Buffers. `epilogue` (epilogue.py)
    is applied to each finished vector in the tile's store phase (coords (n, o, oh, ow0),
    lanes along ow, masked at the row end). `skip_rows`: taps whose rows lie in the padding
    for a whole tile are skipped (conv2d_grad_input as a convolution of dy padded by K-1-p:
    there the padding is not part of the reference's sum), with 2-row tiles so more skip."""
    b = kb.b
    ftype = h.register_type(y.dtype)
    n = kb.dim(x.shape[0])
    w_arg = w_ptr if w_ptr is not None else w.ptr
    mr, rows = _tile_shape(g, g.o)
    if skip_rows:
        rows = min(rows, 2)
    work_ns = b.sdiv(b.mul(n, h.i64(2 * g.o * g.oh * g.ow * g.ckk)), h.i64(60))

    def body(wkb, item, args):
        wb = wkb.b
        xw, yw = wkb.remap(x), wkb.remap(y)
        weights = wb.inttoptr(args[0], h.PTR)
        _forward_image(wb, g, ftype, xw.ptr, weights, yw.ptr, item, mr, rows, y.dtype.itemsize,
                       epilogue, skip_rows)
    parallel_for(kb, n, work_ns, body, args=[b.ptrtoint(w_arg, h.I64)], name="dconv")


def _forward_image(b, g, ftype, x_ptr, w_ptr, y_ptr, n, mr, rows, esize, epilogue,
                   skip_rows) -> None:
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
            if skip_rows and not g.rows_inside:
                # no row of the tile reaches the input at this kh: skip its taps (grad_input
                # only: the reference adds nothing there, not 0 * w)
                first = b.add(oh0, h.i64(kh * g.dh - g.pt))
                reach = b.and_(b.icmp_signed(">=", b.add(first, h.i64(n_rows - 1)), h.i64(0)),
                               b.icmp_signed("<", first, h.i64(g.hgt)))
                before, entry_block = [list(r) for r in cur], b.block
                taps = fn.append_basic_block(f"kh{kh}.taps")
                joined = fn.append_basic_block(f"kh{kh}.join")
                b.cbranch(reach, taps, joined)
                b.position_at_end(taps)
            row_oks = []
            row_ptrs = []
            for r in range(n_rows):
                ih = b.add(oh0, h.i64(r + kh * g.dh - g.pt))
                row_oks.append(None if g.rows_inside else
                               h.splat(b, _row_ok(b, ih, g.hgt), g.w))
                row_ptrs.append(b.gep(x_plane, [b.mul(ih, h.i64(g.wid))], source_etype=ftype))
            for kw in range(g.kw):
                bvecs = []
                for r, s in segs:
                    p = b.gep(row_ptrs[r], [h.i64(s * g.w + kw * g.dw - g.pl)],
                              source_etype=ftype)
                    mask = g.col_mask(s, kw)
                    if row_oks[r] is not None:
                        mask = b.and_(mask, row_oks[r])
                    if isinstance(mask, ir.Constant) and all(bit.constant
                                                             for bit in mask.constant):
                        bvecs.append(b.load(p, typ=vt, align=esize))     # every lane real
                    else:
                        bvecs.append(masked_load(b, p, vt, mask, esize))
                for o in range(n_out):
                    wp = b.gep(w_c, [h.i64((o0 + o) * g.ckk + kh * g.kw + kw)], inbounds=True,
                               source_etype=ftype)
                    a = h.splat(b, b.load(wp, typ=ftype, align=esize), g.w)
                    for v in range(len(segs)):
                        cur[o][v] = b.call(fma, [a, bvecs[v], cur[o][v]])
            if skip_rows and not g.rows_inside:
                taps_end = b.block
                b.branch(joined)
                b.position_at_end(joined)
                for o in range(n_out):
                    for v in range(len(segs)):
                        phi = b.phi(vt)
                        phi.add_incoming(cur[o][v], taps_end)
                        phi.add_incoming(before[o][v], entry_block)
                        cur[o][v] = phi
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
    mr_max = max(1, min(g.o, MAX_ACCUMULATORS // g.kw, 6))
    blocks = -(-g.o // mr_max)
    mr = -(-g.o // blocks)                       # balanced channel blocks
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


# -- conv2d vectorised along the output channels (O >= W) --------------------------------------
def channel_efficiency(g: DirectGeometry) -> float:
    return g.o / (-(-g.o // g.w) * g.w)


def width_efficiency(g: DirectGeometry) -> float:
    return g.ow / (g.seg * g.w)


PACKED_WEIGHTS_MAX = 65536        # elements: the packed copy lives on the kernel's stack


def prefers_channels(g: DirectGeometry) -> bool:
    opad = -(-g.o // g.w) * g.w
    return (g.o >= g.w and channel_efficiency(g) > width_efficiency(g)
            and g.ckk * opad <= PACKED_WEIGHTS_MAX)


def emit_direct_forward_channels(kb, x, w, y, g: DirectGeometry, epilogue=None) -> None:
    """y = conv2d(x, w) with `<W x T>` vectors along the output channels: weights packed
    as wp[c][kh][kw][o] (o padded to whole vectors) in the kernel's frame; a tile is PC
    consecutive positions of one output row, each a row of NVO channel vectors. The loop
    walks the INPUT row: each x value is broadcast once and multiplied into every tile
    position whose window holds it (KW weight vectors live per kh), so no value is loaded
    twice and the registers hold only accumulators and those weights. A padding tap
    broadcasts 0 (0 * w, as in the reference). The finished tile (positions x channels) is
    transposed in registers and stored as one row segment per channel."""
    b = kb.b
    ftype = h.register_type(y.dtype)
    esize = y.dtype.itemsize
    nvo = -(-g.o // g.w)
    opad = nvo * g.w
    packed = kb.local(ir.ArrayType(ftype, g.ckk * opad), "w.packed")
    packed.align = 64
    packed.type = h.PTR
    with h.loop_nest(b, [h.i64(g.ckk), h.i64(opad)], name="pack") as (k, o):
        inside = b.icmp_signed("<", o, h.i64(g.o))
        src = b.add(b.mul(b.select(inside, o, h.i64(0)), h.i64(g.ckk)), k)
        v = b.select(inside, h.load_element(b, w.ptr, src, y.dtype, esize),
                     h.const_like(ftype, 0.0))
        h.store_element(b, v, packed, b.add(b.mul(k, h.i64(opad)), o), y.dtype, esize)
    n = kb.dim(x.shape[0])
    pc = max(1, min(g.ow, (MAX_ACCUMULATORS - g.kw * nvo) // nvo))
    work_ns = b.sdiv(b.mul(n, h.i64(2 * g.o * g.oh * g.ow * g.ckk)), h.i64(60))

    def body(wkb, item, args):
        wb = wkb.b
        xw, yw = wkb.remap(x), wkb.remap(y)
        wp = wb.inttoptr(args[0], h.PTR)
        _channels_image(wb, g, ftype, esize, xw.ptr, wp, yw.ptr, item, nvo, pc, epilogue)
    parallel_for(kb, n, work_ns, body, args=[b.ptrtoint(packed, h.I64)], name="cconv")


def _channels_image(b, g, ftype, esize, x_ptr, wp, y_ptr, n, nvo, pc, epilogue) -> None:
    vt = ir.VectorType(ftype, g.w)
    opad = nvo * g.w
    fma = h.declare(b.module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])
    x_img = b.gep(x_ptr, [b.mul(n, h.i64(g.c * g.hgt * g.wid))], inbounds=True,
                  source_etype=ftype)
    plane = g.oh * g.ow

    def tile(oh, ow0, n_cols):
        zero = h.const_like(vt, 0.0)
        fn = b.function
        pre = b.block
        c_body = fn.append_basic_block("cc.body")
        c_done = fn.append_basic_block("cc.done")
        b.branch(c_body)
        b.position_at_end(c_body)
        c = b.phi(h.I64, name="c")
        c.add_incoming(h.i64(0), pre)
        phis = [[b.phi(vt) for _ in range(nvo)] for _ in range(n_cols)]
        for row in phis:
            for p in row:
                p.add_incoming(zero, pre)
        cur = [list(r) for r in phis]
        x_plane = b.gep(x_img, [b.mul(c, h.i64(g.hgt * g.wid))], inbounds=True,
                        source_etype=ftype)
        w_c = b.gep(wp, [b.mul(c, h.i64(g.kh * g.kw * opad))], inbounds=True,
                    source_etype=ftype)
        for kh in range(g.kh):
            ih = b.add(oh, h.i64(kh * g.dh - g.pt))
            ok = None if g.rows_inside else _row_ok(b, ih, g.hgt)
            safe = ih if ok is None else b.select(ok, ih, h.i64(0))
            row_ptr = b.gep(x_plane, [b.mul(safe, h.i64(g.wid))], inbounds=True,
                            source_etype=ftype)
            wvecs = [[b.load(b.gep(w_c, [h.i64((kh * g.kw + kw) * opad + v * g.w)],
                                   inbounds=True, source_etype=ftype), typ=vt, align=64)
                      for v in range(nvo)] for kw in range(g.kw)]
            for j in range(n_cols + (g.kw - 1) * g.dw):      # input columns of the tile
                users = [(kw, j - kw * g.dw) for kw in range(g.kw)
                         if 0 <= j - kw * g.dw < n_cols]
                if not users:
                    continue
                col = ow0 + j - g.pl
                if 0 <= col < g.wid:
                    xv = b.load(b.gep(row_ptr, [h.i64(col)], inbounds=True, source_etype=ftype),
                                typ=ftype, align=esize)
                    if ok is not None:
                        xv = b.select(ok, xv, h.const_like(ftype, 0.0))
                else:
                    xv = h.const_like(ftype, 0.0)               # padding: 0 * w
                a = h.splat(b, xv, g.w)
                for kw, q in users:
                    for v in range(nvo):
                        cur[q][v] = b.call(fma, [a, wvecs[kw][v], cur[q][v]])
        c_next = b.add(c, h.i64(1))
        c.add_incoming(c_next, b.block)
        for q in range(n_cols):
            for v in range(nvo):
                phis[q][v].add_incoming(cur[q][v], b.block)
        b.cbranch(b.icmp_signed("<", c_next, h.i64(g.c)), c_body, c_done)
        b.position_at_end(c_done)
        row_mask = ir.Constant(ir.VectorType(h.I1, g.w),
                               [ir.Constant(h.I1, int(k < n_cols)) for k in range(g.w)])
        for v in range(nvo):
            o0 = v * g.w
            mask = None
            if o0 + g.w > g.o:
                mask = ir.Constant(ir.VectorType(h.I1, g.w),
                                   [ir.Constant(h.I1, int(o0 + k < g.o)) for k in range(g.w)])
            values = []
            for q in range(n_cols):
                value = cur[q][v]
                if epilogue is not None:
                    at = b.add(b.mul(n, h.i64(g.o * plane)),
                               b.add(h.i64(o0 * plane + ow0 + q), b.mul(oh, h.i64(g.ow))))
                    site = OutputSite((n, h.i64(o0), oh, h.i64(ow0 + q)), at, g.w, 1,
                                      h.i64(plane), mask)
                    value = apply(epilogue, b, value, site)
                values.append(value)
            # positions x channels -> channels x positions: one masked row store per channel
            rows = transpose(b, values + [h.const_like(vt, 0.0)] * (g.w - n_cols))
            for k in range(min(g.w, g.o - o0)):
                at = b.add(b.mul(n, h.i64(g.o * plane)),
                           b.add(h.i64((o0 + k) * plane + ow0), b.mul(oh, h.i64(g.ow))))
                p = b.gep(y_ptr, [at], inbounds=True, source_etype=ftype)
                if n_cols == g.w:
                    b.store(rows[k], p, align=esize)
                else:
                    masked_store(b, rows[k], p, row_mask, esize)

    with h.counted_loop(b, h.i64(g.oh), name="coh") as oh:
        for ow0 in range(0, g.ow, pc):
            tile(oh, ow0, min(pc, g.ow - ow0))


# -- conv2d_grad_filter vectorised along the output channels (O >= W) -------------------------
FILTER_GROUPS = 8                 # image groups: deterministic partial sums, summed in order


def filter_prefers_channels(g: DirectGeometry) -> bool:
    opad = -(-g.o // g.w) * g.w
    return (g.o >= g.w and channel_efficiency(g) > width_efficiency(g)
            and FILTER_GROUPS * g.ckk * opad <= PACKED_WEIGHTS_MAX
            and g.oh * g.ow * opad <= PACKED_WEIGHTS_MAX)


def emit_direct_grad_filter_channels(kb, x, dy, dw, g: DirectGeometry) -> None:
    """dw[o, c, kh, kw] = sum_n,oh,ow dy[n, o, oh, ow] * x[n, c, ih, iw] with `<W x T>`
    vectors along o. The images are split into FILTER_GROUPS fixed groups (the parallel
    items); a group transposes each image's dy to position-major (dyT[pos][o], in
    registers, on its stack) and, tile by tile (KG rows kh x all kw of one input channel c,
    accumulators in registers), adds sum_pos x * dyT[pos] into its own partial dw[k][o] in
    the kernel's frame. The partials are then summed in group order and transposed into dw:
    the same result whatever the thread count."""
    b = kb.b
    ftype = h.register_type(dw.dtype)
    esize = dw.dtype.itemsize
    vt = ir.VectorType(ftype, g.w)
    nvo = -(-g.o // g.w)
    opad = nvo * g.w
    part_words = g.ckk * opad
    parts = kb.local(ir.ArrayType(ftype, FILTER_GROUPS * part_words), "dw.parts")
    parts.align = 64
    parts.type = h.PTR
    n = kb.dim(x.shape[0])
    work_ns = b.sdiv(b.mul(n, h.i64(2 * g.o * g.oh * g.ow * g.ckk)), h.i64(60))
    kg = max(1, min(g.kh, 12 // (g.kw * nvo)))

    def body(wkb, item, args):
        wb = wkb.b
        xw, dyw = wkb.remap(x), wkb.remap(dy)
        part = wb.gep(wb.inttoptr(args[0], h.PTR), [wb.mul(item, h.i64(part_words))],
                      inbounds=True, source_etype=ftype)
        h.memset_zero(wb, part, h.i64(part_words * esize))
        n_w = wkb.dim(x.shape[0])
        lo = wb.sdiv(wb.mul(item, n_w), h.i64(FILTER_GROUPS))
        hi = wb.sdiv(wb.mul(wb.add(item, h.i64(1)), n_w), h.i64(FILTER_GROUPS))
        dyt = wkb.local(ir.ArrayType(ftype, g.oh * g.ow * opad), "dyT")
        dyt.align = 64
        dyt.type = h.PTR
        with h.counted_loop(wb, hi, start=lo, name="img") as img:
            _transpose_dy(wb, g, ftype, esize, dyw.ptr, img, dyt, nvo)
            x_img = wb.gep(xw.ptr, [wb.mul(img, h.i64(g.c * g.hgt * g.wid))], inbounds=True,
                           source_etype=ftype)
            with h.counted_loop(wb, h.i64(g.c), name="fc") as c:
                for kh0 in range(0, g.kh, kg):
                    _filter_channels_tile(wb, g, ftype, esize, x_img, c, dyt, part, kh0,
                                          min(kg, g.kh - kh0), nvo)
    parallel_for(kb, h.i64(FILTER_GROUPS), work_ns, body, args=[b.ptrtoint(parts, h.I64)],
                 name="cfilt")
    # dw[o][k] = sum over groups of parts[g][k][o]: blocks of W k's, transposed in registers
    zero = h.const_like(vt, 0.0)
    with h.counted_loop(b, h.i64(-(-g.ckk // g.w)), name="fsum") as kb_i:
        k0 = b.mul(kb_i, h.i64(g.w))
        for v in range(nvo):
            rows = []
            for j in range(g.w):
                k = b.add(k0, h.i64(j))
                inside = b.icmp_signed("<", k, h.i64(g.ckk))
                k_safe = b.select(inside, k, h.i64(0))
                total = zero
                for grp in range(FILTER_GROUPS):
                    at = b.add(h.i64(grp * part_words + v * g.w), b.mul(k_safe, h.i64(opad)))
                    total = b.fadd(total, b.load(b.gep(parts, [at], inbounds=True,
                                                       source_etype=ftype), typ=vt, align=64))
                rows.append(total)
            cols = transpose(b, rows)                   # cols[o][j] = dw[v*W + o][k0 + j]
            lanes = b.sub(h.i64(g.ckk), k0)
            mask = b.icmp_signed("<", ir.Constant(ir.VectorType(h.I64, g.w),
                                                   [h.i64(j) for j in range(g.w)]),
                                 h.splat(b, lanes, g.w))
            for o in range(min(g.w, g.o - v * g.w)):
                p = b.gep(dw.ptr, [b.add(h.i64((v * g.w + o) * g.ckk), k0)], inbounds=True,
                          source_etype=ftype)
                masked_store(b, cols[o], p, mask, esize)


def _transpose_dy(b, g, ftype, esize, dy_ptr, img, dyt, nvo) -> None:
    """dyT[pos][o] = dy[img, o, pos] (o padded with zeros to nvo vectors)."""
    vt = ir.VectorType(ftype, g.w)
    plane = g.oh * g.ow
    opad = nvo * g.w
    dy_img = b.gep(dy_ptr, [b.mul(img, h.i64(g.o * plane))], inbounds=True, source_etype=ftype)
    for v in range(nvo):
        with h.counted_loop(b, h.i64(-(-plane // g.w)), name="tpos") as pb:
            p0 = b.mul(pb, h.i64(g.w))
            lanes = b.sub(h.i64(plane), p0)
            mask = b.icmp_signed("<", ir.Constant(ir.VectorType(h.I64, g.w),
                                                   [h.i64(j) for j in range(g.w)]),
                                 h.splat(b, lanes, g.w))
            rows = []
            for o in range(g.w):
                oc = v * g.w + o
                if oc < g.o:
                    p = b.gep(dy_img, [b.add(h.i64(oc * plane), p0)], inbounds=True,
                              source_etype=ftype)
                    rows.append(masked_load(b, p, vt, mask, esize))
                else:
                    rows.append(h.const_like(vt, 0.0))
            cols = transpose(b, rows)                    # cols[j][o] = dy[o][p0 + j]
            for j in range(g.w):
                with b.if_then(b.icmp_signed("<", h.i64(j), lanes)):
                    at = b.add(b.mul(b.add(p0, h.i64(j)), h.i64(opad)), h.i64(v * g.w))
                    b.store(cols[j], b.gep(dyt, [at], inbounds=True, source_etype=ftype),
                            align=64)


def _filter_channels_tile(b, g, ftype, esize, x_img, c, dyt, part, kh0, n_kh, nvo) -> None:
    """part[(c, kh, kw)][o] += sum over positions of x[c, ih, iw] * dyT[pos][o] for
    kh in [kh0, kh0 + n_kh) and every kw (accumulators in registers over the image)."""
    vt = ir.VectorType(ftype, g.w)
    opad = nvo * g.w
    fma = h.declare(b.module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])
    fn = b.function
    x_plane = b.gep(x_img, [b.mul(c, h.i64(g.hgt * g.wid))], inbounds=True, source_etype=ftype)
    zero = h.const_like(vt, 0.0)
    pre = b.block
    body = fn.append_basic_block("ft.body")
    done = fn.append_basic_block("ft.done")
    b.branch(body)
    b.position_at_end(body)
    oh = b.phi(h.I64, name="oh")
    oh.add_incoming(h.i64(0), pre)
    taps = [(kh, kw, v) for kh in range(kh0, kh0 + n_kh) for kw in range(g.kw)
            for v in range(nvo)]
    phis = [b.phi(vt) for _ in taps]
    for p in phis:
        p.add_incoming(zero, pre)
    cur = list(phis)
    rows = []
    for kh in range(kh0, kh0 + n_kh):
        ih = b.add(oh, h.i64(kh * g.dh - g.pt))
        ok = None if g.rows_inside else _row_ok(b, ih, g.hgt)
        safe = ih if ok is None else b.select(ok, ih, h.i64(0))
        rows.append((ok, b.gep(x_plane, [b.mul(safe, h.i64(g.wid))], inbounds=True,
                               source_etype=ftype)))
    for ow in range(g.ow):
        dys = [b.load(b.gep(dyt, [b.add(b.mul(b.add(b.mul(oh, h.i64(g.ow)), h.i64(ow)),
                                              h.i64(opad)), h.i64(v * g.w))],
                            inbounds=True, source_etype=ftype), typ=vt, align=64)
               for v in range(nvo)]
        for t, (kh, kw, v) in enumerate(taps):
            col = ow + kw * g.dw - g.pl
            ok, row_ptr = rows[kh - kh0]
            if 0 <= col < g.wid:
                xv = b.load(b.gep(row_ptr, [h.i64(col)], inbounds=True, source_etype=ftype),
                            typ=ftype, align=esize)
                if ok is not None:
                    xv = b.select(ok, xv, h.const_like(ftype, 0.0))
            else:
                xv = h.const_like(ftype, 0.0)                     # padding: 0 * dy
            cur[t] = b.call(fma, [h.splat(b, xv, g.w), dys[v], cur[t]])
    nxt = b.add(oh, h.i64(1))
    oh.add_incoming(nxt, b.block)
    for p, value in zip(phis, cur):
        p.add_incoming(value, b.block)
    b.cbranch(b.icmp_signed("<", nxt, h.i64(g.oh)), body, done)
    b.position_at_end(done)
    for t, (kh, kw, v) in enumerate(taps):
        k = b.add(b.mul(c, h.i64(g.kh * g.kw)), h.i64(kh * g.kw + kw))
        p = b.gep(part, [b.add(b.mul(k, h.i64(opad)), h.i64(v * g.w))], inbounds=True,
                  source_etype=ftype)
        b.store(b.fadd(b.load(p, typ=vt, align=64), cur[t]), p, align=64)


def transpose(b, rows: list) -> list:
    """Transpose a square block of `<n x T>` vectors (n a power of two) with log2(n) butterfly
    stages of two-input shuffles: stage s swaps bit s of the row index with bit s of the
    lane index (n * log2(n) shuffles in all)."""
    n = len(rows)
    rows = list(rows)
    d = 1
    while d < n:
        for i in range(n):
            if i & d:
                continue
            j = i | d
            lo = [l if not l & d else n + l - d for l in range(n)]
            hi = [l + d if not l & d else n + l for l in range(n)]
            a, c = rows[i], rows[j]
            rows[i] = b.shuffle_vector(a, c, ir.Constant(ir.VectorType(h.I32, n),
                                                         [h.i32(k) for k in lo]))
            rows[j] = b.shuffle_vector(a, c, ir.Constant(ir.VectorType(h.I32, n),
                                                         [h.i32(k) for k in hi]))
        d *= 2
    return rows


def scatter(b, value, ptrs, mask, align) -> None:
    name = f"llvm.masked.scatter.{h.type_suffix(value.type)}.v{value.type.count}p0"
    fn = h.declare(b.module, name, ir.VoidType(), [value.type, ptrs.type, h.I32, mask.type])
    b.call(fn, [value, ptrs, h.i32(align), mask])
