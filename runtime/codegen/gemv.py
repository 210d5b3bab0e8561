"""Matmul with few rows (M < SMALL_M, e.g. batch-1 inference), B not transposed.

With one to a few rows there is no reuse of B to exploit: the product is bound by reading
B once (K x N values), so neither B nor A is packed. What matters is reading B at the
cache's full rate and each core reading the same part of B call after call:
- Columns are split into one run of vectors per thread (`column_items`): 400 columns on
  two threads are 13 and 12 vectors of 16, not the gemm's 4 + 3 panels of 64. With the
  pool's home ranges (runtime/threads.py) each core then reads the same half of B every
  call, and that half (600 KB for a 784x400 layer) stays in its own L2.
- A register tile of R rows x NVB vectors (`TILES`) sweeps k over the whole depth; each
  step loads NVB consecutive vectors of one row of B (one contiguous run of up to 1 KB, which
  the prefetchers follow) and broadcasts R values of A. Rows go in groups of 4, then 2,
  then 1; an item's columns in blocks of NVB vectors, the last block masked (masked-off
  lanes read nothing).
- The tile's k loop is one internal function per (dtype, R, NVB), shared by every few-rows
  matmul of the module; the fused epilogue (bias, activation) runs in the worker on the
  block just stored, while it is in L1.

Sums run in k order with fused multiply-adds, like the gemm: equal to numpy/BLAS to
rounding, not bit for bit.
"""
from __future__ import annotations

import llvmlite.ir as ir

from .. import threads
from . import helpers as h
from .epilogue import Epilogue, epilogue_rows, masked_load, masked_store
from .kernel import Buffer, KernelBuilder
from .parallel import parallel_for

SMALL_M = 8                    # fewer rows than this: this kernel instead of the packed gemm
# (rows, vector counts): a block of columns takes the narrowest tile that covers it (the
# widest when none does); at most 24 accumulators, so the B vectors and A broadcasts fit in
# the 32 registers too
TILES = ((4, (2, 6)), (2, (4, 12)), (1, (1, 4, 8, 16)))
# Below this many bytes of B a product stays on one thread (the region's fork and join
# cost more than reading the rest of a small B); measured on the MLP's 400x100 layer
# (160 KB): 2.6 us on one thread, 1.5 us on two.
PARALLEL_BYTES = 64 * 1024


def _lane_mask(b, width: int, base: int, limit: ir.Value) -> ir.Value:
    lanes = ir.Constant(ir.VectorType(h.I64, width), [h.i64(base + k) for k in range(width)])
    return b.icmp_signed("<", lanes, h.splat(b, limit, width))


