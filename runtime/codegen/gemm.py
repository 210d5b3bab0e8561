"""The fast float matmul: packed, cache-blocked, register-tiled `<W x T>` micro-kernels.

C[p] = op(A[p]) @ op(B[p]) for each batch index p, C (M x N) row-major, K the depth.

Structure (BLIS-like, with A read in place):
- Work items: (batch p, column block, row block). A column block is a run of at most
  PANELS_PER_BLOCK panels of NR = NV*W columns; a row block at most MC rows. Items are handed
  out dynamically to the threads of a parallel region (runtime/threads.py). On a team the
  blocks shrink until every thread has ITEMS_PER_THREAD items of at most ITEM_NS: columns first
  (narrower column blocks pack no more of B), then rows; on one thread they stay whole.
- Per item, for each depth block of KC: the B block (KC x columns) is PACKED into a stack
  buffer, panel by panel (KC rows of NR contiguous, 64-byte-aligned values; columns past N
  are zero). Packing is where transpose_b is absorbed: no transposed copy of B is ever made.
  Then for each panel and each MR rows, one micro-kernel call. When K is at most
  KEEP_SLABS depth blocks, every depth block's pack is kept (a slab each), and a thread
  whose next item is another row block of the same column block reuses it.
- Micro-kernel (one internal function per (dtype, MR, NV, B form), shared by every matmul of
  the module): MR x NV vector accumulators held in registers through a k loop; each step
  loads NV vectors of B and broadcasts MR values of A (`llvm.fma`). A is read in place with a
  row stride and a k stride, which absorbs transpose_a. Edges: rows past the end reuse the
  last real row (their results are not stored); columns past N are masked on store.
- Narrow outputs (N <= W, e.g. a 10-class layer): NV = 1 with MR = 2*MR, so the tile still
  has enough independent accumulators to hide the FMA latency. A last panel of at most W
  columns (N = 400 = 12.5 panels of 32) runs the NV = 1 micro-kernel of the same MR, and one
  of at most W/2 columns (N = 100 = 3 panels and 4 columns) the same with W/2-wide vectors.
- Few rows (batch-1 inference): gemv.py, which reads B in place (matmul.py dispatches).

Results accumulate with fused multiply-adds in k order within a depth block, so they agree
with numpy/BLAS to rounding (the differential tests' `accum` tolerance), not bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from .. import threads
from . import helpers as h
from .epilogue import masked_load, masked_store

KC = 256                    # depth block: a packed panel (KC x NR) stays in L1
MC = 128                    # row block: an A block (MC x KC) stays in L2
PANELS_PER_BLOCK = 4        # columns per item: PANELS_PER_BLOCK * NR
# Threaded regions: items of at most ITEM_NS and at least ITEMS_PER_THREAD per thread. Home
# ranges hold equal item COUNTS, but items differ in cost (a narrow last column block, e.g.
# N = 400 is 12.5 panels): the last item a thread takes sets the imbalance, so items are
# small. 100 us / 4 per thread measured 383 us for 128x784x400 and 62 us for 128x400x100 on
# two threads; 15 us / 6 per thread 370 and 55 us (sgemm 64-1024 unchanged or faster).
ITEM_NS = 15_000
ITEMS_PER_THREAD = 6
KEEP_SLABS = 4              # a worker keeps a column block's packed B for K <= this * KC
CTX_WORDS = 12


@dataclass(frozen=True)
class Tile:
    mr: int                 # rows of the register tile
    nv: int                 # vectors per row (NR = nv * W columns)


def choose_tile(width: int, n_static) -> Tile:
    """The register tile for a vector width and the column count."""
    if isinstance(n_static, int) and n_static <= width:
        return Tile(16, 1)
    return Tile(8, 2)


def _vec(typ, w):
    return ir.VectorType(typ, w)


def lane_mask(b, w: int, base: int, limit: ir.Value) -> ir.Value:
    """<w x i1>: lane k is base + k < limit."""
    lanes = ir.Constant(_vec(h.I64, w), [h.i64(base + k) for k in range(w)])
    return b.icmp_signed("<", lanes, h.splat(b, limit, w))


def microkernel(module: ir.Module, ftype: ir.Type, width: int, tile: Tile) -> ir.Function:
    """void ukr(ptr a, i64 a_rs, i64 a_ks, ptr bp, i64 b_ks, ptr c, i64 c_rs, i64 kc,
                i64 rows, i64 cols, i1 accumulate)

    C[r, j] (+)= sum_k A[r*a_rs + k*a_ks] * B[k*b_ks + j] for r < rows, j < cols (<= NR)."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = f"graphc.ukr.{suffix}.{tile.mr}x{tile.nv}x{width}.p"
    fn, fresh = h.helper_function(module, name, ir.FunctionType(
        ir.VoidType(), [h.PTR, h.I64, h.I64, h.PTR, h.I64, h.PTR, h.I64, h.I64, h.I64, h.I64,
                        h.I1]))
    if not fresh:
        return fn
    esize = 4 if suffix == "f32" else 8
    vt = _vec(ftype, width)
    a, a_rs, a_ks, bp, b_ks, c, c_rs, kc, rows, cols, accumulate = fn.args
    for p in (a, bp, c):
        p.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    mr, nv = tile.mr, tile.nv
    last = b.sub(rows, h.i64(1))
    row_ptrs = []
    for r in range(mr):
        rr = h.i64(r) if r == 0 else b.select(b.icmp_signed("<", h.i64(r), rows), h.i64(r), last)
        row_ptrs.append(b.gep(a, [b.mul(rr, a_rs)], inbounds=True, source_etype=ftype))
    masks = [lane_mask(b, width, v * width, cols) for v in range(nv)]

    def load_b(k):
        b_row = b.gep(bp, [b.mul(k, b_ks)], inbounds=True, source_etype=ftype)
        return [b.load(b.gep(b_row, [h.i64(v * width)], inbounds=True, source_etype=ftype),
                       typ=vt, align=64 if esize * width >= 64 else esize * width)
                for v in range(nv)]
    finals = fma_loop(b, vt, kc, row_ptrs, a_ks, load_b, nv)
    for r in range(mr):
        if r > 0:
            store_row = fn.append_basic_block(f"store{r}")
            after = fn.append_basic_block(f"after{r}")
            b.cbranch(b.icmp_signed("<", h.i64(r), rows), store_row, after)
            b.position_at_end(store_row)
        c_row = b.gep(c, [b.mul(h.i64(r), c_rs)], inbounds=True, source_etype=ftype)
        for v in range(nv):
            p = b.gep(c_row, [h.i64(v * width)], inbounds=True, source_etype=ftype)
            old = masked_load(b, p, vt, masks[v], esize)
            val = b.select(accumulate, b.fadd(old, finals[r][v]), finals[r][v])
            masked_store(b, val, p, masks[v], esize)
        if r > 0:
            b.branch(after)
            b.position_at_end(after)
    b.ret_void()
    return fn


