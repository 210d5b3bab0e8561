"""Modules built in parts and compiled side by side (runtime/parallel_compile.py): same
results as one part, IR/asm/object still available as one module, the object cache keeps
every part, shared gemm helpers are defined in one part only, and a failing compiler child
only costs time (the parts it took are compiled here)."""
from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import ir
from runtime import Executable, compile_graph, parallel_compile, threads

from parts_graph import graph_in_parts

two_cpus = pytest.mark.skipif(threads.available_cpus() < 2 or not hasattr(os, "fork"),
                              reason="splitting needs fork and two CPUs")


def _feeds(n=5):
    return {"x": np.random.default_rng(3).standard_normal((n, 24)).astype(np.float32) * 0.1}


def _in_compiler_children(monkeypatch, act) -> None:
    """Make forked compiler children run `act()` before compiling (the parent is unchanged)."""
    parent = os.getpid()
    real = parallel_compile.compile_one

    def compile_one(text, target, opt_level):
        if os.getpid() != parent:
            act()
        return real(text, target, opt_level)
    monkeypatch.setattr(parallel_compile, "compile_one", compile_one)


@pytest.fixture(autouse=True)
def alone(monkeypatch):
    """Splitting is refused while another Python thread runs (tested below with the real
    check); earlier tests in the session may have left one (a library's daemon thread)."""
    monkeypatch.setattr(parallel_compile, "_only_our_threads", lambda: True)


@pytest.fixture
def no_disk_cache(monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE", "0")


@two_cpus
def test_parts_match_one_module(no_disk_cache, monkeypatch):
    g = graph_in_parts()
    assert parallel_compile.parts_for(len(g.nodes)) >= 2
    split = compile_graph(g, cache=False)
    assert split.timings["parts"] >= 2
    monkeypatch.setenv(parallel_compile.ENV_VAR, "0")
    whole = compile_graph(g, cache=False)
    assert whole.timings["parts"] == 1
    feeds = _feeds()
    got, want = Executable(split, g).run(feeds), Executable(whole, g).run(feeds)
    ref = ir.run(g, feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-5)
    # for study and export the parts are one module again
    text = split.llvm_ir_unoptimized
    defines = [line for line in text.splitlines() if line.startswith("define")]
    assert sum("graphc_entry" in line for line in defines) == 1
    assert any("graphc.k" in line for line in defines)
    assert "graphc_entry" in split.asm
    assert split.jit.object_code()[:4] == b"\x7fELF"


@two_cpus
def test_a_failing_child_is_replaced_by_a_local_compile(no_disk_cache, monkeypatch):
    def breaks():
        raise RuntimeError("compiler child breaks")
    _in_compiler_children(monkeypatch, breaks)
    g = graph_in_parts("parts_flaky")
    code = compile_graph(g, cache=False)
    assert code.timings["parts"] >= 2
    feeds = _feeds(3)
    ref = ir.run(g, feeds)
    got = Executable(code, g).run(feeds)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-5)


@two_cpus
def test_object_cache_keeps_every_part(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CACHE", "1")
    g = graph_in_parts("parts_cached")
    first = compile_graph(g, cache=False)
    second = compile_graph(g, cache=False)
    assert "load_object" in second.timings
    assert len(second.jit.object_codes()) == first.timings["parts"] >= 2
    feeds = _feeds(4)
    a, b = Executable(first, g).run(feeds), Executable(second, g).run(feeds)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert glob.glob(os.path.join(tmp_path, "*", "*.o"))


@two_cpus
def test_shared_gemm_helpers_are_defined_in_one_part(no_disk_cache):
    """The four matmuls use the same gemm worker and micro-kernel (and, their rows being
    symbolic outside a training step, the same gemv tiles and driver): with the kernels
    spread over the parts, each helper is defined by one part and only declared by the
    others."""
    from runtime.codegen.module_builder import build_modules
    g = graph_in_parts("parts_shared")
    code = compile_graph(g, cache=False)
    parts = code.timings["parts"]
    modules = build_modules(g, code.plan, code.jit.target, False, parts)
    matmul_parts = {k for k, m in enumerate(modules) for f in m.functions
                    if ".matmul" in f.name and not f.is_declaration}
    assert len(matmul_parts) >= 2               # the sharing is exercised
    for name in {f.name for m in modules for f in m.functions
                 if f.name.startswith(("graphc.gemm.", "graphc.ukr.", "graphc.gemv."))}:
        defining = [k for k, m in enumerate(modules)
                    if name in m.globals and not m.globals[name].is_declaration]
        assert len(defining) == 1, name
        assert modules[defining[0]].globals[name].linkage == ""     # visible to the others
    defines = [line for line in code.llvm_ir_unoptimized.splitlines()
               if line.startswith("define") and "graphc.gemm." in line]
    assert len(defines) == len(set(defines))    # linked: one definition each, no renames


@two_cpus
def test_parts_are_taken_from_one_queue(no_disk_cache, monkeypatch, tmp_path):
    """Every part is compiled exactly once, by this process or by the child (which one
    takes which depends on timing), and the objects come back in part order."""
    import hashlib
    log = tmp_path / "compiled"
    real = parallel_compile.compile_one

    def compile_one(text, target, opt_level):
        with open(log, "a") as f:                   # appended by both processes
            f.write(hashlib.sha256(text.encode()).hexdigest() + "\n")
        return real(text, target, opt_level)
    monkeypatch.setattr(parallel_compile, "compile_one", compile_one)
    g = graph_in_parts("parts_queue")
    code = compile_graph(g, cache=False)
    compiled = log.read_text().split()
    assert len(compiled) == code.timings["parts"] == len(set(compiled))
    feeds = _feeds(6)
    ref = ir.run(g, feeds)
    got = Executable(code, g).run(feeds)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-5)


