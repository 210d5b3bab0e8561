"""Robustness: repeated calls do not leak, concurrent calls are correct, IEEE specials
propagate exactly as in the interpreter."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import graphc
import ir
from ir import Graph, TensorType, emit


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mlp_graph(name="mlp2"):
    rng = np.random.default_rng(3)
    g = Graph(name)
    x = g.add_input("x", TensorType(("N", 16), "f32"))
    w = g.add_input("w", TensorType((16, 8), "f32"), "param",
                    rng.standard_normal((16, 8)).astype(np.float32))
    b = g.add_input("b", TensorType((8,), "f32"), "param",
                    rng.standard_normal(8).astype(np.float32))
    h = emit(g, "add", [emit(g, "matmul", [x, w]),
                        emit(g, "broadcast", [b], {"shape": ("N", 8), "dims": (1,)})])
    y = emit(g, "tanh", [h])
    g.add_output(y, "y")
    g.add_output(emit(g, "reduce_sum", [y], {"axes": (1,)}), "s")
    return g


def test_ten_thousand_calls_do_not_grow_memory():
    g = _mlp_graph()
    exe = graphc.compile(g)
    xs = [np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32)
          for n in (1, 7, 32)]
    for i in range(1000):                 # warm up: arenas, binding caches, allocator pools
        exe(xs[i % 3])
    before = _rss_bytes()
    for i in range(10_000):
        y, s = exe(xs[i % 3])
    grown = _rss_bytes() - before
    # measured: 0 bytes; a leak of 100 bytes per call would show as ~1.7 MiB
    assert grown < 512 * 2 ** 10, f"RSS grew by {grown / 2 ** 10:.0f} KiB over 10,000 calls"
    np.testing.assert_allclose(y, ir.run(g, {"x": xs[9999 % 3]})["y"], rtol=2e-6, atol=1e-6)


def test_two_threads_calling_one_executable_are_both_correct():
    g = _mlp_graph("mlp_threads")
    exe = graphc.compile(g)
    batches = {n: np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32)
               for n in (5, 64)}
    want = {n: ir.run(g, {"x": x}) for n, x in batches.items()}
    errors = []
    start = threading.Barrier(2)

    def worker(n):
        try:
            start.wait()
            for _ in range(400):
                y, s = exe(batches[n])
                np.testing.assert_allclose(y, want[n]["y"], rtol=2e-6, atol=1e-6)
                np.testing.assert_allclose(s, want[n]["s"], rtol=1e-5, atol=1e-5)
        except Exception as e:             # surface failures from the thread in the test
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 1e-45],
                    np.float32)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "minimum", "pow",
                                "less", "equal", "not_equal", "greater_equal"])
def test_binary_ieee_specials_match_the_interpreter(op):
    g = Graph(f"special_{op}")
    a = g.add_input("a", TensorType((10, 10), "f32"))
    b = g.add_input("b", TensorType((10, 10), "f32"))
    g.add_output(emit(g, op, [a, b]))
    x = np.repeat(SPECIALS[:, None], 10, axis=1)    # every pair of specials
    y = x.T.copy()
    want = ir.run(g, {"a": x, "b": y})["out0"]
    got = graphc.compile(g)(x, y)
    np.testing.assert_array_equal(got, want)
    if want.dtype == np.float32:                    # signs of zeros and infinities too
        assert np.array_equal(np.signbit(got[~np.isnan(want)]), np.signbit(want[~np.isnan(want)]))


@pytest.mark.parametrize("op", ["neg", "abs", "sign", "relu", "exp", "log", "log1p", "sqrt",
                                "rsqrt", "reciprocal", "tanh", "sigmoid", "erf"])
def test_unary_ieee_specials_match_the_interpreter(op):
    g = Graph(f"special_{op}")
    a = g.add_input("a", TensorType((10,), "f32"))
    g.add_output(emit(g, op, [a]))
    got = graphc.compile(g)(SPECIALS)
    want = ir.run(g, {"a": SPECIALS})["out0"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    np.testing.assert_allclose(got[finite], want[finite], rtol=5e-7, atol=0)


def test_nan_and_inf_flow_through_a_whole_network():
    """A NaN in one input row poisons exactly that row (matmul, bias, relu, softmax-ish
    reductions), an inf gives inf or NaN where IEEE says, other rows stay exact."""
    g = _mlp_graph("mlp_nan")
    exe = graphc.compile(g)
    x = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    x[1, 3] = np.nan
    x[2, 5] = np.inf
    y, s = exe(x)
    want = ir.run(g, {"x": x})
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want["y"]))
    np.testing.assert_array_equal(np.isnan(s), np.isnan(want["s"]))
    assert np.isnan(y[1]).all() and not np.isnan(y[[0, 3]]).any()
    np.testing.assert_allclose(y[[0, 3]], want["y"][[0, 3]], rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(y[2], want["y"][2])      # tanh(+-inf) = +-1, NaN where 0*inf


@pytest.mark.parametrize("opt_level", [0, 2])
def test_sums_over_an_empty_axis_are_positive_zero_and_negative_zeros_stay(opt_level):
    g = Graph("empty_sum")
    x = g.add_input("x", TensorType((3, "N"), "f32"))
    g.add_output(emit(g, "reduce_sum", [x], {"axes": (1,)}), "rows")
    g.add_output(emit(g, "reduce_sum", [emit(g, "exp", [x])], {"axes": (1,)}), "exp_rows")
    exe = graphc.compile(g, opt_level=opt_level, cache=False)
    for feed in (np.zeros((3, 0), np.float32), np.full((3, 5), -0.0, np.float32)):
        got, ref = exe.run({"x": feed}), ir.run(g, {"x": feed})
        for name in ref:
            np.testing.assert_array_equal(got[name], ref[name])
            assert (np.signbit(got[name]) == np.signbit(ref[name])).all(), (name, feed.shape)