def tile_kernel(module: ir.Module, ftype: ir.Type, width: int, rows: int, nvb: int,
                full: int) -> ir.Function:
    """void tile(ptr a, i64 a_rs, i64 a_ks, ptr b, i64 b_ks, ptr c, i64 c_rs, i64 k, i64 cols)

    C[r, j] = sum_k A[r*a_rs + k*a_ks] * B[k*b_ks + j] for r < rows, j < cols (<= nvb*W).
    The caller promises cols > full*W: the first `full` vectors need no mask (there are
    only 7 mask registers)."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = f"graphc.gemv.{suffix}.{rows}x{nvb}x{width}.{full}"
    found = module.globals.get(name)
    if found is not None:
        return found
    esize = 4 if suffix == "f32" else 8
    vt = ir.VectorType(ftype, width)
    fnty = ir.FunctionType(ir.VoidType(), [h.PTR, h.I64, h.I64, h.PTR, h.I64, h.PTR, h.I64,
                                           h.I64, h.I64])
    fn = ir.Function(module, fnty, name=name)
    fn.linkage = "internal"
    # kept out of line: inlined into the worker (often its only caller), its accumulators
    # and masks competed for registers with the worker's loops and spilled
    fn.attributes.add("noinline")
    a, a_rs, a_ks, bp, b_ks, c, c_rs, depth, cols = fn.args
    for p in (a, bp, c):
        p.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    row_ptrs = [b.gep(a, [b.mul(h.i64(r), a_rs)], inbounds=True, source_etype=ftype)
                for r in range(rows)]
    masks = [None if v < full else _lane_mask(b, width, v * width, cols) for v in range(nvb)]
    zero = h.const_like(vt, 0.0)
    fma = h.declare(module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])

    pre = b.block
    loop = fn.append_basic_block("k")
    done = fn.append_basic_block("k.done")
    b.cbranch(b.icmp_signed(">", depth, h.i64(0)), loop, done)
    b.position_at_end(loop)
    k = b.phi(h.I64, name="k")
    k.add_incoming(h.i64(0), pre)
    accs = [[b.phi(vt, name=f"acc{r}.{v}") for v in range(nvb)] for r in range(rows)]
    for row in accs:
        for phi in row:
            phi.add_incoming(zero, pre)
    b_row = b.gep(bp, [b.mul(k, b_ks)], inbounds=True, source_etype=ftype)
    bvecs = [_load(b, b.gep(b_row, [h.i64(v * width)], inbounds=True, source_etype=ftype),
                   vt, masks[v], esize) for v in range(nvb)]
    a_off = b.mul(k, a_ks)
    new = []
    for r in range(rows):
        s = b.load(b.gep(row_ptrs[r], [a_off], inbounds=True, source_etype=ftype), typ=ftype,
                   align=esize)
        sv = h.splat(b, s, width)
        new.append([b.call(fma, [sv, bvecs[v], accs[r][v]]) for v in range(nvb)])
    k_next = b.add(k, h.i64(1), flags=h.NSW)
    k.add_incoming(k_next, b.block)
    for r in range(rows):
        for v in range(nvb):
            accs[r][v].add_incoming(new[r][v], b.block)
    b.cbranch(b.icmp_signed("<", k_next, depth), loop, done)

    b.position_at_end(done)
    finals = [[b.phi(vt, name=f"sum{r}.{v}") for v in range(nvb)] for r in range(rows)]
    for r in range(rows):
        c_row = b.gep(c, [b.mul(h.i64(r), c_rs)], inbounds=True, source_etype=ftype)
        for v in range(nvb):
            finals[r][v].add_incoming(zero, pre)
            finals[r][v].add_incoming(new[r][v], loop)
            p = b.gep(c_row, [h.i64(v * width)], inbounds=True, source_etype=ftype)
            if masks[v] is None:
                b.store(finals[r][v], p, align=esize)
            else:
                masked_store(b, finals[r][v], p, masks[v], esize)
    b.ret_void()
    return fn


def _load(b, p, vt, mask, esize):
    return b.load(p, typ=vt, align=esize) if mask is None else masked_load(b, p, vt, mask, esize)


def column_items(b: ir.IRBuilder, module: ir.Module, n_vec: ir.Value) -> ir.Value:
    """How many runs of vectors to cut a row into: at least one per thread (columns
    permitting), runs of at most 16 vectors, and a multiple of the thread count so every
    thread's home range holds the same number of runs."""
    threads_now = b.sext(b.load(threads.threads_global(module), typ=h.I32, align=4), h.I64)
    items = b.sdiv(b.add(n_vec, h.i64(15)), h.i64(16))
    items = b.mul(b.sdiv(b.add(items, b.sub(threads_now, h.i64(1))), threads_now), threads_now)
    return b.select(b.icmp_signed("<", n_vec, items), n_vec, items)