def test_llvm_cost_counts_loops():
    import llvmlite.ir as llir
    from runtime.codegen.module_builder import (FUSED_REDUCTION_COST, LOOP_COST,
                                                OPTSIZE_COSTS, llvm_cost)
    m = llir.Module()
    fn = llir.Function(m, llir.FunctionType(llir.VoidType(), []), name="f")
    entry, loop, done = fn.append_basic_block(), fn.append_basic_block(), fn.append_basic_block()
    llir.IRBuilder(entry).branch(loop)
    b = llir.IRBuilder(loop)
    b.cbranch(llir.Constant(llir.IntType(1), 0), loop, done)      # a back edge
    llir.IRBuilder(done).ret_void()
    declared = llir.Function(m, llir.FunctionType(llir.VoidType(), []), name="g")
    assert llvm_cost([fn, declared]) == 3 + LOOP_COST
    assert llvm_cost([fn], fused_reduction=True) == int(3 * FUSED_REDUCTION_COST)
    fn.attributes.add("optsize")
    assert llvm_cost([fn]) == int(3 * OPTSIZE_COSTS[0] + OPTSIZE_COSTS[1])


def test_meanwhile_runs_in_its_place_among_the_parts(monkeypatch):
    """With no child (one process), the parts are compiled costliest first and the
    meanwhile work runs between the parts costlier than it and the cheaper ones, at the
    latest before the last part; with parts given as text (no costs) after the last part."""
    import llvmlite.ir as llir
    from runtime.target import host_target
    monkeypatch.setattr(parallel_compile, "processes", lambda: 1)
    events = []
    real = parallel_compile.compile_one

    def compile_one(text, target, opt_level):
        events.append(text.split("@")[1].split("(")[0].strip('"'))
        return real(text, target, opt_level)
    monkeypatch.setattr(parallel_compile, "compile_one", compile_one)
    parts = []
    for name, cost in (("low", 10), ("high", 300), ("mid", 120)):
        m = llir.Module(name=name)
        fn = llir.Function(m, llir.FunctionType(llir.VoidType(), []), name=name)
        llir.IRBuilder(fn.append_basic_block()).ret_void()
        m.graphc_cost = cost
        parts.append(m)
    objects = parallel_compile.compile_parts(parts, host_target(), 2,
                                             lambda: events.append("meanwhile"), 50)
    assert events == ["high", "mid", "meanwhile", "low"] and len(objects) == 3
    events.clear()
    parallel_compile.compile_parts(parts, host_target(), 2, lambda: events.append("meanwhile"),
                                   5)
    assert events == ["high", "mid", "meanwhile", "low"]        # before the last part
    events.clear()
    parallel_compile.compile_parts([str(p) for p in parts], host_target(), 2,
                                   lambda: events.append("meanwhile"), 50)
    assert events[-1] == "meanwhile" and len(events) == 4


