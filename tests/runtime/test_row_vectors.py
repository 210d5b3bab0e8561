"""Coordinate loops (groups with broadcasts) vectorised along their innermost axis
(runtime/codegen/elementwise.py, `_emit_row_vectors`): rows shorter than, equal to and
longer than the vector width, operands broadcast along the innermost axis (uniform: computed
once, splat) or along outer axes (contiguous vectors), size-1 axes, rank 1 to 3, float,
integer and bool values, IEEE specials, one thread and the pool; every case against the
reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
import ir
from ir import Graph, TensorType, emit
from runtime import threads
from runtime.codegen.elementwise import row_vector_lanes


def _bcast(g, v, shape, dims):
    return emit(g, "broadcast", [v], {"shape": shape, "dims": dims})


def _activation_graph(c: int) -> Graph:
    """tanh(x + b[c]) * s[n] + exp(-x): a row operand, a column operand, a scalar."""
    g = Graph(f"rows_{c}")
    x = g.add_input("x", TensorType(("N", c), "f32"))
    b = g.add_input("b", TensorType((c,), "f32"))
    s = g.add_input("s", TensorType(("N",), "f32"))
    k = g.add_input("k", TensorType((), "f32"))
    shape = ("N", c)
    h = emit(g, "tanh", [emit(g, "add", [x, _bcast(g, b, shape, (1,))])])
    h = emit(g, "mul", [h, _bcast(g, emit(g, "exp", [s]), shape, (0,))])
    h = emit(g, "add", [h, emit(g, "exp", [emit(g, "neg", [x])])])
    g.add_output(emit(g, "mul", [h, _bcast(g, k, shape, ())]), "y")
    return g


def _feeds(g, n, rng, specials=False):
    feeds = {}
    for v in g.inputs:
        shape = tuple(n if d == ir.sym("N") else d for d in v.type.shape)
        if v.type.dtype.is_float:
            a = rng.standard_normal(shape).astype(v.type.dtype.np_dtype)
            if specials and a.size > 4:
                flat = a.reshape(-1)
                flat[[0, a.size // 3, a.size // 2, -1]] = [np.nan, np.inf, -np.inf, -0.0]
        elif v.type.dtype.name == "bool":
            a = rng.random(shape) < 0.5
        else:
            a = rng.integers(-50, 50, shape).astype(v.type.dtype.np_dtype)
        feeds[v.name] = a
    return feeds


def _check(g, feeds, opt_level=2):
    exe = graphc.compile(g, opt_level=opt_level, cache=False)
    got, want = exe.run(feeds), ir.run(g, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2e-6, atol=1e-6,
                                   equal_nan=True, err_msg=name)


@pytest.mark.parametrize("c", [1, 7, 15, 16, 17, 33, 1000])
@pytest.mark.parametrize("n", [1, 3, 300])
def test_row_and_column_broadcasts_match_the_interpreter(c, n):
    g = _activation_graph(c)
    _check(g, _feeds(g, n, np.random.default_rng(c * 1000 + n), specials=True))


def test_groups_take_the_vector_row_loop():
    """A fused group with a row broadcast becomes a coordinate loop with vectors (not the
    scalar nest it used to be: ~20x slower on tanh(x + b))."""
    g = _activation_graph(1000)
    exe = graphc.compile(g, cache=False)
    assert any(n.op == "fused" for n in exe.graph.nodes)
    assert "rv.body" in exe.llvm_ir_unoptimized and "x float>" in exe.llvm_ir_unoptimized


@pytest.mark.parametrize("threads_", [1, 2])
def test_rank_3_with_size_1_axes_and_both_thread_counts(threads_, monkeypatch):
    g = Graph("rank3")
    x = g.add_input("x", TensorType(("N", 5, 37), "f32"))
    row = g.add_input("row", TensorType((5, 37), "f32"))
    col = g.add_input("col", TensorType(("N", 5, 1), "f32"))
    one = g.add_input("one", TensorType((1, 37), "f32"))
    shape = ("N", 5, 37)
    y = emit(g, "add", [x, _bcast(g, row, shape, (1, 2))])
    y = emit(g, "mul", [y, _bcast(g, col, shape, (0, 1, 2))])          # size-1 last axis
    y = emit(g, "sub", [y, _bcast(g, one, shape, (1, 2))])             # size-1 middle axis
    g.add_output(emit(g, "sigmoid", [y]), "y")
    g.add_output(emit(g, "maximum", [x, _bcast(g, row, shape, (1, 2))]), "m")
    exe = graphc.compile(g, cache=False)
    threads.set_threads(exe, threads_)
    for n in (1, 4, 700):
        feeds = _feeds(g, n, np.random.default_rng(n), specials=True)
        got, want = exe.run(feeds), ir.run(g, feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=2e-6, atol=1e-6,
                                       equal_nan=True)


def test_integer_and_bool_values_and_a_rank_1_loop():
    g = Graph("ints")
    a = g.add_input("a", TensorType(("N", 40), "i32"))
    b = g.add_input("b", TensorType((40,), "i32"))
    m = g.add_input("m", TensorType(("N",), "bool"))
    v = g.add_input("v", TensorType(("N",), "f64"))
    w = g.add_input("w", TensorType((), "f64"))
    shape = ("N", 40)
    gt = emit(g, "greater", [a, _bcast(g, b, shape, (1,))])
    both = emit(g, "logical_and", [gt, _bcast(g, m, shape, (0,))])
    g.add_output(emit(g, "select", [both, a, _bcast(g, b, shape, (1,))]), "sel")
    g.add_output(emit(g, "cast", [both], {"dtype": ir.dtype("f32")}), "flags")
    g.add_output(emit(g, "mul", [v, _bcast(g, w, ("N",), ())]), "scaled")    # rank 1
    for n in (1, 19, 64):
        _check(g, _feeds(g, n, np.random.default_rng(n)))
        _check(g, _feeds(g, n, np.random.default_rng(n)), opt_level=0)


def test_iota_keeps_the_scalar_nest():
    """iota needs every lane's coordinates: such groups keep the scalar coordinate nest."""
    g = Graph("kept")
    x = g.add_input("x", TensorType((6, 20), "f32"))
    io = emit(g, "iota", [], {"shape": (6, 20), "axis": 1, "dtype": ir.dtype("f32")})
    g.add_output(emit(g, "add", [x, io]), "y")
    assert row_vector_lanes(_FakeKB(), list(g.nodes), {}, []) == 1
    _check(g, {"x": np.arange(120, dtype=np.float32).reshape(6, 20)})
    _check(g, {"x": np.arange(120, dtype=np.float32).reshape(6, 20)}, opt_level=0)


class _FakeKB:
    class target:
        @staticmethod
        def vector_width(itemsize):
            return 64 // itemsize