def fma_loop(b: ir.IRBuilder, vt: ir.VectorType, depth: ir.Value, a_rows: list,
             a_ks: ir.Value, load_b, slots: int) -> list:
    """The register tile's loop over k, shared by the gemm and gemv micro-kernels:
    acc[r][v] = fma(splat(A_r[k * a_ks]), B_v(k), acc[r][v]) for k in [0, depth), with
    len(a_rows) x `slots` accumulators held in registers (phis). `a_rows`: a pointer per
    tile row; `load_b(k)`: the tile's `slots` B vectors at depth k. Returns the sums (zeros
    when depth <= 0) with the builder placed after the loop."""
    fn = b.function
    ftype = vt.element
    esize = 4 if isinstance(ftype, ir.FloatType) else 8
    fma = h.declare(b.module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])
    zero = h.const_like(vt, 0.0)
    pre = b.block
    loop = fn.append_basic_block("k")
    done = fn.append_basic_block("k.done")
    b.cbranch(b.icmp_signed(">", depth, h.i64(0)), loop, done)
    b.position_at_end(loop)
    k = b.phi(h.I64, name="k")
    k.add_incoming(h.i64(0), pre)
    accs = [[b.phi(vt, name=f"acc{r}.{v}") for v in range(slots)] for r in range(len(a_rows))]
    for row in accs:
        for phi in row:
            phi.add_incoming(zero, pre)
    bvecs = load_b(k)
    a_off = b.mul(k, a_ks)
    new = []
    for a_row in a_rows:
        s = b.load(b.gep(a_row, [a_off], inbounds=True, source_etype=ftype), typ=ftype,
                   align=esize)
        sv = h.splat(b, s, vt.count)
        new.append([b.call(fma, [sv, bv, acc]) for bv, acc in zip(bvecs, accs[len(new)])])
    k_next = b.add(k, h.i64(1), flags=h.NSW)
    k.add_incoming(k_next, b.block)
    for row, row_new in zip(accs, new):
        for phi, value in zip(row, row_new):
            phi.add_incoming(value, b.block)
    b.cbranch(b.icmp_signed("<", k_next, depth), loop, done)

    b.position_at_end(done)
    finals = [[b.phi(vt, name=f"sum{r}.{v}") for v in range(slots)] for r in range(len(a_rows))]
    for row, row_new in zip(finals, new):
        for phi, value in zip(row, row_new):
            phi.add_incoming(zero, pre)
            phi.add_incoming(value, loop)
    return finals


