"""Fused reductions (the row kernel of runtime/codegen/fused.py) computed W columns at a time:
softmax, log-softmax, softmax cross-entropy forward and backward (iota one-hot), mean and
variance, a column reduction (bias gradient) and a total, at row widths below, at and above
the vector width, with NaN/inf rows; every case against the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
import ir

WIDTHS = [3, 15, 16, 17, 100, 1000]


def _run(fn, feeds, reduction_kernels=1):
    exe = graphc.compile(fn.graph, cache=False)
    kinds = [n.attrs.get("kind") for n in exe.graph.nodes if n.op == "fused"]
    assert kinds.count("reduction") >= reduction_kernels, kinds
    got, want = exe.run(feeds), ir.run(fn.graph, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-5, atol=2e-6,
                                   equal_nan=True, err_msg=name)
    return exe


def _x(n, c, seed, specials=False):
    x = np.random.default_rng(seed).standard_normal((n, c)).astype(np.float32) * 3
    if specials and n > 2:
        x[1, c // 2] = np.nan
        x[2, 0] = np.inf
        x[2, -1] = -np.inf
    return x


@pytest.mark.parametrize("c", WIDTHS)
def test_softmax_and_log_softmax(c):
    @graphc.function(x=graphc.spec(("N", c)))
    def f(x):
        return {"p": graphc.softmax(x), "lp": graphc.log_softmax(x)}
    exe = _run(f, {"x": _x(37, c, c, specials=True)}, reduction_kernels=1)
    if c >= 16:
        assert "vpass" in exe.llvm_ir_unoptimized and "vwrite" in exe.llvm_ir_unoptimized


@pytest.mark.parametrize("c", WIDTHS)
def test_cross_entropy_forward_and_backward_with_a_one_hot_from_iota(c):
    @graphc.function(x=graphc.spec(("N", c)), y=graphc.spec(("N",), "i64"))
    def f(x, y):
        loss = -(graphc.log_softmax(x) * graphc.one_hot(y, c)).sum(axis=1).mean()
        return {"loss": loss, "dx": graphc.grad(loss, x)}
    rng = np.random.default_rng(c)
    _run(f, {"x": _x(29, c, c + 1), "y": rng.integers(0, c, 29).astype(np.int64)})


@pytest.mark.parametrize("c", [17, 1000])
def test_mean_variance_column_and_total_reductions(c):
    @graphc.function(x=graphc.spec(("N", c)))
    def f(x):
        mean = x.mean(axis=1, keepdims=True)
        var = ((x - mean) * (x - mean)).mean(axis=1)
        e = graphc.exp(x - x.max(axis=1, keepdims=True))
        return {"var": var, "colsum": e.sum(axis=0), "total": graphc.tanh(x).sum()}
    for n in (1, 5, 64):
        _run(f, {"x": _x(n, c, n + c)}, reduction_kernels=1)
