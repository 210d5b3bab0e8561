"""Lowering of matmul: batched, either operand transposed, any numeric dtype.

Float matmuls use the packed, register-tiled, threaded gemm of gemm.py; an epilogue is then
applied by one vectorised pass over C (`<W x T>` along the columns, masked at the row end),
in this kernel's own function, because the gemm's workers run on other threads in functions
of their own. Products with few rows (batch-1 inference) take gemv.py instead, which reads
B in place; with symbolic rows the choice is made at run time. Integer matmuls (and the
reference form kept for study) use the loop nest below, correct for every flag combination:
- transpose_b = False: i-k-j order. C's row is zeroed, then for each k the row of B (contiguous
  in j) is scaled by A[i,k] and added: the inner loop is a contiguous, vectorisable axpy.
- transpose_b = True: B is stored N x K, so each C[i,j] is a dot product over k, contiguous
  in B (and in A when A is not transposed).
Products and sums use plain fmul/fadd (no FMA contraction without fast-math), so float
results agree with numpy/BLAS to rounding, not bit for bit. Integer matmul wraps.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import helpers as h
from .epilogue import Epilogue, OutputSite, apply, masked_load, masked_store
from .gemm import emit_gemm
from .gemv import SMALL_M, emit_gemv
from .kernel import Buffer, KernelBuilder
from .parallel import chunking, parallel_for
from .registry import lowering


@lowering("matmul")
def _matmul(kb: KernelBuilder, node) -> None:
    (a, bm), (c,) = kb.inputs, kb.outputs
    emit_matmul(kb, a, bm, c, node.attrs["transpose_a"], node.attrs["transpose_b"])


def emit_matmul(kb: KernelBuilder, a: Buffer, bm: Buffer, c: Buffer, transpose_a: bool,
                transpose_b: bool, epilogue: Epilogue = None) -> None:
    """C = op(A) @ op(B) over the batch axes, into `c`; `epilogue` (see epilogue.py) maps
    each finished output value to the value stored, with coords (batch, row, col)."""
    if c.dtype.is_float:
        rows = c.shape[-2]
        # few rows: gemv.py (its dot form, for B transposed, needs A's rows contiguous).
        # Symbolic rows choose at run time, except in a training step: its batch is rarely
        # below SMALL_M, and carrying both paths cost ~0.2 s of the MLP step's compile.
        gemm_only = (transpose_a and transpose_b) or (
            rows >= SMALL_M if isinstance(rows, int) else kb.ctx.updates_params)
        if gemm_only:
            emit_gemm(kb, a, bm, c, transpose_a, transpose_b)
        elif isinstance(rows, int):
            emit_gemv(kb, a, bm, c, transpose_a, transpose_b)
        else:                                    # symbolic rows: pick at run time
            b = kb.b
            with b.if_else(b.icmp_signed("<", kb.dim(rows), h.i64(SMALL_M))) as (few, many):
                with few:
                    emit_gemv(kb, a, bm, c, transpose_a, transpose_b)
                with many:
                    emit_gemm(kb, a, bm, c, transpose_a, transpose_b)
        # one epilogue pass for both (a copy per path cost compile time in every module with
        # a symbolic-row matmul; with few rows the pass is one short row, still in L1)
        if epilogue is not None:
            _epilogue_pass(kb, c, epilogue)
        return
    emit_loop_matmul(kb, a, bm, c, transpose_a, transpose_b, epilogue)


EPILOGUE_CHUNK = 8192          # elements per parallel item of the epilogue pass, about


def _epilogue_pass(kb: KernelBuilder, c: Buffer, epilogue: Epilogue) -> None:
    """C[p, i, j:j+W] = epilogue(C[p, i, j:j+W]) with the row's last vector masked; rows are
    split over the thread pool when there are enough (the epilogue runs in the workers)."""
    b = kb.b
    batch = h.product(b, kb.extents(c.shape[:-2]))
    m, n = kb.dim(c.shape[-2]), kb.dim(c.shape[-1])
    rows = b.mul(batch, m)
    per_row = b.add(n, h.i64(64))
    chunk, items = chunking(b, rows, b.sdiv(h.i64(EPILOGUE_CHUNK), per_row), 1, max_items=16)

    def body(wkb, item, args):
        wb = wkb.b
        lo = wb.mul(item, args[0])
        hi = wb.add(lo, args[0])
        hi = wb.select(wb.icmp_signed("<", hi, args[1]), hi, args[1])
        _epilogue_rows(wkb, wkb.remap(c), epilogue, lo, hi)
    # ~ 1 ns per element: worth threads from a few tens of thousands of elements
    parallel_for(kb, items, b.mul(rows, n), body, args=[chunk, rows], name="epi")


def _epilogue_rows(kb, c: Buffer, epilogue: Epilogue, lo, hi) -> None:
    b = kb.b
    width = kb.target.vector_width(c.dtype.itemsize)
    vt = ir.VectorType(h.register_type(c.dtype), width)
    m, n = kb.dim(c.shape[-2]), kb.dim(c.shape[-1])
    lane_ids = ir.Constant(ir.VectorType(h.I64, width), [h.i64(k) for k in range(width)])
    esize = c.dtype.itemsize
    with h.counted_loop(b, hi, start=lo, name="ep") as r:
        p, i = b.sdiv(r, m), b.srem(r, m)
        row = h.mul(b, r, n)
        with h.counted_loop(b, n, step=width, name="epj") as j:
            mask = b.icmp_signed("<", b.add(h.splat(b, j, width), lane_ids), h.splat(b, n, width))
            at = h.add(b, row, j)
            ptr = h.element_ptr(b, c.ptr, at, c.dtype)
            site = OutputSite((p, i, j), at, width, 2, h.i64(1), mask)
            masked_store(b, apply(epilogue, b, masked_load(b, ptr, vt, mask, esize), site), ptr,
                         mask, esize)


def emit_loop_matmul(kb: KernelBuilder, a: Buffer, bm: Buffer, c: Buffer, transpose_a: bool,
                     transpose_b: bool, epilogue: Epilogue = None) -> None:
    """The plain loop nest (any dtype): integer matmuls, and a reference for study."""
    b = kb.b
    ta, tb = transpose_a, transpose_b
    batch = h.product(b, kb.extents(c.shape[:-2]))
    m, n = kb.dim(c.shape[-2]), kb.dim(c.shape[-1])
    k_dim = kb.dim(a.shape[-2] if ta else a.shape[-1])
    is_float = c.dtype.is_float
    typ = h.register_type(c.dtype)
    zero = h.const_like(typ, 0)

    def madd(acc, x, y):
        return b.fadd(acc, b.fmul(x, y)) if is_float else b.add(acc, b.mul(x, y))

    mk, kn, mn = h.mul(b, m, k_dim), h.mul(b, k_dim, n), h.mul(b, m, n)

    def a_index(base, i, k):   # A[i, k]
        return h.add(b, base, h.mul(b, k, m), i) if ta else h.add(b, base, h.mul(b, i, k_dim), k)

    def b_index(base, k, j):   # B[k, j]
        return h.add(b, base, h.mul(b, j, k_dim), k) if tb else h.add(b, base, h.mul(b, k, n), j)

    with h.counted_loop(b, batch, name="batch") as p:
        a_base, b_base, c_base = h.mul(b, p, mk), h.mul(b, p, kn), h.mul(b, p, mn)
        with h.counted_loop(b, m, name="i") as i:
            row = h.add(b, c_base, h.mul(b, i, n))
            if not tb:
                with h.counted_loop(b, n, name="j0") as j:
                    kb.store(c, h.add(b, row, j), zero)
                with h.counted_loop(b, k_dim, name="k") as k:
                    aik = kb.load(a, a_index(a_base, i, k))
                    with h.counted_loop(b, n, name="j") as j:
                        at = h.add(b, row, j)
                        bkj = kb.load(bm, b_index(b_base, k, j))
                        kb.store(c, at, madd(kb.load(c, at), aik, bkj))
                if epilogue is not None:
                    with h.counted_loop(b, n, name="je") as j:
                        at = h.add(b, row, j)
                        site = OutputSite((p, i, j), at)
                        kb.store(c, at, apply(epilogue, b, kb.load(c, at), site))
            else:
                acc = kb.local(typ)
                with h.counted_loop(b, n, name="j") as j:
                    kb.put(acc, zero)
                    with h.counted_loop(b, k_dim, name="k") as k:
                        x = kb.load(a, a_index(a_base, i, k))
                        y = kb.load(bm, b_index(b_base, k, j))
                        kb.put(acc, madd(kb.get(acc, typ), x, y))
                    at = h.add(b, row, j)
                    site = OutputSite((p, i, j), at)
                    kb.store(c, at, apply(epilogue, b, kb.get(acc, typ), site))