@two_cpus
def test_a_child_may_take_the_shared_meanwhile_work(monkeypatch, tmp_path):
    """With `meanwhile_in_child`, the meanwhile work is an item of the queue: a child that
    takes it runs meanwhile_in_child, and this process runs meanwhile after the children."""
    import time
    import llvmlite.ir as llir
    from runtime.target import host_target
    parent, log = os.getpid(), tmp_path / "log"
    real = parallel_compile.compile_one

    def compile_one(text, target, opt_level):
        if os.getpid() == parent:
            time.sleep(0.3)                  # the child reaches the cheap last item first
        return real(text, target, opt_level)
    monkeypatch.setattr(parallel_compile, "compile_one", compile_one)

    def note(what):
        with open(log, "a") as f:
            f.write(f"{what} {'parent' if os.getpid() == parent else 'child'}\n")
    parts = []
    for k in range(2):
        m = llir.Module(name=f"p{k}")
        fn = llir.Function(m, llir.FunctionType(llir.VoidType(), []), name=f"f{k}")
        llir.IRBuilder(fn.append_basic_block()).ret_void()
        m.graphc_cost = 100
        parts.append(m)
    objects = parallel_compile.compile_parts(parts, host_target(), 2, lambda: note("meanwhile"),
                                             10, lambda: note("in-child"))
    assert len(objects) == 2 and all(objects)
    assert log.read_text().splitlines() == ["in-child child", "meanwhile parent"]


def test_pack_and_unpack_objects():
    objs = [b"\x7fELF one", b"", b"\x7fELF three" * 100]
    assert parallel_compile.unpack_objects(parallel_compile.pack_objects(objs)) == objs
    with pytest.raises(ValueError):
        parallel_compile.unpack_objects(parallel_compile.pack_objects(objs) + b"x")


@two_cpus
def test_a_stuck_child_is_abandoned(no_disk_cache, monkeypatch):
    import time
    _in_compiler_children(monkeypatch, lambda: time.sleep(60))   # never answers in time
    monkeypatch.setattr(parallel_compile, "CHILD_PATIENCE", (0.5, 1.0))
    g = graph_in_parts("parts_stuck")
    t0 = time.monotonic()
    code = compile_graph(g, cache=False)
    assert time.monotonic() - t0 < 30
    feeds = _feeds(2)
    ref = ir.run(g, feeds)
    got = Executable(code, g).run(feeds)
    np.testing.assert_allclose(got["s"], ref["s"], rtol=1e-4, atol=1e-5)


@two_cpus
def test_no_fork_while_another_python_thread_runs(monkeypatch):
    import threading
    assert parallel_compile.parts_for(20) >= 2
    monkeypatch.undo()                            # the real thread check from here on
    release = threading.Event()
    t = threading.Thread(target=release.wait)
    t.start()
    try:
        assert parallel_compile.parts_for(20) == 1
    finally:
        release.set()
        t.join()


@two_cpus
def test_threads_global_defined_when_only_another_part_runs_parallel_loops(no_disk_cache):
    """Found by the random fused-graph test (a segfault): the first kernels (parallel casts
    over N) went to part 1, part 0 had no parallel loop and so no definition of the thread
    count global part 1 declared; MCJIT loaded the module with a call to address 0."""
    g = ir.parse(GRAPH_PARTS_THREADS)
    code = compile_graph(g, cache=False)
    assert code.timings["parts"] >= 2
    assert code.jit.threads_address                 # defined, so the runtime can set it
    feeds = {"y": np.array([-0.05, 0.43, -1.33, 0.0], np.float32),
             "w": np.array([[3], [3]], np.int64)}
    got, want = Executable(code, g).run(feeds), ir.run(g, feeds)
    for name in ("back", "mx", "gt"):
        np.testing.assert_array_equal(got[name], want[name])


GRAPH_PARTS_THREADS = """
graph @parts_threads(%y: f32[N], %q: f32[] param, %w1: i64[2,3] state, %w: i64[2,1],
                     %s: i64[3,1] param) {
  %0 = cast(%y) {dtype=bool} : bool[N]
  %1 = cast(%0) {dtype=f32} : f32[N]
  %2 = neg(%w1) : i64[2,3]
  %3 = matmul(%2, %w) {transpose_a=true, transpose_b=false} : i64[3,1]
  %4 = reduce_max(%2) {axes=[1], keepdims=false} : i64[2]
  %5 = greater(%3, %3) : bool[3,1]
  %6 = neg(%q) : f32[]
  %7 = neg(%s) : i64[3,1]
  return %6 as "new_q" updates %q, %7 as "new_s" updates %s, %1 as "back", %4 as "mx",
         %5 as "gt"
}
init %q = dense<f32[]>[-2.2]
init %w1 = dense<i64[2,3]>[5, 3, -3, -5, -5, 4]
init %s = dense<i64[3,1]>[0, -1, 4]
"""
