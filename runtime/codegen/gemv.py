"""Matmul with few rows (M < SMALL_M, e.g. batch-1 inference).

With one to a few rows there is no reuse of B to exploit: the product is bound by reading
B once (K x N values), so neither B nor A is packed. What matters is reading B at the
cache's full rate and each core reading the same part of B call after call:
- Columns are split into one run of vectors per thread (`column_items`): 400 columns on
  two threads are 13 and 12 vectors of 16, not the gemm's 4 + 3 panels of 64. With the
  pool's home ranges (runtime/threads.py) each core then reads the same half of B every
  call, and that half (600 KB for a 784x400 layer) stays in its own L2.
- A register tile of R rows x NVB vectors (`TILES`) sweeps k over the whole depth; each
  step loads NVB consecutive vectors of one row of B (one contiguous run of up to 1 KB, which
  the prefetchers follow) and broadcasts R values of A. Rows go in groups of 4, then one
  at a time; an item's whole vectors in blocks of NVB, with plain loads only (masked loads
  are slow here); the row's partial last vector, if any, goes with the last few whole
  vectors in a tile whose one masked load is that vector's.
- Code size matters (every inference module with a matmul whose rows are symbolic carries
  this path next to the gemm): the tiles and the loops over rows and column blocks are
  internal functions per dtype (`row_driver`, `dot_driver`), shared by every few-rows
  matmul of the module; each matmul adds only its worker, which splits the columns. A fused
  epilogue (bias, activation) is matmul.py's pass over C, shared with the gemm path.

B transposed (stored N x K, as ONNX's Gemm with transB and PyTorch's Linear keep weights):
each output is a dot product of a row of A with a row of B, both contiguous, so the vectors
run along k instead (`dot_kernel`): one row of A against J = 8 rows of B streamed side by
side, a masked last vector, then one horizontal sum per output. Columns are split per
thread as above.

Sums run in k order with fused multiply-adds, like the gemm (the dot form sums W partial
sums at the end): equal to numpy/BLAS to rounding, not bit for bit.
"""
from __future__ import annotations

import llvmlite.ir as ir

from .. import threads
from . import helpers as h
from .epilogue import masked_load, masked_store
from .gemm import fma_loop, lane_mask
from .kernel import Buffer, KernelBuilder
from .parallel import parallel_for
from .reduce import horizontal

SMALL_M = 8                    # fewer rows than this: this kernel instead of the packed gemm
# Row form: (rows, ((vectors, vectors always present), ...)). A block of whole vectors takes
# the narrowest tile that covers it, else the widest; at most 24 accumulators (the B vectors
# and A broadcasts must fit in the 32 registers too). Few variants on purpose: every
# inference module with a symbolic-row matmul carries them.
TILES = ((4, ((6, 0),)), (1, ((4, 0), (8, 4), (12, 8), (16, 12))))
TAIL_WHOLE = 3                 # whole vectors the tail tile takes with the partial one
# Dot form (B transposed): one row of A against J rows of B, J = 8 then 1
DOT_COLUMNS = (8, 1)
# Below this many bytes of B a product stays on one thread (the region's fork and join
# cost more than reading the rest of a small B); measured on the MLP's 400x100 layer
# (160 KB): 2.6 us on one thread, 1.5 us on two.
PARALLEL_BYTES = 64 * 1024


