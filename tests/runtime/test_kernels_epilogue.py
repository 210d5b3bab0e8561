"""The epilogue hook of the contraction kernels (runtime/codegen/epilogue.py): fusion's contract.

Each kernel is compiled with an epilogue that adds a bias read through `site.load_lanes`
(along the output's column / channel axis) and applies relu from scalar.py's emitters, and is
compared with numpy; a second epilogue records every coordinate it was called with, proving it
runs exactly once per output element and never on partial sums."""
from __future__ import annotations

import numpy as np
import pytest

from ir import TensorType
from ir.symbolic import evaluate
from runtime.codegen import helpers as h
from runtime.codegen.conv import emit_conv2d
from runtime.codegen.matmul import emit_matmul
from runtime.codegen.scalar import max_nan

from rt_kernel import compile_kernels

N = "N"


def _bias_relu(bias_buf, axis):
    """relu(value + bias[coords[axis]]): a vector of biases when the lanes run along `axis`,
    else one bias broadcast to every lane."""
    def epilogue(b, value, site):
        if site.lanes > 1 and site.lane_axis % len(site.coords) == axis:
            bias = site.load_lanes(b, bias_buf.ptr, bias_buf.dtype, site.coords[axis])
        else:
            bias = h.load_element(b, bias_buf.ptr, site.coords[axis], bias_buf.dtype, 4)
            if site.lanes > 1:
                bias = h.splat(b, bias, site.lanes)
        return max_nan(b, b.fadd(value, bias), h.const_like(value.type, 0.0))
    return epilogue


def _coordinate_code(b, value, site, base=1000):
    """Epilogue that stores a code of each lane's coordinates (in `base`) instead of the
    value, plus value * 0 (so it stays a function of the computed value)."""
    code = h.i64(0)
    for c in site.coords:
        code = b.add(b.mul(code, h.i64(base)), c)
    if site.lanes > 1:
        weight = base ** (len(site.coords) - 1 - site.lane_axis % len(site.coords))
        steps = ir_const_vector([k * weight for k in range(site.lanes)])
        code = b.add(h.splat(b, code, site.lanes), steps)
    return b.fadd(b.sitofp(code, value.type), b.fmul(value, h.const_like(value.type, 0.0)))


def ir_const_vector(values):
    import llvmlite.ir as llir
    return llir.Constant(llir.VectorType(h.I64, len(values)), [h.i64(v) for v in values])


def _shape(t, env):
    return tuple(evaluate(d, env) for d in t.shape)


MATMUL_SHAPES = [  # (M, K, N) with M symbolic in some
    ((N, 7), (7, 5)), ((N, 33), (33, 40)), ((3, 1), (1, 17)), ((N, 64), (64, 10)),
]


def _matmul_specs():
    specs, meta = [], []
    for (a_shape, b_shape) in MATMUL_SHAPES:
        for ta in (False, True):
            for tb in (False, True):
                a_t = a_shape[::-1] if ta else a_shape
                b_t = b_shape[::-1] if tb else b_shape
                cols = b_shape[1]
                out = (a_shape[0], cols)

                def emit(kb, ta=ta, tb=tb):
                    a, bm, bias = kb.inputs
                    emit_matmul(kb, a, bm, kb.outputs[0], ta, tb, _bias_relu(bias, 2))
                specs.append((emit, [TensorType(a_t, "f32"), TensorType(b_t, "f32"),
                                     TensorType((cols,), "f32")], [TensorType(out, "f32")]))
                meta.append((ta, tb))
    return specs, meta


@pytest.mark.parametrize("split", [False, True])
def test_matmul_epilogue_bias_relu(split):
    """(split: the parallel threshold at 0 and 2 threads, so the gemm and the epilogue pass
    run on the pool even for these small shapes)"""
    import runtime.threads as threads
    from runtime.codegen import matmul
    specs, meta = _matmul_specs()
    saved = threads.MIN_PARALLEL_NS, matmul.EPILOGUE_CHUNK
    if split:
        threads.MIN_PARALLEL_NS, matmul.EPILOGUE_CHUNK = 0, 1    # one row per item
    try:
        fns, _ = compile_kernels(specs)
    finally:
        threads.MIN_PARALLEL_NS, matmul.EPILOGUE_CHUNK = saved
    threads.set_module_threads(fns[0].jit.threads_address, 2 if split else 1)
    rng = np.random.default_rng(0)
    for n in (1, 4, 19):
        for fn, (emit, ins, _), (ta, tb) in zip(fns, specs, meta):
            env = {"N": n}
            arrays = [rng.standard_normal(_shape(t, env)).astype(np.float32)
                      for t in ins]
            a, bm, bias = arrays
            want = np.maximum((a.T if ta else a) @ (bm.T if tb else bm) + bias, 0)
            (got,) = fn(*arrays, N=n)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_epilogue_sees_each_output_once_with_its_coordinates():
    def emit(kb):
        a, bm = kb.inputs
        emit_matmul(kb, a, bm, kb.outputs[0], False, False, _coordinate_code)
    fns, _ = compile_kernels([(emit, [TensorType((2, N, 3), "f32"), TensorType((2, 3, 4), "f32")],
                               [TensorType((2, N, 4), "f32")])])
    (got,) = fns[0](np.ones((2, 5, 3), np.float32), np.ones((2, 3, 4), np.float32), N=5)
    p, i, j = np.meshgrid(np.arange(2), np.arange(5), np.arange(4), indexing="ij")
    np.testing.assert_array_equal(got, (p * 1000 + i) * 1000 + j)


