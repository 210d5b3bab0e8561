"""The fast float matmul (runtime/codegen/gemm.py) against numpy (float64 reference) across
edge shapes: sizes that are not multiples of the vector width or tile, size 1, empty depth,
symbolic batch values, narrow outputs, every transpose combination, batched operands; with
one thread and with two (the parallel threshold forced to 0 so even tiny products split)."""
from __future__ import annotations

import numpy as np
import pytest

import runtime.threads as threads
from ir import TensorType
from ir.symbolic import evaluate
from runtime.codegen.matmul import emit_matmul

from rt_kernel import compile_kernels

N = "N"
SHAPES = [  # (batch dims, M, K, Ncols)
    ((), N, 7, 5), ((), N, 33, 40), ((), 3, 1, 17), ((), N, 64, 10), ((), 1, 300, 1),
    ((), N, 0, 6), ((), 37, 260, 70), ((), N, 513, 33), ((2,), N, 9, 16), ((3,), 5, 17, 31),
    ((), 130, 20, 129), ((), 19, 40, 45),
]


def matmul_specs(dtype, shapes=SHAPES):
    """(kernel specs, (transpose_a, transpose_b) of each) for every shape and transpose."""
    specs, meta = [], []
    for batch, m, k, n in shapes:
        for ta in (False, True):
            for tb in (False, True):
                a_shape = batch + ((k, m) if ta else (m, k))
                b_shape = batch + ((n, k) if tb else (k, n))

                def emit(kb, ta=ta, tb=tb):
                    a, bm = kb.inputs
                    emit_matmul(kb, a, bm, kb.outputs[0], ta, tb)
                specs.append((emit, [TensorType(a_shape, dtype), TensorType(b_shape, dtype)],
                              [TensorType(batch + (m, n), dtype)]))
                meta.append((ta, tb))
    return specs, meta


@pytest.fixture(scope="module", params=["f32", "f64"])
def compiled(request):
    saved = threads.MIN_PARALLEL_NS
    threads.MIN_PARALLEL_NS = 0          # split every product, however small
    try:
        specs, meta = matmul_specs(request.param)
        fns, _ = compile_kernels(specs)
    finally:
        threads.MIN_PARALLEL_NS = saved
    return request.param, specs, meta, fns


@pytest.mark.parametrize("n_threads", [1, 2])
def test_gemm_matches_numpy(compiled, n_threads):
    dtype, specs, meta, fns = compiled
    jit = fns[0].jit
    threads.set_module_threads(jit.engine.get_global_value_address(threads.NUM_THREADS_GLOBAL),
                               n_threads)
    rng = np.random.default_rng(n_threads)
    np_dtype = np.float32 if dtype == "f32" else np.float64
    rtol = 2e-5 if dtype == "f32" else 1e-12
    for n in (1, 2, 17):
        env = {"N": n}
        for fn, (_, ins, _), (ta, tb) in zip(fns, specs, meta):
            a, bm = (rng.standard_normal(tuple(evaluate(d, env) for d in t.shape))
                     .astype(np_dtype) for t in ins)
            a64, b64 = a.astype(np.float64), bm.astype(np.float64)
            op_a = np.swapaxes(a64, -1, -2) if ta else a64
            op_b = np.swapaxes(b64, -1, -2) if tb else b64
            want = op_a @ op_b
            bound = rtol * (np.abs(op_a) @ np.abs(op_b)) + 1e-30
            (got,) = fn(a, bm, N=n)
            assert got.shape == want.shape
            err = np.abs(got - want)
            assert (err <= bound).all(), (ins, ta, tb, n, float(err.max()))
    threads.set_module_threads(jit.engine.get_global_value_address(threads.NUM_THREADS_GLOBAL))