class _Ctx:
    """Named slots of the worker context (an i64 array; pointers stored as integers)."""
    (A, B, C, P, M, N, K, N_COL_BLOCKS, N_ROW_BLOCKS, ROW_BLOCK, N_ITEMS, Q) = range(12)


def ctx_get(b, ctx, slot, typ=h.I64):
    v = b.load(b.gep(ctx, [h.i64(slot)], inbounds=True, source_etype=h.I64), typ=h.I64, align=8)
    return b.inttoptr(v, h.PTR) if typ is h.PTR else v


class GemmForm:
    """How a contraction maps onto the gemm worker: for batch p and depth slice q (results
    of all slices are summed), C[p] (M x N, row stride `c_rs`) += A(p, q) @ B(p, q), A read in
    place with a row and a k stride, B packed from wherever it lives. Subclasses: plain
    matmul here, the convolutions in conv.py (implicit im2col in the packing)."""
    key = "?"

    def setup(self, b, ctx, ftype):
        """Per-worker values (loaded from ctx) the other hooks use; returns a dict."""
        return {"a": ctx_get(b, ctx, _Ctx.A, h.PTR), "b": ctx_get(b, ctx, _Ctx.B, h.PTR),
                "c": ctx_get(b, ctx, _Ctx.C, h.PTR), "m": ctx_get(b, ctx, _Ctx.M),
                "n": ctx_get(b, ctx, _Ctx.N), "k": ctx_get(b, ctx, _Ctx.K),
                "q": ctx_get(b, ctx, _Ctx.Q), "ftype": ftype}

    def a_at(self, b, st, p, q, i, k0):
        """(pointer to A(p,q)[i, k0], row stride, k stride)."""
        raise NotImplementedError

    def c_at(self, b, st, p, i, j):
        """(pointer to C[p][i, j], row stride)."""
        raise NotImplementedError

    def pack(self, b, st, p, q, k0, kc, p0, p1, pack, tile, width):
        """Write B(p,q)[k0:k0+kc, panels p0..p1) into `pack` (panel-major, zero past N)."""
        raise NotImplementedError



class MatmulForm(GemmForm):
    def __init__(self, ta: bool, tb: bool):
        self.ta, self.tb = ta, tb
        self.key = f"mm{int(ta)}{int(tb)}"

    def _strides(self, st):
        return (h.i64(1), st["m"]) if self.ta else (st["k"], h.i64(1))

    def a_at(self, b, st, p, q, i, k0):
        ft, m, k = st["ftype"], st["m"], st["k"]
        a_rs, a_ks = self._strides(st)
        off = b.add(b.mul(p, b.mul(m, k)), b.add(b.mul(i, a_rs), b.mul(k0, a_ks)))
        return b.gep(st["a"], [off], inbounds=True, source_etype=ft), a_rs, a_ks

    def c_at(self, b, st, p, i, j):
        m, n = st["m"], st["n"]
        off = b.add(b.mul(p, b.mul(m, n)), b.add(b.mul(i, n), j))
        return b.gep(st["c"], [off], inbounds=True, source_etype=st["ftype"]), n

    def pack(self, b, st, p, q, k0, kc, p0, p1, pack, tile, width):
        ftype, n, k_dim = st["ftype"], st["n"], st["k"]
        b_base = b.gep(st["b"], [b.mul(p, b.mul(k_dim, n))], inbounds=True, source_etype=ftype)
        _emit_pack(b, ftype, width, tile, b_base, pack, n, k_dim, k0, kc, p0, p1, self.tb)


