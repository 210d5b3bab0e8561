"""Runs one op as a one-node graph through the reference interpreter and compares the result.

Shared by the tests/ir/test_ops_*.py files: build the graph with `ir.make_node` (so arity,
attributes and the shape rule are checked exactly as for user graphs), run it in f32 and f64
precision, and compare with an expected array computed by tests/ir/naive.py.
"""
from __future__ import annotations

import numpy as np

import ir
from ir import Graph, TensorType, make_node
from ir.symbolic import SymDim, evaluate

PRECISIONS = ("f32", "f64")
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0)


# -- graphs ------------------------------------------------------------------------------------
def types_of(arrays) -> list:
    return [TensorType(a.shape, ir.dtype(a.dtype)) for a in arrays]


def one_node_graph(op: str, in_types, attrs=None, loc=None) -> Graph:
    """A graph whose inputs x0, x1, ... feed one `op` node whose outputs are y0, y1, ..."""
    g = Graph(op)
    vals = [g.add_input(f"x{i}", TensorType(t.shape, t.dtype)) for i, t in enumerate(in_types)]
    node = make_node(g, op, vals, attrs or {}, loc=loc or ir.Loc())
    for i, out in enumerate(node.outputs):
        g.add_output(out, f"y{i}")
    return g


def bind_env(in_types, arrays, env=None) -> dict:
    """Symbol values implied by the array shapes (bare symbols only), merged with `env`."""
    out = dict(env or {})
    for t, a in zip(in_types, arrays):
        for d, n in zip(t.shape, a.shape):
            if isinstance(d, SymDim) and len(d.terms) == 1 and d.terms[0][1] == 1 \
                    and len(d.terms[0][0]) == 1:
                out.setdefault(d.terms[0][0][0], n)
    return out


def concrete(value, env):
    """A dim, or a tuple of dims, with its symbols evaluated in `env`."""
    if isinstance(value, SymDim):
        return evaluate(value, env)
    if isinstance(value, tuple):
        return tuple(concrete(v, env) for v in value)
    return value


def run_op(op: str, arrays, attrs=None, in_types=None, precision="f32", env=None):
    """The op's outputs (a list) for `arrays`, run through ir.run at `precision`."""
    in_types = in_types or types_of(arrays)
    g = one_node_graph(op, in_types, attrs)
    out = ir.run(g, list(arrays), precision=precision, env=env)
    return [out[name] for name in g.output_names], g


# -- comparison --------------------------------------------------------------------------------
def assert_matches(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, what: str):
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    if want.dtype.kind in "biu":
        assert np.array_equal(got, want), f"{what}:\n got {got!r}\nwant {want!r}"
        return
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=atol * scale, equal_nan=True, err_msg=what)


def check_op(op: str, arrays, expected, attrs=None, in_types=None, env=None,
             rtol32=1e-5, atol32=1e-6, rtol64=1e-12, atol64=1e-12, precisions=PRECISIONS):
    """Run `op` in each precision and compare every output with `expected` (an array or a list
    of arrays computed from the same inputs). Also checks the output dtypes: f32 values come
    back as float32 in f32 mode and float64 in f64 mode; other dtypes are never promoted."""
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    for precision in precisions:
        outs, g = run_op(op, arrays, attrs, in_types, precision, env)
        assert len(outs) == len(expected)
        for got, want, value in zip(outs, expected, g.outputs):
            declared = value.type.dtype.np_dtype
            promoted = np.float64 if (precision == "f64" and declared == np.float32) else declared
            assert got.dtype == promoted, f"{op} [{precision}]: dtype {got.dtype}, want {promoted}"
            # only f32 values computed in f32 are rounded; everything else is double arithmetic
            loose = declared == np.float32 and precision == "f32"
            rtol, atol = (rtol32, atol32) if loose else (rtol64, atol64)
            if loose:   # the exact answer rounded to f32 (overflow to inf, underflow to 0)
                with np.errstate(over="ignore"):
                    want = np.asarray(want).astype(np.float32)
            assert_matches(got, want, rtol, atol, f"{op} [{precision}] attrs={attrs}")
    return outs


# -- inputs ------------------------------------------------------------------------------------
def rand(rng, shape, dtype="f32", low=-3.0, high=3.0, specials=0.0):
    """Random values of `dtype`; with specials > 0 that fraction of float entries become NaN,
    +-inf or +-0."""
    d = ir.dtype(dtype)
    if d.is_float:
        a = rng.uniform(low, high, size=shape).astype(d.np_dtype)
        if specials and a.size:
            mask = rng.random(size=shape) < specials
            a[mask] = rng.choice(np.array(SPECIALS, d.np_dtype), size=int(mask.sum()))
        return a
    if d.is_int:
        return rng.integers(int(low), int(high) + 1, size=shape).astype(d.np_dtype)
    return rng.random(size=shape) < 0.5
