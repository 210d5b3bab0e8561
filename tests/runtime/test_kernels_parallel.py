"""Kernels split over the thread pool, against the reference interpreter: the differential
families compiled with the parallel threshold at 0 and tiny chunks (so even these small
shapes split into many items), run with 1 and 2 threads. Covers the parallel elementwise
loops (flat and coordinate), reductions, pooling and fused groups."""
from __future__ import annotations

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