def worker(module: ir.Module, ftype: ir.Type, width: int, tile: Tile,
           form: GemmForm) -> ir.Function:
    """void worker(ptr ctx): take items until none is left; compute each item's C block."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = (f"graphc.gemm.{suffix}.{tile.mr}x{tile.nv}x{width}.p"
            f".{form.key}")
    fn, fresh = h.helper_function(module, name, threads.worker_type())
    if not fresh:
        return fn
    ukr = microkernel(module, ftype, width, tile)
    half = microkernel(module, ftype, width, Tile(tile.mr, 1)) if tile.nv > 1 else None
    # a last panel of at most W/2 columns (N = 100 = 3 panels of 32 + 4): half-width vectors,
    # which cost half a full-width FMA on Zen 4 (it runs a 512-bit FMA as two 256-bit
    # halves). 128x400x100 on two threads 54.8 -> 52.8 us, on one 104.2 -> 99.0 us
    narrow = (microkernel(module, ftype, width // 2, Tile(tile.mr, 1))
              if half is not None and width >= 8 else None)
    nr = tile.nv * width
    block, participant = fn.args               # a threads.region_block
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ctx = threads.context_words(b, block)
    st = form.setup(b, ctx, ftype)
    m, n, k_dim, n_slices = st["m"], st["n"], st["k"], st["q"]
    n_kb = h.smax(b, h.ceil_div(b, k_dim, h.i64(KC)), h.i64(1))
    # With at most KEEP_SLABS depth blocks and one slice, the packed B of a column block
    # (a slab per depth block) is the same for every row block: a thread that takes the next
    # row block of the column block it just packed (its home range runs row blocks fastest)
    # keeps the pack instead of packing B again.
    keep_all = b.and_(b.icmp_signed("<=", n_kb, h.i64(KEEP_SLABS)),
                      b.icmp_signed("==", n_slices, h.i64(1)))
    slab = KC * nr * PANELS_PER_BLOCK
    # static size (512 KiB): a dynamic alloca made small products ~3% slower. No stack
    # probes (LLVM's "probe-stack" cost 0.5 us per call of a 64x64 product, touching all 128
    # pages): the call boundary refuses threads with stacks under 1 MiB (stack_check.py)
    pack = b.alloca(ir.ArrayType(ftype, slab * KEEP_SLABS), name="bpack")
    pack.align = 64
    pack.type = h.PTR                          # opaque: geps give element pointers
    n_cb, n_rb = ctx_get(b, ctx, _Ctx.N_COL_BLOCKS), ctx_get(b, ctx, _Ctx.N_ROW_BLOCKS)
    row_block, n_items = ctx_get(b, ctx, _Ctx.ROW_BLOCK), ctx_get(b, ctx, _Ctx.N_ITEMS)
    claim = block
    cursor = threads.new_cursor(b)
    panels = h.ceil_div(b, n, h.i64(nr))
    packed_for = b.alloca(h.I64, name="packed.for")
    packed_for.type = h.PTR
    b.store(h.i64(-1), packed_for)

    head = fn.append_basic_block("item")
    body = fn.append_basic_block("item.body")
    exit_ = fn.append_basic_block("exit")
    b.branch(head)
    b.position_at_end(head)
    item = threads.next_item(b, claim, participant, cursor)
    b.cbranch(b.icmp_signed("<", item, n_items), body, exit_)
    b.position_at_end(body)
    # item -> (batch, column block, row block), row block fastest
    rb = b.srem(item, n_rb)
    rest = b.sdiv(item, n_rb)
    cb = b.srem(rest, n_cb)
    p = b.sdiv(rest, n_cb)
    p0 = b.sdiv(b.mul(cb, panels), n_cb)
    p1 = b.sdiv(b.mul(b.add(cb, h.i64(1)), panels), n_cb)
    i0 = b.mul(rb, row_block)
    i1 = h.smin(b, m, b.add(i0, row_block))
    key = b.add(b.mul(p, n_cb), cb)
    fresh = b.or_(b.not_(keep_all), b.icmp_signed("!=", b.load(packed_for, typ=h.I64), key))

    with h.counted_loop(b, n_slices, name="q") as q:
        with h.counted_loop(b, n_kb, name="kb") as kbi:
            k0 = b.mul(kbi, h.i64(KC))
            kc = h.smax(b, h.smin(b, h.i64(KC), b.sub(k_dim, k0)), h.i64(0))
            accumulate = b.or_(b.icmp_signed(">", kbi, h.i64(0)),
                               b.icmp_signed(">", q, h.i64(0)))
            bslab = b.gep(pack, [b.mul(b.select(keep_all, kbi, h.i64(0)), h.i64(slab))],
                          inbounds=True, source_etype=ftype)
            with b.if_then(fresh):
                form.pack(b, st, p, q, k0, kc, p0, p1, bslab, tile, width)
            with h.counted_loop(b, p1, start=p0, name="jp") as jp:
                j = b.mul(jp, h.i64(nr))
                cols = h.smin(b, h.i64(nr), b.sub(n, j))
                bp = b.gep(bslab, [b.mul(b.mul(b.sub(jp, p0), kc), h.i64(nr))],
                           inbounds=True, source_etype=ftype)
                b_ks = h.i64(nr)

                def row_tiles(kernel):
                    with h.counted_loop(b, i1, start=i0, step=tile.mr, name="ir") as i:
                        rows = h.smin(b, h.i64(tile.mr), b.sub(i1, i))
                        a_at, a_rs, a_ks = form.a_at(b, st, p, q, i, k0)
                        c_at, c_rs = form.c_at(b, st, p, i, j)
                        b.call(kernel, [a_at, a_rs, a_ks, bp, b_ks, c_at, c_rs, kc, rows, cols,
                                        accumulate])
                if half is None:
                    row_tiles(ukr)
                else:
                    # a last panel of at most W columns: one vector per row, not NV
                    with b.if_else(b.icmp_signed(">", cols, h.i64(width))) as (full, edge):
                        with full:
                            row_tiles(ukr)
                        with edge:
                            if narrow is None:
                                row_tiles(half)
                            else:
                                with b.if_else(b.icmp_signed(">", cols, h.i64(width // 2))) \
                                        as (one, halved):
                                    with one:
                                        row_tiles(half)
                                    with halved:
                                        row_tiles(narrow)
    b.store(key, packed_for)
    b.branch(head)
    b.position_at_end(exit_)
    b.ret_void()
    return fn


def _emit_pack(b, ftype, width, tile, b_base, pack, n, k_dim, k0, kc, p0, p1, tb):
    """Copy B[k0:k0+kc, panels p0..p1) into `pack`: panel-major, kc rows of NR values."""
    nr = tile.nv * width
    esize = 4 if isinstance(ftype, ir.FloatType) else 8
    vt = _vec(ftype, width)
    with h.counted_loop(b, p1, start=p0, name="pp") as jp:
        j = b.mul(jp, h.i64(nr))
        dst_panel = b.mul(b.mul(b.sub(jp, p0), kc), h.i64(nr))
        if not tb:
            masks = [lane_mask(b, width, v * width, b.sub(n, j)) for v in range(tile.nv)]
            with h.counted_loop(b, kc, name="pk") as k:
                src = b.add(b.mul(b.add(k0, k), n), j)
                dst = b.add(dst_panel, b.mul(k, h.i64(nr)))
                for v in range(tile.nv):
                    sp = b.gep(b_base, [b.add(src, h.i64(v * width))], inbounds=True,
                               source_etype=ftype)
                    val = masked_load(b, sp, vt, masks[v], esize)
                    dp = b.gep(pack, [b.add(dst, h.i64(v * width))], inbounds=True,
                               source_etype=ftype)
                    b.store(val, dp, align=min(64, esize * width))
        else:
            # B is stored N x K: column j of op(B) is a contiguous run of K values. Blocks of
            # W columns x W depths are loaded as W vectors (along k) and transposed in
            # registers; the last kc % W depths are copied one value at a time.
            k_vec = b.and_(kc, h.i64(-width))
            zero = h.const_like(vt, 0.0)
            # (a loop over the NV vector columns, not NV copies: the transpose is the
            # biggest code in the module's compile)
            with h.counted_loop(b, k_vec, step=width, name="pkv") as kk:
                with h.counted_loop(b, h.i64(tile.nv * width), step=width, name="pvc") as vw:
                    vecs = []
                    for r in range(width):
                        col = b.add(j, b.add(vw, h.i64(r)))
                        inside = b.icmp_signed("<", col, n)
                        safe = b.select(inside, col, h.i64(0))
                        sp = b.gep(b_base, [b.add(b.mul(safe, k_dim), b.add(k0, kk))],
                                   inbounds=True, source_etype=ftype)
                        vecs.append(b.select(inside, b.load(sp, typ=vt, align=esize), zero))
                    for t, row in enumerate(_transpose(b, vecs, width)):
                        dst = b.add(dst_panel, b.add(b.mul(b.add(kk, h.i64(t)), h.i64(nr)), vw))
                        dp = b.gep(pack, [dst], inbounds=True, source_etype=ftype)
                        b.store(row, dp, align=min(64, esize * width))
            with h.counted_loop(b, h.i64(nr), name="pc") as cc:
                col = b.add(j, cc)
                inside = b.icmp_signed("<", col, n)
                safe = b.select(inside, col, h.i64(0))
                with h.counted_loop(b, kc, start=k_vec, name="pk") as k:
                    sp = b.gep(b_base, [b.add(b.mul(safe, k_dim), b.add(k0, k))], inbounds=True,
                               source_etype=ftype)
                    val = b.load(sp, typ=ftype, align=esize)
                    val = b.select(inside, val, h.const_like(ftype, 0.0))
                    dp = b.gep(pack, [b.add(dst_panel, b.add(b.mul(k, h.i64(nr)), cc))],
                               inbounds=True, source_etype=ftype)
                    b.store(val, dp, align=esize)


def _transpose(b, rows: list, width: int) -> list:
    """The W x W transpose of W `<W x T>` rows: log2(W) rounds of pairing row i with row
    i + W/2 and interleaving them (low halves into row 2i, high halves into row 2i + 1)."""
    half = width // 2
    lo = ir.Constant(ir.VectorType(h.I32, width),
                     [h.i32(x) for k in range(half) for x in (k, width + k)])
    hi = ir.Constant(ir.VectorType(h.I32, width),
                     [h.i32(x) for k in range(half, width) for x in (k, width + k)])
    stages = width.bit_length() - 1
    for _ in range(stages):
        nxt = []
        for i in range(half):
            x, y = rows[i], rows[i + half]
            nxt += [b.shuffle_vector(x, y, lo), b.shuffle_vector(x, y, hi)]
        rows = nxt
    return rows


def emit_gemm(kb, a, bm, c, ta: bool, tb: bool) -> None:
    """Emit the call of the gemm workers for one matmul node into kernel `kb`."""
    b = kb.b
    batch = h.product(b, kb.extents(c.shape[:-2]))
    m, n = kb.dim(c.shape[-2]), kb.dim(c.shape[-1])
    k_dim = kb.dim(a.shape[-2] if ta else a.shape[-1])
    width = kb.target.vector_width(c.dtype.itemsize)
    run_gemm(kb, MatmulForm(ta, tb), c.dtype, (a.ptr, bm.ptr, c.ptr), batch, h.i64(1), m, n,
             k_dim, choose_tile(width, c.shape[-1]))


def run_gemm(kb, form: GemmForm, dtype, ptrs, batch, slices, m, n, k_dim, tile: Tile) -> None:
    """Fill a worker context in kernel `kb` and run the workers of `form` (in parallel when
    the work is large enough)."""
    b = kb.b
    module = kb.module
    ftype = h.register_type(dtype)
    width = kb.target.vector_width(dtype.itemsize)
    block = threads.region_block(kb, CTX_WORDS, "gemm.ctx")
    ctx = threads.context_words(b, block)

    def put(slot, value):
        if value.type == h.PTR:
            value = b.ptrtoint(value, h.I64)
        b.store(value, b.gep(ctx, [h.i64(slot)], inbounds=True, source_etype=h.I64), align=8)

    for slot, ptr in zip((_Ctx.A, _Ctx.B, _Ctx.C), ptrs):
        put(slot, ptr)
    for slot, value in ((_Ctx.P, batch), (_Ctx.M, m), (_Ctx.N, n), (_Ctx.K, k_dim),
                        (_Ctx.Q, slices)):
        put(slot, value)
    # ~ single-thread nanoseconds: 2*M*N*K flops at ~100 per ns (the packed kernel's rate
    # here), plus streaming B once
    depth = b.mul(k_dim, slices)
    macs = b.mul(b.mul(batch, m), b.mul(n, depth))
    work_ns = b.add(b.sdiv(macs, h.i64(50)), b.sdiv(b.mul(b.mul(batch, n), depth),
                                                       h.i64(4)))
    nonempty = b.and_(b.icmp_signed(">", b.mul(batch, m), h.i64(0)),
                      b.icmp_signed(">", n, h.i64(0)))
    with b.if_then(nonempty):
        _launch(b, module, ftype, width, tile, form, block, put, batch, m, n, work_ns)


def _launch(b, module, ftype, width, tile, form, block, put, batch, m, n, work_ns):
    nr = tile.nv * width
    panels = h.ceil_div(b, n, h.i64(nr))
    # panels are grouped so one packing serves several
    n_cb = h.ceil_div(b, panels, h.i64(PANELS_PER_BLOCK))
    n_rb = h.ceil_div(b, m, h.i64(MC))
    # On a team, enough items for ITEMS_PER_THREAD per thread (dynamic balance) and
    # items of at most ~ITEM_NS (the threads' last items then end close together; the pool
    # takes a worker that ends > STALL_US after the caller for descheduled): first narrower
    # column blocks (down to one panel: every item still packs only its own columns of B),
    # then shorter row blocks, rows permitting (a row block packs its columns of B again
    # unless its thread just packed them). A region too small to split, or on one thread,
    # keeps whole blocks.
    team = b.sext(b.load(threads.threads_global(module), typ=h.I32, align=4), h.I64)
    split = b.and_(b.icmp_signed(">=", work_ns, h.i64(threads.MIN_PARALLEL_NS)),
                   b.icmp_signed(">", team, h.i64(1)))
    target = h.smax(b, b.mul(team, h.i64(ITEMS_PER_THREAD)), b.sdiv(work_ns, h.i64(ITEM_NS)))
    target = b.select(split, target, h.i64(1))
    n_cb = h.smax(b, n_cb, h.smin(b, h.ceil_div(b, target, batch), panels))
    want = h.ceil_div(b, target, b.mul(batch, n_cb))
    n_rb = h.smax(b, n_rb, h.smin(b, want, h.ceil_div(b, m, h.i64(2 * tile.mr))))
    row_block = b.mul(h.ceil_div(b, h.ceil_div(b, m, n_rb), h.i64(tile.mr)), h.i64(tile.mr))
    n_rb = h.ceil_div(b, m, row_block)
    n_items = b.mul(b.mul(batch, n_cb), n_rb)
    put(_Ctx.N_COL_BLOCKS, n_cb)
    put(_Ctx.N_ROW_BLOCKS, n_rb)
    put(_Ctx.ROW_BLOCK, row_block)
    put(_Ctx.N_ITEMS, n_items)
    fn = worker(module, ftype, width, tile, form)
    threads.emit_parallel(b, fn, block, n_items, work_ns)
