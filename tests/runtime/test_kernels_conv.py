"""conv2d and both gradients, on the gemm workers (runtime/codegen/conv_gemm.py) and as direct
convolutions (conv_direct.py, unit stride), against the reference interpreter: strides,
paddings (asymmetric, larger than the kernel reach), dilation, widths below/above the vector
width, unit-stride and general paths, symbolic batch values (including a batch of 0 and 1),
with one thread and with two (threshold forced to 0)."""
from __future__ import annotations

import numpy as np
import pytest

import ir
import runtime.threads as threads
from ir import Graph, TensorType, emit
from runtime import compile_graph, Executable
from runtime.codegen import conv_direct

CONFIGS = [  # (C, H, W, O, KH, KW, stride, padding, dilation)
    (1, 28, 28, 6, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1)),
    (6, 14, 14, 16, 5, 5, (1, 1), (0, 0, 0, 0), (1, 1)),
    (4, 7, 6, 6, 3, 2, (1, 2), (1, 0, 1, 2), (1, 1)),
    (3, 9, 21, 5, 3, 3, (2, 1), (1, 1, 0, 1), (2, 1)),
    (2, 5, 5, 3, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),
    (3, 8, 19, 17, 3, 3, (1, 1), (1, 1, 1, 1), (1, 2)),
    # channel-vectorised direct kernels with two channel vectors and padded rows
    (3, 7, 7, 20, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
]


def _out(size, k, s, lo, hi, d):
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def _graph():
    g = Graph("convs")
    for k, (c, hh, ww, o, kh, kw, st, pad, dil) in enumerate(CONFIGS):
        attrs = {"stride": st, "padding": pad, "dilation": dil, "groups": 1}
        oh, ow = _out(hh, kh, st[0], pad[0], pad[2], dil[0]), _out(ww, kw, st[1], pad[1], pad[3],
                                                                  dil[1])
        x = g.add_input(f"x{k}", TensorType(("N", c, hh, ww), "f32"))
        w = g.add_input(f"w{k}", TensorType((o, c, kh, kw), "f32"))
        dy = g.add_input(f"dy{k}", TensorType(("N", o, oh, ow), "f32"))
        g.add_output(emit(g, "conv2d", [x, w], attrs), f"y{k}")
        g.add_output(emit(g, "conv2d_grad_input", [dy, w], {**attrs, "input_hw": (hh, ww)}),
                     f"dx{k}")
        g.add_output(emit(g, "conv2d_grad_filter", [x, dy], {**attrs, "kernel_hw": (kh, kw)}),
                     f"dw{k}")
    return g


@pytest.fixture(scope="module", params=["direct", "gemm"])
def compiled(request):
    saved = threads.MIN_PARALLEL_NS, conv_direct.ENABLED
    threads.MIN_PARALLEL_NS = 0
    conv_direct.ENABLED = request.param == "direct"
    try:
        g = _graph()
        return g, compile_graph(g, cache=False)
    finally:
        threads.MIN_PARALLEL_NS, conv_direct.ENABLED = saved


@pytest.mark.parametrize("n_threads", [1, 2])
def test_convolutions_match_interpreter(compiled, n_threads):
    g, code = compiled
    exe = Executable(code, g)
    threads.set_threads(exe, n_threads)
    rng = np.random.default_rng(n_threads)
    for n in (0, 1, 3):
        feeds = {}
        for v in g.inputs:
            shape = tuple(n if d == ir.symbolic.sym("N") else d for d in v.type.shape)
            feeds[v.name] = rng.standard_normal(shape).astype(np.float32)
        want = ir.run(g, feeds)
        absolute = ir.run(g, {k: np.abs(a) for k, a in feeds.items()})
        got = exe.run(feeds)
        for name, ref in want.items():
            bound = 2e-5 * absolute[name] + 1e-30
            err = np.abs(got[name].astype(np.float64) - ref)
            assert got[name].shape == ref.shape, name
            assert (err <= bound).all(), (name, n, float(err.max()))
    threads.set_threads(exe, None)
