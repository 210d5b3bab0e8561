"""Kernels split over the thread pool, against the reference interpreter: the differential
families compiled with the parallel threshold at 0 and tiny chunks (so even these small
shapes split into many items), run with 1 and 2 threads. Covers the parallel elementwise
loops (flat and coordinate), reductions, pooling and fused groups."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
from runtime import threads
from runtime.codegen import elementwise

import rt_cases
from rt_harness import run_cases

FAMILIES = ("elementwise", "reductions", "pool", "fused", "movement")


@pytest.fixture(scope="module")
def forced_split():
    saved = (threads.MIN_PARALLEL_NS, elementwise.MIN_CHUNK)
    threads.MIN_PARALLEL_NS, elementwise.MIN_CHUNK = 0, 8
    try:
        yield
    finally:
        threads.MIN_PARALLEL_NS, elementwise.MIN_CHUNK = saved


@pytest.mark.parametrize("family", FAMILIES)
def test_split_kernels_match_interpreter(forced_split, family, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE", "0")          # the knobs above are not in cache keys
    cases = rt_cases.FAMILIES[family]()
    if family == "elementwise":
        # every op, fewer dtype/shape variants (compile time)
        seen, keep = set(), []
        for k, case in enumerate(cases):
            if k % 4 == 0 or case.op not in seen:
                keep.append(case)
                seen.add(case.op)
        cases = keep
    compiled = []

    def compile_once(g):
        if not compiled:
            compiled.append(graphc.compile(g, cache=False))
        return compiled[0]
    for n_threads in (1, 2):
        def with_threads(g, n_threads=n_threads):
            exe = compile_once(g)
            threads.set_threads(exe, n_threads)
            return exe
        failures, runs = run_cases(family, cases, (1, 3, 40), compile=with_threads)
        assert not failures, (f"{n_threads} thread(s): {len(failures)} of {runs} runs differ:\n"
                              + "\n".join(failures[:30]))
    threads.set_threads(compiled[0], None)


def _update_graph(rows, cols, dt, rng):
    """out = w - m * x / (sqrt(|x|) + w): an optimizer-like update on [rows, cols] params."""
    from ir import Graph, TensorType, emit
    npdt = np.float32 if dt == "f32" else np.float64
    g = Graph("update")
    w, m = (g.add_input(name, TensorType((rows, cols), dt), "param",
                        rng.standard_normal((rows, cols)).astype(npdt)) for name in "wm")
    x = g.add_input("x", TensorType((rows, cols), dt))
    step = emit(g, "div", [emit(g, "mul", [m, x]), emit(g, "add", [emit(g, "sqrt", [
        emit(g, "abs", [x])]), w])])
    g.add_output(emit(g, "sub", [w, step]), "out")
    return g


@pytest.mark.parametrize("rows, cols, dt", [(37, 144, "f32"), (5, 128, "f32"), (9, 400, "f32"),
                                            (11, 72, "f64"), (1, 160, "f32")])
def test_column_sliced_updates_match_interpreter(forced_split, rows, cols, dt, monkeypatch):
    """A flat loop over [rows, C] with C whole vectors and at least MIN_SLICED_PANELS gemm
    panels is split by column slices (elementwise.column_panel): slice boundaries on whole
    panels, the last at C, on 1 and 2 threads."""
    import ir as ir_mod
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    rng = np.random.default_rng(rows * cols)
    g = _update_graph(rows, cols, dt, rng)
    exe = graphc.compile(g, cache=False)
    assert ".ew.cols" in exe.llvm_ir_unoptimized
    npdt = np.float32 if dt == "f32" else np.float64
    feeds = {"x": rng.standard_normal((rows, cols)).astype(npdt)}
    want = ir_mod.run(g, feeds)["out"]
    for n_threads in (1, 2):
        threads.set_threads(exe, n_threads)
        got = exe.run(feeds)["out"]
        np.testing.assert_allclose(got, want, rtol=1e-6 if dt == "f32" else 1e-13,
                                   err_msg=f"{n_threads} thread(s)")
    threads.set_threads(exe, None)


@pytest.mark.parametrize("cols, dt", [(100, "f32"), (96, "f32"), (68, "f64")])
def test_ragged_or_narrow_rows_stay_flat(forced_split, cols, dt, monkeypatch):
    """Rows that are not whole vectors (a scalar tail in every slice) or narrower than
    MIN_SLICED_PANELS panels keep the flat split."""
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    g = _update_graph(8, cols, dt, np.random.default_rng(0))
    assert ".ew.cols" not in graphc.compile(g, cache=False).llvm_ir_unoptimized