def tile_kernel(module: ir.Module, ftype: ir.Type, width: int, rows: int, nvb: int,
                full: int, tail: bool = False) -> ir.Function:
    """void tile(ptr a, i64 a_rs, i64 a_ks, ptr b, i64 b_ks, ptr c, i64 c_rs, i64 k, i64 count,
                 i64 tail_cols)

    C[r, v*W:(v+1)*W] = sum_k A[r*a_rs + k*a_ks] * B[k*b_ks + v*W : ...] for r < rows and the
    `count` whole vectors v < count (full <= count <= nvb: the first `full` are always there).
    Loads are plain: masked loads run at a fraction of the speed here (784x400 at batch 1 on
    two threads, in C: 5.8 us plain, 8.9 us with 8 of 16 loads masked), so a vector past
    `count` reloads vector 0 (an L1 hit) and is not stored.

    `tail`: one more vector, at `count`, of tail_cols < W columns (the row's partial last
    vector): the only masked load, in the same sweep over k."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = f"graphc.gemv.{suffix}.{rows}x{nvb}x{width}.{'t' if tail else full}"
    fnty = ir.FunctionType(ir.VoidType(), [h.PTR, h.I64, h.I64, h.PTR, h.I64, h.PTR, h.I64,
                                           h.I64, h.I64, h.I64])
    # kept out of line: inlined into the worker (often its only caller), its accumulators
    # and masks competed for registers with the worker's loops and spilled
    fn, fresh = h.helper_function(module, name, fnty, noinline=True)
    if not fresh:
        return fn
    esize = 4 if suffix == "f32" else 8
    vt = ir.VectorType(ftype, width)
    a, a_rs, a_ks, bp, b_ks, c, c_rs, depth, count, tail_cols = fn.args
    for p in (a, bp, c):
        p.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    row_ptrs = [b.gep(a, [b.mul(h.i64(r), a_rs)], inbounds=True, source_etype=ftype)
                for r in range(rows)]
    # element offset of each vector's load in a row of B (vector 0's when past `count`)
    present = [None if v < full else b.icmp_signed("<", h.i64(v), count) for v in range(nvb)]
    offsets = [h.i64(v * width) if present[v] is None else
               b.select(present[v], h.i64(v * width), h.i64(0)) for v in range(nvb)]
    masks = [None] * nvb
    if tail:                                   # slot nvb: the partial vector at `count`
        present.append(None)
        offsets.append(b.mul(count, h.i64(width)))
        masks.append(lane_mask(b, width, 0, tail_cols))
    slots = len(offsets)

    def load_b(k):
        b_row = b.gep(bp, [b.mul(k, b_ks)], inbounds=True, source_etype=ftype)
        return [_load(b, b.gep(b_row, [off], inbounds=True, source_etype=ftype), vt, mask, esize)
                for off, mask in zip(offsets, masks)]
    finals = fma_loop(b, vt, depth, row_ptrs, a_ks, load_b, slots)
    for r in range(rows):
        c_row = b.gep(c, [b.mul(h.i64(r), c_rs)], inbounds=True, source_etype=ftype)
        for v in range(slots):
            p = b.gep(c_row, [offsets[v] if masks[v] is not None else h.i64(v * width)],
                      inbounds=True, source_etype=ftype)
            if masks[v] is not None:
                masked_store(b, finals[r][v], p, masks[v], esize)
            elif present[v] is None:
                b.store(finals[r][v], p, align=esize)
            else:
                with b.if_then(present[v]):
                    b.store(finals[r][v], p, align=esize)
    b.ret_void()
    return fn


def dot_kernel(module: ir.Module, ftype: ir.Type, width: int, cols: int) -> ir.Function:
    """void dot(ptr a, ptr b, i64 b_rs, ptr c, i64 k)

    c[j] = sum_k a[k] * B[j*b_rs + k] for j < cols: W values of k per step (the last step
    masked), then a horizontal sum per output."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = f"graphc.gemv.dot.{suffix}.{cols}x{width}"
    fnty = ir.FunctionType(ir.VoidType(), [h.PTR, h.PTR, h.I64, h.PTR, h.I64])
    fn, fresh = h.helper_function(module, name, fnty, noinline=True)   # as tile_kernel
    if not fresh:
        return fn
    esize = 4 if suffix == "f32" else 8
    vt = ir.VectorType(ftype, width)
    a, bp, b_rs, c, depth = fn.args
    for p in (a, bp, c):
        p.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    b_rows = [b.gep(bp, [b.mul(h.i64(j), b_rs)], inbounds=True, source_etype=ftype)
              for j in range(cols)]
    fma = h.declare(module, f"llvm.fma.{h.type_suffix(vt)}", vt, [vt, vt, vt])
    accs = [_entry_slot(b, vt) for _ in range(cols)]
    for slot in accs:
        b.store(h.const_like(vt, 0.0), slot)

    def step(k, mask):
        av = _load(b, b.gep(a, [k], inbounds=True, source_etype=ftype), vt, mask, esize)
        for row, acc in zip(b_rows, accs):
            bv = _load(b, b.gep(row, [k], inbounds=True, source_etype=ftype), vt, mask, esize)
            b.store(b.call(fma, [av, bv, b.load(acc, typ=vt)]), acc)

    whole = b.mul(b.sdiv(depth, h.i64(width)), h.i64(width))
    with h.counted_loop(b, whole, step=width, name="k") as k:
        step(k, None)
    with b.if_then(b.icmp_signed("<", whole, depth)):
        step(whole, lane_mask(b, width, 0, b.sub(depth, whole)))
    for j, acc in enumerate(accs):
        total = horizontal(b, "reduce_sum", b.load(acc, typ=vt))
        b.store(total, b.gep(c, [h.i64(j)], inbounds=True, source_etype=ftype), align=esize)
    b.ret_void()
    return fn


