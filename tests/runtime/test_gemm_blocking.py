"""The packed gemm's blocking choices (runtime/codegen/gemm.py) against numpy (float64):
a last panel of at most W columns (the one-vector micro-kernel) next to full panels,
items split by column blocks and then row blocks (1 and 2 threads, the parallel threshold
forced to 0), the register-transposed packing of a transposed B (depths that are and are
not multiples of W), a column block's packed B kept across row blocks (depths of 1 to
KEEP_SLABS depth blocks, and more, where it is packed per item), rows past MC."""
from __future__ import annotations

import numpy as np
import pytest

import runtime.threads as threads
from ir.symbolic import evaluate
from runtime.codegen import gemm

from rt_kernel import compile_kernels
from test_kernels_matmul import matmul_specs

N = "N"
# (batch dims, M, K, Ncols): Ncols % 32 in 1..16 takes the narrow last panel (16, 48, 100,
# 400), 17 and 33 one that is wider than a vector; K 16/31/40/257/300 cover the
# transposed packing's W-blocks and its scalar remainder; M runs past MC and MR edges
SHAPES = [
    ((), N, 31, 16), ((), N, 40, 48), ((), 37, 257, 100), ((), N, 16, 17), ((), 130, 300, 33),
    ((2,), N, 57, 400), ((), 300, 600, 70), ((), 140, 1100, 20),
]


@pytest.fixture(scope="module", params=["f32", "f64"])
def compiled(request):
    saved = threads.MIN_PARALLEL_NS
    threads.MIN_PARALLEL_NS = 0          # split every product, however small
    try:
        specs, meta = matmul_specs(request.param, SHAPES)
        fns, _ = compile_kernels(specs)
    finally:
        threads.MIN_PARALLEL_NS = saved
    return request.param, specs, meta, fns


def _check(fn, ins, ta, tb, env, rng, np_dtype, rtol):
    a, bm = (rng.standard_normal(tuple(evaluate(d, env) for d in t.shape)).astype(np_dtype)
             for t in ins)
    a64, b64 = a.astype(np.float64), bm.astype(np.float64)
    op_a = np.swapaxes(a64, -1, -2) if ta else a64
    op_b = np.swapaxes(b64, -1, -2) if tb else b64
    want = op_a @ op_b
    bound = rtol * (np.abs(op_a) @ np.abs(op_b)) + 1e-30
    (got,) = fn(a, bm, **env)
    assert got.shape == want.shape
    err = np.abs(got - want)
    assert (err <= bound).all(), (ins, ta, tb, env, float(err.max()))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_blocking_matches_numpy(compiled, n_threads):
    dtype, specs, meta, fns = compiled
    jit = fns[0].jit
    address = jit.engine.get_global_value_address(threads.NUM_THREADS_GLOBAL)
    threads.set_module_threads(address, n_threads)
    try:
        rng = np.random.default_rng(10 + n_threads)
        np_dtype = np.float32 if dtype == "f32" else np.float64
        rtol = 2e-5 if dtype == "f32" else 1e-12
        for n in (8, 23, 131, 260):
            for fn, (_, ins, _), (ta, tb) in zip(fns, specs, meta):
                _check(fn, ins, ta, tb, {"N": n}, rng, np_dtype, rtol)
    finally:
        threads.set_module_threads(address)


def test_transpose_helper_is_a_transpose():
    """_transpose on constant rows gives the transposed matrix (checked through LLVM's
    constant folding in the compiled kernels above too; here on the IR values directly)."""
    import llvmlite.ir as ir
    for width in (4, 8, 16):
        vt = ir.VectorType(ir.FloatType(), width)
        module = ir.Module()
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name="f")
        b = ir.IRBuilder(fn.append_basic_block())
        rows = [ir.Constant(vt, [float(r * width + c) for c in range(width)])
                for r in range(width)]
        # follow the shuffles symbolically: each value is a list of source (row, col) pairs
        lanes = {id(r): [(i, c) for c in range(width)] for i, r in enumerate(rows)}
        orig = b.shuffle_vector

        def tracking(x, y, mask, name=""):
            out = orig(x, y, mask, name)
            both = lanes[id(x)] + lanes[id(y)]
            lanes[id(out)] = [both[int(m.constant)] for m in mask.constant]
            return out
        b.shuffle_vector = tracking
        result = gemm._transpose(b, rows, width)
        for t, vec in enumerate(result):
            assert lanes[id(vec)] == [(r, t) for r in range(width)]
