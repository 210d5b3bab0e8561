"""Convolutions on the gemm workers: im2col happens inside the packing step (never in memory).

NCHW input x[N, C, H, W], OIHW weights w[O, C, KH, KW], output y[N, O, OH, OW], groups = 1.
Each op is a `GemmForm` (gemm.py): a product C[p] += A(p, q) @ B(p, q) whose B is packed
straight from the activations with the convolution's index map, zero where a tap falls in the
padding (so padding contributes 0 * w, as in the reference):

    conv2d              per image p: y[p] (O x OH*OW) = w (O x C*KH*KW) @ col(x[p])
    conv2d_grad_filter  dw (O x C*KH*KW) = sum over images q of dy[q] (O x OH*OW) @ col(x[q])^T
    conv2d_grad_input   per image p: dx[p] (C x H*W) = sum over out channels q of
                        w[q] (C x KH*KW) @ taps(dy[p, q]), taps = the dy element each (kh, kw)
                        tap of each input position came from (zero when none: stride gaps,
                        padding, past the edge)

A packed row of B (one k, NR consecutive output positions) is loaded as `<W x T>` vectors.
For conv2d with unit horizontal stride the W positions of a vector are runs of consecutive
input columns, one run per output row they cover, so each vector is a few masked contiguous
loads; otherwise (and for the gradients) a masked gather.

Differences from the reference, within the differential tests' `accum` tolerance: sums run
in another order (fused multiply-adds). conv2d_grad_input multiplies w by 0 for taps the
reference crops away, which only a NaN/inf weight could tell apart: conv.py checks the
weights and runs its exact scatter loop instead when one is not finite.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import helpers as h
from .epilogue import gather, masked_load
from .gemm import GemmForm, choose_tile, run_gemm


class ConvGeometry:
    def __init__(self, attrs, x_shape, w_shape, out_hw):
        self.sh, self.sw = attrs["stride"]
        self.pt, self.pl = attrs["padding"][0], attrs["padding"][1]
        self.dh, self.dw = attrs["dilation"]
        self.c, self.hgt, self.wid = x_shape[1], x_shape[2], x_shape[3]
        self.o, _, self.kh, self.kw = w_shape
        self.oh, self.ow = out_hw
        self.khw = self.kh * self.kw
        self.ckk = self.c * self.khw

    @property
    def key(self) -> str:
        return (f"{self.c}x{self.hgt}x{self.wid}.{self.o}x{self.kh}x{self.kw}.{self.oh}x{self.ow}"
                f".s{self.sh}{self.sw}.p{self.pt}{self.pl}.d{self.dh}{self.dw}")


def _i(v):
    return h.i64(v)


def _vsplat(b, x, w):
    return h.splat(b, x, w)


def _vconst(w, value):
    return ir.Constant(ir.VectorType(h.I64, w), [h.i64(value)] * w)


def _lanes(w, base=0):
    return ir.Constant(ir.VectorType(h.I64, w), [h.i64(base + k) for k in range(w)])


def _in_range(b, v, hi, w):
    """0 <= v < hi on an i64 vector (one unsigned compare)."""
    return b.icmp_unsigned("<", v, _vconst(w, hi))


def _gather_from(b, base, index, mask, ftype, w):
    """Masked gather base[index] (masked-off lanes read nothing and give 0)."""
    safe = b.select(mask, index, _vconst(w, 0))
    ptrs = b.gep(base, [safe], source_etype=ftype)
    ptrs.type = ir.VectorType(h.PTR, w)
    return gather(b, ptrs, ir.VectorType(ftype, w), mask,
                  4 if isinstance(ftype, ir.FloatType) else 8)


class _ConvForm(GemmForm):
    def __init__(self, geo: ConvGeometry):
        self.g = geo
        self.key = f"{type(self).__name__}.{geo.key}"

    def pack(self, b, st, p, q, k0, kc, p0, p1, pack, tile, width):
        ftype = st["ftype"]
        esize = 4 if isinstance(ftype, ir.FloatType) else 8
        nr = tile.nv * width
        n = st["n"]
        with h.counted_loop(b, p1, start=p0, name="pp") as jp:
            dst_panel = b.mul(b.mul(b.sub(jp, p0), kc), _i(nr))
            with h.counted_loop(b, kc, name="pk") as k:
                kk = b.add(k0, k)
                dst = b.add(dst_panel, b.mul(k, _i(nr)))
                for v in range(tile.nv):
                    j0 = b.add(b.mul(jp, _i(nr)), _i(v * width))
                    val = self.b_vector(b, st, p, q, kk, j0, n, width, ftype)
                    dp = b.gep(pack, [b.add(dst, _i(v * width))], inbounds=True,
                               source_etype=ftype)
                    b.store(val, dp, align=min(64, esize * width))


class ConvForward(_ConvForm):
    """y[p] (O x OH*OW) = w (O x CKK) @ col(x[p]) (CKK x OH*OW)."""

    def a_at(self, b, st, p, q, i, k0):
        g = self.g
        at = b.gep(st["a"], [b.add(b.mul(i, _i(g.ckk)), k0)], inbounds=True,
                   source_etype=st["ftype"])
        return at, _i(g.ckk), _i(1)

    def c_at(self, b, st, p, i, j):
        g = self.g
        plane = g.oh * g.ow
        off = b.add(b.mul(p, _i(g.o * plane)), b.add(b.mul(i, _i(plane)), j))
        return b.gep(st["c"], [off], inbounds=True, source_etype=st["ftype"]), _i(plane)

    def b_vector(self, b, st, p, q, kk, j0, n, w, ftype):
        g = self.g
        c = b.sdiv(kk, _i(g.khw))
        r = b.srem(kk, _i(g.khw))
        kh, kw = b.sdiv(r, _i(g.kw)), b.srem(r, _i(g.kw))
        plane = b.gep(st["b"], [b.mul(b.add(b.mul(p, _i(g.c)), c), _i(g.hgt * g.wid))],
                      inbounds=True, source_etype=ftype)
        vt = ir.VectorType(ftype, w)
        esize = 4 if isinstance(ftype, ir.FloatType) else 8
        if g.sw == 1:
            # lanes [lo, hi) of this vector lie on output row oh0 + r: a contiguous run of
            # input columns, loaded with one masked load per row the vector covers
            oh0, ow0 = b.sdiv(j0, _i(g.ow)), b.srem(j0, _i(g.ow))
            lanes = _lanes(w)
            valid_j = b.icmp_signed("<", b.add(_vsplat(b, j0, w), lanes), _vsplat(b, n, w))
            value = h.const_like(vt, 0.0)
            rows = -(-(w + g.ow - 1) // g.ow)
            first_lane = b.sub(_i(0), ow0)            # lane index where row r starts: r*OW-ow0
            for rr in range(rows):
                start = b.add(first_lane, _i(rr * g.ow))
                lane_off = b.sub(lanes, _vsplat(b, start, w))    # ow of each lane on row rr
                in_row = b.and_(b.icmp_signed(">=", lane_off, _vconst(w, 0)),
                                b.icmp_signed("<", lane_off, _vconst(w, g.ow)))
                ih = b.add(b.sub(b.mul(b.add(oh0, _i(rr)), _i(g.sh)), _i(g.pt)),
                           b.mul(kh, _i(g.dh)))
                ih_ok = b.icmp_unsigned("<", ih, _i(g.hgt))
                iw = b.add(lane_off, _vsplat(b, b.sub(b.mul(kw, _i(g.dw)), _i(g.pl)), w))
                mask = b.and_(b.and_(in_row, valid_j), _in_range(b, iw, g.wid, w))
                mask = b.and_(mask, _vsplat(b, ih_ok, w))
                # element of lane 0 on row rr (may lie outside the buffer: masked lanes only)
                base_col = b.sub(b.sub(b.mul(kw, _i(g.dw)), _i(g.pl)), start)
                row_ptr = b.gep(plane, [b.add(b.mul(ih, _i(g.wid)), base_col)],
                                source_etype=ftype)
                value = masked_load(b, row_ptr, vt, mask, esize, value)
            return value
        jv = b.add(_vsplat(b, j0, w), _lanes(w))
        oh, ow = b.sdiv(jv, _vconst(w, g.ow)), b.srem(jv, _vconst(w, g.ow))
        ih = b.add(b.sub(b.mul(oh, _vconst(w, g.sh)), _vconst(w, g.pt)),
                   _vsplat(b, b.mul(kh, _i(g.dh)), w))
        iw = b.add(b.sub(b.mul(ow, _vconst(w, g.sw)), _vconst(w, g.pl)),
                   _vsplat(b, b.mul(kw, _i(g.dw)), w))
        mask = b.and_(b.icmp_signed("<", jv, _vsplat(b, n, w)),
                      b.and_(_in_range(b, ih, g.hgt, w), _in_range(b, iw, g.wid, w)))
        index = b.add(b.mul(ih, _vconst(w, g.wid)), iw)
        return _gather_from(b, plane, index, mask, ftype, w)


class ConvGradFilter(_ConvForm):
    """dw (O x CKK) = sum_q dy[q] (O x OH*OW) @ col(x[q])^T (OH*OW x CKK)."""

    def a_at(self, b, st, p, q, i, k0):
        g = self.g
        plane = g.oh * g.ow
        off = b.add(b.mul(q, _i(g.o * plane)), b.add(b.mul(i, _i(plane)), k0))
        return b.gep(st["a"], [off], inbounds=True, source_etype=st["ftype"]), _i(plane), _i(1)

    def c_at(self, b, st, p, i, j):
        g = self.g
        return (b.gep(st["c"], [b.add(b.mul(i, _i(g.ckk)), j)], inbounds=True,
                      source_etype=st["ftype"]), _i(g.ckk))

    def b_vector(self, b, st, p, q, kk, j0, n, w, ftype):
        g = self.g
        oh, ow = b.sdiv(kk, _i(g.ow)), b.srem(kk, _i(g.ow))
        jv = b.add(_vsplat(b, j0, w), _lanes(w))
        c = b.sdiv(jv, _vconst(w, g.khw))
        r = b.srem(jv, _vconst(w, g.khw))
        kh, kw = b.sdiv(r, _vconst(w, g.kw)), b.srem(r, _vconst(w, g.kw))
        ih = b.add(_vsplat(b, b.sub(b.mul(oh, _i(g.sh)), _i(g.pt)), w),
                   b.mul(kh, _vconst(w, g.dh)))
        iw = b.add(_vsplat(b, b.sub(b.mul(ow, _i(g.sw)), _i(g.pl)), w),
                   b.mul(kw, _vconst(w, g.dw)))
        mask = b.and_(b.icmp_signed("<", jv, _vsplat(b, n, w)),
                      b.and_(_in_range(b, ih, g.hgt, w), _in_range(b, iw, g.wid, w)))
        index = b.add(b.mul(b.add(b.mul(c, _vconst(w, g.hgt)), ih), _vconst(w, g.wid)), iw)
        image = b.gep(st["b"], [b.mul(q, _i(g.c * g.hgt * g.wid))], inbounds=True,
                      source_etype=ftype)
        return _gather_from(b, image, index, mask, ftype, w)


class ConvGradInput(_ConvForm):
    """dx[p] (C x H*W) = sum_q w[q] (C x KH*KW) @ taps(dy[p, q]) (KH*KW x H*W)."""

    def a_at(self, b, st, p, q, i, k0):
        g = self.g
        off = b.add(b.mul(q, _i(g.ckk)), b.add(b.mul(i, _i(g.khw)), k0))
        return b.gep(st["a"], [off], inbounds=True, source_etype=st["ftype"]), _i(g.khw), _i(1)

    def c_at(self, b, st, p, i, j):
        g = self.g
        plane = g.hgt * g.wid
        off = b.add(b.mul(p, _i(g.c * plane)), b.add(b.mul(i, _i(plane)), j))
        return b.gep(st["c"], [off], inbounds=True, source_etype=st["ftype"]), _i(plane)

    def b_vector(self, b, st, p, q, kk, j0, n, w, ftype):
        g = self.g
        kh, kw = b.sdiv(kk, _i(g.kw)), b.srem(kk, _i(g.kw))
        jv = b.add(_vsplat(b, j0, w), _lanes(w))
        ih, iw = b.sdiv(jv, _vconst(w, g.wid)), b.srem(jv, _vconst(w, g.wid))
        th = b.sub(b.add(ih, _vconst(w, g.pt)), _vsplat(b, b.mul(kh, _i(g.dh)), w))
        tw = b.sub(b.add(iw, _vconst(w, g.pl)), _vsplat(b, b.mul(kw, _i(g.dw)), w))
        mask = b.icmp_signed("<", jv, _vsplat(b, n, w))
        mask = b.and_(mask, b.and_(b.icmp_signed(">=", th, _vconst(w, 0)),
                                   b.icmp_signed(">=", tw, _vconst(w, 0))))
        if g.sh != 1:
            mask = b.and_(mask, b.icmp_signed("==", b.srem(th, _vconst(w, g.sh)), _vconst(w, 0)))
        if g.sw != 1:
            mask = b.and_(mask, b.icmp_signed("==", b.srem(tw, _vconst(w, g.sw)), _vconst(w, 0)))
        oh = b.sdiv(th, _vconst(w, g.sh)) if g.sh != 1 else th
        ow = b.sdiv(tw, _vconst(w, g.sw)) if g.sw != 1 else tw
        mask = b.and_(mask, b.and_(_in_range(b, oh, g.oh, w), _in_range(b, ow, g.ow, w)))
        index = b.add(b.mul(oh, _vconst(w, g.ow)), ow)
        plane = b.gep(st["b"], [b.mul(b.add(b.mul(p, _i(g.o)), q), _i(g.oh * g.ow))],
                      inbounds=True, source_etype=ftype)
        return _gather_from(b, plane, index, mask, ftype, w)


def emit_conv_forward(kb, x, w, y, geo: ConvGeometry) -> None:
    width = kb.target.vector_width(y.dtype.itemsize)
    n = kb.dim(x.shape[0])
    run_gemm(kb, ConvForward(geo), y.dtype, (w.ptr, x.ptr, y.ptr), n, _i(1), _i(geo.o),
             _i(geo.oh * geo.ow), _i(geo.ckk), choose_tile(width, geo.oh * geo.ow))


def emit_conv_grad_filter(kb, x, dy, dw, geo: ConvGeometry) -> None:
    width = kb.target.vector_width(dw.dtype.itemsize)
    n = kb.dim(x.shape[0])
    with kb.b.if_then(kb.b.icmp_signed("==", n, _i(0))):      # no images: dw is all zeros
        h.memset_zero(kb.b, dw.ptr, _i(geo.o * geo.ckk * dw.dtype.itemsize))
    run_gemm(kb, ConvGradFilter(geo), dw.dtype, (dy.ptr, x.ptr, dw.ptr), _i(1), n, _i(geo.o),
             _i(geo.ckk), _i(geo.oh * geo.ow), choose_tile(width, geo.ckk))


FLIPPED_WEIGHTS_MAX = 65536      # elements: the flipped copy lives on the kernel's stack


def flip_for_grad_input(kb, w, dtype, geo: ConvGeometry):
    """(pointer to w flipped and transposed [C, O, KH, KW] in the kernel's frame, the attrs
    of the forward convolution that computes dx from dy with it): for unit stride and
    dilation, dx = conv2d(dy, flip(w)^T, padding K-1-p)."""
    b = kb.b
    ftype = h.register_type(dtype)
    flipped = kb.local(ir.ArrayType(ftype, geo.ckk * geo.o), "w.flipped")
    flipped.type = h.PTR
    kk = geo.khw
    with h.loop_nest(b, [_i(geo.o), _i(geo.c), _i(kk)], name="flip") as (o, c, t):
        src = b.add(b.mul(b.add(b.mul(o, _i(geo.c)), c), _i(kk)), t)
        dst = b.add(b.mul(b.add(b.mul(c, _i(geo.o)), o), _i(kk)), b.sub(_i(kk - 1), t))
        value = h.load_element(b, w.ptr, src, dtype, dtype.itemsize)
        h.store_element(b, value, flipped, dst, dtype, dtype.itemsize)
    attrs = {"stride": (1, 1), "dilation": (1, 1), "groups": 1,
             "padding": (geo.kh - 1 - geo.pt, geo.kw - 1 - geo.pl,
                         geo.kh - 1 - geo.pt, geo.kw - 1 - geo.pl)}
    return flipped, attrs


def can_flip(geo: ConvGeometry) -> bool:
    return (geo.sh, geo.sw, geo.dh, geo.dw) == (1, 1, 1, 1) and \
        geo.ckk * geo.o <= FLIPPED_WEIGHTS_MAX


def emit_conv_grad_input(kb, dy, w, dx, geo: ConvGeometry) -> None:
    width = kb.target.vector_width(dx.dtype.itemsize)
    n = kb.dim(dx.shape[0])
    if can_flip(geo):
        # unit stride: dx = conv2d(dy, w flipped and transposed, padding K-1-p), one product
        # of depth O*KH*KW per image (the forward kernel, contiguous loads in the packing)
        flipped, attrs = flip_for_grad_input(kb, w, dx.dtype, geo)
        kk = geo.khw
        tgeo = ConvGeometry(attrs, (None, geo.o, geo.oh, geo.ow), (geo.c, geo.o, geo.kh, geo.kw),
                            (geo.hgt, geo.wid))
        run_gemm(kb, ConvForward(tgeo), dx.dtype, (flipped, dy.ptr, dx.ptr), n, _i(1),
                 _i(geo.c), _i(geo.hgt * geo.wid), _i(geo.o * kk),
                 choose_tile(width, geo.hgt * geo.wid))
        return
    run_gemm(kb, ConvGradInput(geo), dx.dtype, (w.ptr, dy.ptr, dx.ptr), n, _i(geo.o), _i(geo.c),
             _i(geo.hgt * geo.wid), _i(geo.khw), choose_tile(width, geo.hgt * geo.wid))
