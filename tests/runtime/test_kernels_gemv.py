"""The few-rows matmul (runtime/codegen/gemv.py) against numpy (float64 reference), in its
two forms: B read along rows (transpose_b False, A either way) and dot products (B
transposed).

Shapes cover every tile of TILES and the choice between them: row counts 1..7 (groups of 4,
2 and 1), column counts around each vector-count boundary (1, 4, 8, 12, 16 vectors and one
more or less), depth 0 and 1, transpose_a, batch axes, static and symbolic rows (symbolic
rows choose between gemv and the packed gemm at run time: N = 8 and 9 take the gemm); for
the dot form, depths around the vector width (masked last vector). With
one thread and with two, the parallel threshold forced to 0 so every product splits; plus a
fused bias + relu epilogue and an epilogue that records each coordinate it sees."""
from __future__ import annotations

import numpy as np
import pytest

import runtime.threads as threads
from ir import TensorType
from ir.symbolic import evaluate
from runtime.codegen.gemv import SMALL_M
from runtime.codegen.matmul import emit_matmul

from rt_kernel import compile_kernels
from test_kernels_epilogue import _bias_relu, _coordinate_code

N = "N"
SHAPES = [  # (batch dims, M, K, Ncols)
    ((), 1, 784, 400), ((), 1, 37, 1), ((), 1, 5, 15), ((), 1, 9, 17), ((), 1, 3, 63),
    ((), 1, 3, 65), ((), 1, 2, 127), ((), 1, 2, 129), ((), 1, 4, 255), ((), 1, 4, 257),
    ((), 1, 1, 520), ((), 1, 0, 7), ((), 2, 11, 190), ((), 3, 6, 200), ((), 4, 8, 97),
    ((), 5, 13, 33), ((), 7, 3, 70), ((), N, 21, 100), ((), N, 1, 16), ((2,), 1, 7, 40),
    ((3,), N, 5, 18), ((), 6, 40, 2), ((), 1, 15, 9), ((), 1, 16, 9), ((), 3, 17, 23),
    ((), 2, 33, 8), ((), 5, 48, 12),
]


FORMS = [(False, False), (True, False), (False, True)]   # (transpose_a, transpose_b)


def _specs(dtype, epilogue_of=None):
    specs, meta = [], []
    for batch, m, k, n in SHAPES:
        for ta, tb in FORMS:
            a_shape = batch + ((k, m) if ta else (m, k))
            ins = [TensorType(a_shape, dtype), TensorType(batch + ((n, k) if tb else (k, n)),
                                                          dtype)]
            if epilogue_of is not None:
                ins.append(TensorType((n,), dtype))

            def emit(kb, ta=ta, tb=tb):
                a, bm = kb.inputs[:2]
                epilogue = epilogue_of(kb.inputs[2]) if epilogue_of is not None else None
                emit_matmul(kb, a, bm, kb.outputs[0], ta, tb, epilogue)
            specs.append((emit, ins, [TensorType(batch + (m, n), dtype)]))
            meta.append((ta, tb))
    return specs, meta


def _compile(specs, split: bool):
    saved = threads.MIN_PARALLEL_NS
    if split:
        threads.MIN_PARALLEL_NS = 0          # every product on the pool, however small
    try:
        fns, _ = compile_kernels(specs)
    finally:
        threads.MIN_PARALLEL_NS = saved
    return fns


def _reference(a, bm, form):
    ta, tb = form
    op_a = np.swapaxes(a, -1, -2) if ta else a
    op_b = np.swapaxes(bm, -1, -2) if tb else bm
    a64, b64 = op_a.astype(np.float64), op_b.astype(np.float64)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


@pytest.fixture(scope="module", params=["f32", "f64"])
def compiled(request):
    specs, meta = _specs(request.param)
    return request.param, specs, meta, _compile(specs, split=True)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_gemv_matches_numpy(compiled, n_threads):
    dtype, specs, meta, fns = compiled
    threads.set_module_threads(fns[0].jit.threads_address, n_threads)
    rng = np.random.default_rng(n_threads)
    np_dtype = np.float32 if dtype == "f32" else np.float64
    rtol = 2e-5 if dtype == "f32" else 1e-12
    for n in (1, 2, 3, SMALL_M - 1, SMALL_M, SMALL_M + 1):
        env = {"N": n}
        for fn, (_, ins, _), form in zip(fns, specs, meta):
            a, bm = (rng.standard_normal(tuple(evaluate(d, env) for d in t.shape))
                     .astype(np_dtype) for t in ins)
            want, scale = _reference(a, bm, form)
            (got,) = fn(a, bm, N=n)
            assert got.shape == want.shape
            err = np.abs(got - want)
            assert (err <= rtol * scale + 1e-30).all(), (ins, form, n, float(err.max()))
    threads.set_module_threads(fns[0].jit.threads_address)


