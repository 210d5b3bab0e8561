"""Differential-testing harness: many op cases in ONE graph, compiled once, run at several
batch sizes, each output compared with the reference interpreter.

A Case is one op application on inputs of given (possibly symbolic) types, with a way to
draw input values and a tolerance class:
  exact   bit-for-bit equal (NaN == NaN, -0.0 == 0.0): movement, integer ops, comparisons,
          and IEEE-exact float ops (+ - * / sqrt, max/min, casts, pooling max, ...);
  ulp     within MAX_ULPS units in the last place: transcendental functions (libm/intrinsics
          versus numpy's own implementations);
  accum   |got - ref| <= ACCUM_RTOL * (the same op on |inputs|) + tiny: ops that sum many
          products in a different order from numpy/BLAS (reduce_sum, matmul, conv, pooling
          averages and gradients). For these multilinear ops the op applied to absolute
          inputs is exactly the sum of |terms| that bounds the rounding error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import ir
from ir import Graph, TensorType, emit
from ir.symbolic import evaluate

import graphc

MAX_ULPS = 4
ACCUM_RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-13}


@dataclass
class Case:
    id: str
    op: str
    inputs: list                       # [(TensorType, generator)] ; generator(rng, shape, dtype)
    attrs: dict = field(default_factory=dict)
    tol: str = "exact"
    abs_inputs: tuple = None           # inputs made absolute for the `accum` bound (None: all)


BINDER = "batch"


def build_graph(name: str, cases) -> Graph:
    """One graph holding every case; input `batch` (f32[N]) binds N even when no case input
    has a plain N axis (e.g. a family of iota / dim_value cases)."""
    g = Graph(name)
    g.add_input(BINDER, TensorType(("N",), "f32"))
    for case in cases:
        vals = [g.add_input(f"{case.id}.{k}", t) for k, (t, _) in enumerate(case.inputs)]
        out = emit(g, case.op, vals, case.attrs)
        g.add_output(out, case.id)
    return g


def draw_inputs(graph: Graph, cases, env: dict, rng) -> dict:
    feeds = {BINDER: np.zeros(env["N"], np.float32)}
    for case in cases:
        for k, (t, gen) in enumerate(case.inputs):
            shape = tuple(evaluate(d, env) for d in t.shape)
            arr = np.asarray(gen(rng, shape, t.dtype.np_dtype))
            feeds[f"{case.id}.{k}"] = arr.astype(t.dtype.np_dtype).reshape(shape)
    return feeds


def to_ordered_int(a: np.ndarray) -> np.ndarray:
    """Map floats to integers whose difference counts ULPs (monotone, -0.0 == 0.0)."""
    bits = a.view(np.int32 if a.dtype == np.float32 else np.int64).astype(np.int64)
    top = np.int64(-(2 ** 31)) if a.dtype == np.float32 else np.iinfo(np.int64).min
    return np.where(bits < 0, top - bits, bits)


def compare(case: Case, got: np.ndarray, want: np.ndarray, magnitude=None) -> str | None:
    """None if `got` matches `want` under the case's tolerance, else a description."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
    if case.tol == "exact" or want.dtype.kind in "biu":
        if np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
            return None
        bad = np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want))
                            if want.dtype.kind == "f" else (got == want)))
        i = tuple(bad[0])
        return f"{len(bad)} element(s) differ, first at {i}: got {got[i]!r}, expected {want[i]!r}"
    nan_ok = np.array_equal(np.isnan(got), np.isnan(want))
    if not nan_ok:
        return "NaN positions differ"
    fin = np.isfinite(want)
    if not np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)]):
        return "infinities differ"
    if case.tol == "ulp":
        ulps = np.abs(to_ordered_int(got[fin]) - to_ordered_int(want[fin]))
        worst = int(ulps.max()) if ulps.size else 0
        return None if worst <= MAX_ULPS else f"max {worst} ulps apart (allowed {MAX_ULPS})"
    bound = ACCUM_RTOL[want.dtype] * np.abs(magnitude) + np.finfo(want.dtype).tiny
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    over = err[fin] > bound[fin]
    if over.any():
        return f"error {err[fin][over].max():.3g} above bound (rtol {ACCUM_RTOL[want.dtype]:g})"
    return None


def run_cases(name: str, cases, batch_sizes=(1, 3, 17), seed=0, symbols=("N",),
              compile=None):
    """Compile all `cases` as one graph (with `compile`, default graphc.compile); run each
    batch size; return (failures, runs)."""
    g = build_graph(name, cases)
    exe = (compile or graphc.compile)(g)
    rng = np.random.default_rng(seed)
    failures, runs = [], 0
    needs_abs = [c for c in cases if c.tol == "accum"]
    for n in batch_sizes:
        env = {s: n for s in symbols}
        feeds = draw_inputs(g, cases, env, rng)
        want = ir.run(g, feeds)
        got = exe.run({k: v for k, v in feeds.items()})
        magnitude = {}
        if needs_abs:
            abs_feeds = dict(feeds)
            for case in needs_abs:
                for k in range(len(case.inputs)):
                    name = f"{case.id}.{k}"
                    if feeds[name].dtype.kind == "f" and (case.abs_inputs is None
                                                          or k in case.abs_inputs):
                        abs_feeds[name] = np.abs(feeds[name])
            magnitude = ir.run(g, abs_feeds)
        for case in cases:
            runs += 1
            problem = compare(case, got[case.id], want[case.id], magnitude.get(case.id))
            if problem:
                failures.append(f"{case.id} [{case.op} {case.attrs}] N={n}: {problem}")
    return failures, runs


# -- input generators --------------------------------------------------------------------------
def normal(scale=1.0, offset=0.0) -> Callable:
    return lambda rng, shape, dt: (rng.standard_normal(shape) * scale + offset)


def uniform(lo, hi) -> Callable:
    return lambda rng, shape, dt: rng.uniform(lo, hi, shape)


def ints(lo, hi) -> Callable:
    return lambda rng, shape, dt: rng.integers(lo, hi, shape)


def bools() -> Callable:
    return lambda rng, shape, dt: rng.random(shape) < 0.5


def choice(values) -> Callable:
    return lambda rng, shape, dt: rng.choice(np.asarray(values), size=shape)


def default_gen(dtype) -> Callable:
    d = ir.dtype(dtype)
    if d is ir.bool_:
        return bools()
    if d.is_int:
        return ints(-50, 50)
    return normal()


def t(shape, dtype="f32") -> TensorType:
    return TensorType(shape, dtype)


def inp(shape, dtype="f32", gen=None):
    return (t(shape, dtype), gen or default_gen(dtype))