@pytest.mark.parametrize("groups,stride", [(1, (1, 2)), (2, (1, 2)), (1, (1, 1))])
def test_conv2d_epilogue_bias_relu(groups, stride):
    # stride (1, 1) takes the direct kernel (conv_direct.py), the others the gemm path
    attrs = {"stride": stride, "padding": (1, 0, 1, 2), "dilation": (1, 1), "groups": groups}
    x_t, w_t = TensorType((N, 4, 7, 6), "f32"), TensorType((6, 4 // groups, 3, 2), "f32")
    out_t = TensorType((N, 6, 7, 4 if stride[1] == 2 else 7), "f32")

    def emit(kb):
        x, w, bias = kb.inputs
        emit_conv2d(kb, x, w, kb.outputs[0], attrs, _bias_relu(bias, 1))
    fns, _ = compile_kernels([(emit, [x_t, w_t, TensorType((6,), "f32")], [out_t])])
    rng = np.random.default_rng(1)
    import ir
    from ir import Graph, emit as emit_node
    for n in (1, 3):
        x = rng.standard_normal((n, 4, 7, 6)).astype(np.float32)
        w = rng.standard_normal((6, 4 // groups, 3, 2)).astype(np.float32)
        bias = rng.standard_normal(6).astype(np.float32)
        g = Graph("ref")
        xv, wv = g.add_input("x", x_t), g.add_input("w", w_t)
        g.add_output(emit_node(g, "conv2d", [xv, wv], attrs), "y")
        want = np.maximum(ir.run(g, {"x": x, "w": w})["y"] + bias[None, :, None, None], 0)
        (got,) = fns[0](x, w, bias, N=n)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,active", [(1, 16), (1, 5), (3, 16), (3, 7)])
def test_load_lanes_contiguous_strided_and_masked(stride, active):
    import llvmlite.ir as llir
    from runtime.codegen.epilogue import load_lanes
    lanes = 16

    def emit(kb):
        (src,), (dst,) = kb.inputs, kb.outputs
        b = kb.b
        mask = None
        if active < lanes:
            mask = llir.Constant(llir.VectorType(h.I1, lanes),
                                 [int(k < active) for k in range(lanes)])
        v = load_lanes(b, src.ptr, src.dtype, h.i64(2), lanes, h.i64(stride), mask)
        kb.store(dst, h.i64(0), v)
    n_src = 2 + stride * (active - 1) + 1             # nothing past the last active lane
    fns, _ = compile_kernels([(emit, [TensorType((n_src,), "f32")], [TensorType((lanes,), "f32")])])
    src = np.arange(n_src, dtype=np.float32) + 1
    (got,) = fns[0](src, N=1)
    want = np.zeros(lanes, np.float32)
    want[:active] = src[2::stride][:active]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stride,width,chans", [((1, 1), 21, 4), ((1, 1), 5, 4),
                                                ((2, 1), 21, 4), ((1, 1), 5, 20)])
def test_conv2d_epilogue_sees_each_output_once_with_its_coordinates(stride, width, chans):
    # (1, 1): direct kernels (20 channels of 5-wide rows: vectors along the channels)
    attrs = {"stride": stride, "padding": (0, 1, 0, 1), "dilation": (1, 1), "groups": 1}
    oh = (5 - 3) // stride[0] + 1
    x_t, w_t = TensorType((2, 3, 5, width), "f32"), TensorType((chans, 3, 3, 3), "f32")
    out_t = TensorType((2, chans, oh, width), "f32")

    def emit(kb):
        x, w = kb.inputs
        emit_conv2d(kb, x, w, kb.outputs[0], attrs,
                    lambda b, v, site: _coordinate_code(b, v, site, 100))   # exact in f32
    fns, _ = compile_kernels([(emit, [x_t, w_t], [out_t])])
    (got,) = fns[0](np.ones((2, 3, 5, width), np.float32),
                    np.ones((chans, 3, 3, 3), np.float32), N=1)
    n, o, r, c = np.meshgrid(*(np.arange(d) for d in (2, chans, oh, width)), indexing="ij")
    np.testing.assert_array_equal(got, ((n * 100 + o) * 100 + r) * 100 + c)