@pytest.mark.parametrize("split", [False, True])
def test_gemv_epilogue_bias_relu(split):
    specs, meta = _specs("f32", lambda bias: _bias_relu(bias, 2))
    fns = _compile(specs, split)
    threads.set_module_threads(fns[0].jit.threads_address, 2 if split else 1)
    rng = np.random.default_rng(3)
    for n in (1, 5, SMALL_M + 1):
        for fn, (_, ins, _), form in zip(fns, specs, meta):
            a, bm, bias = (rng.standard_normal(tuple(evaluate(d, {"N": n}) for d in t.shape))
                           .astype(np.float32) for t in ins)
            product, scale = _reference(a, bm, form)
            want = np.maximum(product + bias, 0)
            (got,) = fn(a, bm, bias, N=n)
            assert (np.abs(got - want) <= 2e-5 * (scale + np.abs(bias)) + 1e-30).all()
    threads.set_module_threads(fns[0].jit.threads_address)


@pytest.mark.parametrize("rows", [1, 3, 6])
@pytest.mark.parametrize("tb", [False, True])
def test_gemv_epilogue_sees_each_output_once(rows, tb):
    """Every (batch, row, column) exactly once, whatever the split into column runs."""
    def emit(kb):
        a, bm = kb.inputs
        emit_matmul(kb, a, bm, kb.outputs[0], False, tb, _coordinate_code)
    b_shape = (2, 300, 3) if tb else (2, 3, 300)
    fns = _compile([(emit, [TensorType((2, rows, 3), "f32"), TensorType(b_shape, "f32")],
                     [TensorType((2, rows, 300), "f32")])], split=True)
    threads.set_module_threads(fns[0].jit.threads_address, 2)
    (got,) = fns[0](np.ones((2, rows, 3), np.float32), np.ones(b_shape, np.float32), N=1)
    p, i, j = np.meshgrid(np.arange(2), np.arange(rows), np.arange(300), indexing="ij")
    np.testing.assert_array_equal(got, (p * 1000 + i) * 1000 + j)
    threads.set_module_threads(fns[0].jit.threads_address)


def test_gemv_nan_and_inf_propagate():
    def emit(kb):
        a, bm = kb.inputs
        emit_matmul(kb, a, bm, kb.outputs[0], False, False)
    fns = _compile([(emit, [TensorType((1, 4), "f32"), TensorType((4, 40), "f32")],
                     [TensorType((1, 40), "f32")])], split=False)
    a = np.array([[1, 0, 2, 1]], np.float32)
    bm = np.ones((4, 40), np.float32)
    bm[1, 3] = np.nan                 # times a zero of A: still NaN (0 * NaN)
    bm[2, 20] = np.inf
    bm[3, 39] = -np.inf
    (got,) = fns[0](a, bm, N=1)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(got, a @ bm)


@pytest.mark.parametrize("training", [False, True])
def test_symbolic_rows_take_gemv_only_outside_training_steps(training):
    """A training step (outputs written into params) carries only the gemm for matmuls with
    symbolic rows (compile time); inference carries both and picks at run time. Results
    agree with the interpreter either way, at 1 row and at many."""
    import graphc
    from ir import Graph, emit, run
    g = Graph("step" if training else "predict")
    x = g.add_input("x", TensorType(("N", 20), "f32"))
    w0 = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    w = g.add_input("w", TensorType((20, 30), "f32"), "param", w0)
    y = emit(g, "matmul", [x, w], {"transpose_a": False, "transpose_b": False})
    g.add_output(y, "y")
    if training:
        total = emit(g, "reduce_sum", [x], {"axes": (0,), "keepdims": False})      # f32[20]
        step = emit(g, "broadcast", [total], {"shape": (20, 30), "dims": (0,)})
        g.add_output(emit(g, "sub", [w, step]), "w_new", updates="w")
    exe = graphc.compile(g, opt_level=0)
    assert ("graphc.gemv" in exe.llvm_ir_unoptimized) == (not training)
    for n in (1, 12):
        xs = np.random.default_rng(n).standard_normal((n, 20)).astype(np.float32)
        want = run(g, {"x": xs, "w": exe.params["w"].copy()})["y"]
        got = exe(xs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