def _entry_slot(b, typ):
    """A stack slot in the entry block (promoted to a register by mem2reg)."""
    with b.goto_entry_block():
        return b.alloca(typ)


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


def row_driver(module: ir.Module, ftype: ir.Type, width: int) -> ir.Function:
    """void rows(ptr a, i64 a_rs, i64 a_ks, ptr b, i64 n, ptr c, i64 m, i64 k, i64 j0, i64 j1)

    C[0:m, j0:j1] = A @ B[:, j0:j1] with A[r, k] at a + r*a_rs + k*a_ks, B and C row-major
    with n columns, j0 a multiple of W: rows in groups of 4 then one at a time, columns in
    tile blocks. One per dtype, shared by every few-rows matmul of the module."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = f"graphc.gemv.rows.{suffix}.{width}"
    fn, fresh = h.helper_function(module, name, ir.FunctionType(
        ir.VoidType(), [h.PTR, h.I64, h.I64, h.PTR, h.I64, h.PTR, h.I64, h.I64, h.I64, h.I64]))
    if not fresh:
        return fn
    a, a_rs, a_ks, bp, n, c, m, k, j0, j1 = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    v0 = b.sdiv(j0, h.i64(width))
    v1 = b.sdiv(j1, h.i64(width))                    # whole vectors: [v0, v1)
    tail_cols = b.sub(j1, b.mul(v1, h.i64(width)))   # then a partial one, if any
    # with a partial vector, the last (up to TAIL_WHOLE) whole vectors go with it in one
    # sweep (the tail tile); the ones before, in blocks
    has_tail = b.icmp_signed(">", tail_cols, h.i64(0))
    with_tail = h.smin(b, b.sub(v1, v0), h.i64(TAIL_WHOLE))
    v_blocks = b.select(has_tail, b.sub(v1, with_tail), v1)
    m4 = b.and_(m, h.i64(-4))
    for rows, variants in TILES:
        kernels = [(nvb, tile_kernel(module, ftype, width, rows, nvb, full))
                   for nvb, full in variants]
        tail = tile_kernel(module, ftype, width, rows, TAIL_WHOLE, 0, tail=True)
        tail_only = tile_kernel(module, ftype, width, rows, 0, 0, tail=True)   # N < W
        start, stop = (h.i64(0), m4) if rows == 4 else (m4, m)
        with h.counted_loop(b, stop, start=start, step=rows, name=f"r{rows}") as i:
            a_at = b.gep(a, [b.mul(i, a_rs)], inbounds=True, source_etype=ftype)
            c_row = b.mul(i, n)

            def block(v, count, _a_at=a_at, _c_row=c_row):
                j = b.mul(v, h.i64(width))
                b_at = b.gep(bp, [j], inbounds=True, source_etype=ftype)
                c_at = b.gep(c, [b.add(_c_row, j)], inbounds=True, source_etype=ftype)
                return [_a_at, a_rs, a_ks, b_at, n, c_at, n, k, count, tail_cols]
            _blocks(b, kernels, v0, v_blocks, block)
            with b.if_then(has_tail):
                with b.if_else(b.icmp_signed(">", with_tail, h.i64(0))) as (some, none):
                    with some:
                        b.call(tail, block(v_blocks, with_tail))
                    with none:
                        b.call(tail_only, block(v_blocks, with_tail))
    b.ret_void()
    return fn


def dot_driver(module: ir.Module, ftype: ir.Type, width: int) -> ir.Function:
    """void dots(ptr a, ptr b, ptr c, i64 m, i64 n, i64 k, i64 j0, i64 j1)

    C[0:m, j0:j1] = A @ B[j0:j1, :]^T, A (m x k), B (n x k) and C (m x n) row-major: each
    row of A against blocks of DOT_COLUMNS rows of B. One per dtype, shared."""
    suffix = "f32" if isinstance(ftype, ir.FloatType) else "f64"
    name = f"graphc.gemv.dots.{suffix}.{width}"
    fn, fresh = h.helper_function(module, name, ir.FunctionType(
        ir.VoidType(), [h.PTR, h.PTR, h.PTR] + [h.I64] * 5))
    if not fresh:
        return fn
    a, bm, c, m, n, k, j0, j1 = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    wide, one = (dot_kernel(module, ftype, width, cols) for cols in DOT_COLUMNS)
    step = DOT_COLUMNS[0]
    whole = b.add(j0, b.mul(b.sdiv(b.sub(j1, j0), h.i64(step)), h.i64(step)))
    with h.counted_loop(b, m, name="dr") as i:
        a_at = b.gep(a, [b.mul(i, k)], inbounds=True, source_etype=ftype)
        c_row = b.mul(i, n)
        for kernel, lo, hi, by in ((wide, j0, whole, step), (one, whole, j1, 1)):
            with h.counted_loop(b, hi, start=lo, step=by, name="dj") as j:
                b_at = b.gep(bm, [b.mul(j, k)], inbounds=True, source_etype=ftype)
                c_at = b.gep(c, [b.add(c_row, j)], inbounds=True, source_etype=ftype)
                b.call(kernel, [a_at, b_at, k, c_at, k])
    b.ret_void()
    return fn


def emit_gemv(kb: KernelBuilder, a: Buffer, bm: Buffer, c: Buffer, transpose_a: bool,
              transpose_b: bool = False) -> None:
    """C[p] = op(A[p]) @ op(B[p]) for few rows (see the module docstring). B transposed
    needs A not transposed (its rows contiguous along k)."""
    if transpose_b and transpose_a:
        raise ValueError("gemv's dot form needs A's rows contiguous (transpose_a False)")
    b = kb.b
    batch = h.product(b, kb.extents(c.shape[:-2]))
    n = kb.dim(c.shape[-1])
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
    driver = (dot_driver if transpose_b else row_driver)(kb.module, ftype, width)

    def body(wkb, item, args):
        wb = wkb.b
        wa, wbm, wc = wkb.remap(a), wkb.remap(bm), wkb.remap(c)
        m_, n_, k_ = wkb.dim(c.shape[-2]), wkb.dim(c.shape[-1]), args[2]
        per = args[0]
        p, ci = wb.sdiv(item, per), wb.srem(item, per)
        # run ci: vectors [ceil(ci*n_vec/per), ceil((ci+1)*n_vec/per)): the larger runs
        # first, so the calling thread (participant 0, which starts first) takes the larger
        def run_start(c_):
            return wb.sdiv(wb.add(wb.mul(c_, args[1]), wb.sub(per, h.i64(1))), per)
        j0 = wb.mul(run_start(ci), h.i64(width))
        j1 = h.smin(wb, wb.mul(run_start(wb.add(ci, h.i64(1))), h.i64(width)), n_)
        a_at = h.element_ptr(wb, wa.ptr, h.mul(wb, p, h.mul(wb, m_, k_)), c.dtype)
        b_at = h.element_ptr(wb, wbm.ptr, h.mul(wb, p, h.mul(wb, k_, n_)), c.dtype)
        c_at = h.element_ptr(wb, wc.ptr, h.mul(wb, p, h.mul(wb, m_, n_)), c.dtype)
        if transpose_b:
            wb.call(driver, [a_at, b_at, c_at, m_, n_, k_, j0, j1])
        else:
            a_rs, a_ks = (h.i64(1), m_) if transpose_a else (k_, h.i64(1))
            wb.call(driver, [a_at, a_rs, a_ks, b_at, n_, c_at, m_, k_, j0, j1])

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
    count = h.smin(b, left, widest)
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