def emit_gemv(kb: KernelBuilder, a: Buffer, bm: Buffer, c: Buffer, transpose_a: bool,
              epilogue: Epilogue = None) -> None:
    """C[p] = op(A[p]) @ B[p] for few rows (see the module docstring), epilogue fused."""
    b = kb.b
    batch = h.product(b, kb.extents(c.shape[:-2]))
    m, n = kb.dim(c.shape[-2]), kb.dim(c.shape[-1])
    k_dim = kb.dim(a.shape[-2] if transpose_a else a.shape[-1])
    ftype = h.register_type(c.dtype)
    width = kb.target.vector_width(c.dtype.itemsize)
    n_vec = b.sdiv(b.add(n, h.i64(width - 1)), h.i64(width))
    per_batch = column_items(b, kb.module, n_vec)
    n_items = b.mul(batch, per_batch)
    b_bytes = b.mul(b.mul(batch, b.mul(k_dim, n)), h.i64(c.dtype.itemsize))
    # the region's work, in the units emit_parallel compares with MIN_PARALLEL_NS
    work_ns = b.select(b.icmp_signed(">=", b_bytes, h.i64(PARALLEL_BYTES)),
                       h.i64(threads.MIN_PARALLEL_NS), h.i64(0))
    kernels = {rows: [(nvb, tile_kernel(kb.module, ftype, width, rows, nvb, full))
                      for nvb, full in zip(variants, (0,) + variants)]
               for rows, variants in TILES}

    def body(wkb, item, args):
        wb = wkb.b
        wa, wbm, wc = wkb.remap(a), wkb.remap(bm), wkb.remap(c)
        m_, n_, k_ = wkb.dim(c.shape[-2]), wkb.dim(c.shape[-1]), args[2]
        per = args[0]
        p, ci = wb.sdiv(item, per), wb.srem(item, per)
        v0 = wb.sdiv(wb.mul(ci, args[1]), per)
        v1 = wb.sdiv(wb.mul(wb.add(ci, h.i64(1)), args[1]), per)
        a_base = h.mul(wb, p, h.mul(wb, m_, k_))
        b_base = h.mul(wb, p, h.mul(wb, k_, n_))
        c_base = h.mul(wb, p, h.mul(wb, m_, n_))
        a_rs, a_ks = (h.i64(1), m_) if transpose_a else (k_, h.i64(1))
        # row groups of 4, then 2, then 1: [0, m4), [m4, m2), [m2, m)
        m4 = wb.and_(m_, h.i64(-4))
        m2 = wb.and_(m_, h.i64(-2))
        for rows, variants in TILES:
            start = {4: h.i64(0), 2: m4, 1: m2}[rows]
            stop = {4: m4, 2: m2, 1: m_}[rows]
            with h.counted_loop(wb, stop, start=start, step=rows, name=f"r{rows}") as i:
                a_at = h.element_ptr(wb, wa.ptr, h.add(wb, a_base, h.mul(wb, i, a_rs)), c.dtype)
                c_row = h.add(wb, c_base, h.mul(wb, i, n_))

                def block(v, nvb, _a_at=a_at, _c_row=c_row):
                    j = wb.mul(v, h.i64(width))
                    cols = _min(wb, wb.mul(nvb, h.i64(width)), wb.sub(n_, j))
                    b_at = h.element_ptr(wb, wbm.ptr, h.add(wb, b_base, j), c.dtype)
                    c_at = h.element_ptr(wb, wc.ptr, h.add(wb, _c_row, j), c.dtype)
                    return [_a_at, a_rs, a_ks, b_at, n_, c_at, n_, k_, cols]
                _blocks(wb, kernels[rows], v0, v1, block)
        if epilogue is not None:
            # the item's columns of every row, just written (still in L1)
            rows0 = wb.mul(p, m_)
            epilogue_rows(wkb, wc, epilogue, rows0, wb.add(rows0, m_),
                          wb.mul(v0, h.i64(width)), _min(wb, wb.mul(v1, h.i64(width)), n_))

    parallel_for(kb, n_items, work_ns, body, args=[per_batch, n_vec, k_dim], name="gemv")


def _blocks(b, kernels, v0, v1, block_args):
    """Cover vectors [v0, v1) of a row with tile calls: while vectors remain, the narrowest
    tile of `kernels` ((vectors, function), narrowest first) that takes them all, else the
    widest; `block_args(v, count)` gives a call's arguments for vectors [v, v + count)."""
    fn = b.function
    head, done = fn.append_basic_block("blk"), fn.append_basic_block("blk.done")
    pre = b.block
    b.branch(head)
    b.position_at_end(head)
    v = b.phi(h.I64, name="v")
    v.add_incoming(v0, pre)
    work = fn.append_basic_block("blk.body")
    b.cbranch(b.icmp_signed("<", v, v1), work, done)
    b.position_at_end(work)
    left = b.sub(v1, v)
    widest = h.i64(kernels[-1][0])
    count = _min(b, left, widest)
    latch = fn.append_basic_block("blk.next")
    for nvb, kernel in kernels[:-1]:
        here, other = fn.append_basic_block(f"blk.{nvb}"), fn.append_basic_block("blk.wider")
        b.cbranch(b.icmp_signed("<=", left, h.i64(nvb)), here, other)
        b.position_at_end(here)
        b.call(kernel, block_args(v, count))
        b.branch(latch)
        b.position_at_end(other)
    b.call(kernels[-1][1], block_args(v, count))
    b.branch(latch)
    b.position_at_end(latch)
    v.add_incoming(b.add(v, count), latch)
    b.branch(head)
    b.position_at_end(done)


def _min(b, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)
