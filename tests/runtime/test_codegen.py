"""Codegen structure: target facts, the shape of the generated IR, fused elementwise groups,
the buffer plan, the compile cache."""
from __future__ import annotations

import re

import numpy as np
import pytest

import graphc
import ir
from ir import Graph, TensorType, emit
from runtime import COMPILE_CACHE, compile_graph, host_target
from runtime.codegen.elementwise import emit_elementwise_group, lower_fused_subgraph
from runtime.plan import ARENA, plan_buffers
from runtime.target import _vector_width_f32

from rt_kernel import compile_kernel, compile_kernels


def _t(shape, dtype="f32"):
    return TensorType(shape, dtype)


# -- target ------------------------------------------------------------------------------------
def test_vector_width_comes_from_cpu_features():
    assert _vector_width_f32("+sse2,+avx,+avx2,+avx512f,+fma") == 16
    assert _vector_width_f32("+sse2,+avx,+avx2,-avx512f") == 8
    assert _vector_width_f32("+sse2,-avx,-avx2") == 4
    t = host_target()
    assert t.cpu and t.features and t.vector_width(4) * 32 == t.vector_bits
    assert t.vector_width(8) == t.vector_width(4) // 2
    assert t.key[1] == t.cpu and t.key[2] == t.features


# -- generated IR ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def maxgraph():
    g = Graph("maxgraph")
    x = g.add_input("x", _t(("N",)))
    y = g.add_input("y", _t(("N",)))
    g.add_output(emit(g, "maximum", [x, y]))
    return graphc.compile(g)


def test_kernels_are_internal_noalias_aligned_functions(maxgraph):
    text = maxgraph.llvm_ir_unoptimized
    assert re.search(r'define internal i32 @"k0\.maximum"\(ptr noalias %"?[.\w]*"?, i64 '
                     r'%"sym\.N", ptr noalias align 4 %"in0", ptr noalias align 4 %"in1", '
                     r'ptr noalias align 4 %"out0"\)', text), text[:2000]
    assert 'define i32 @"graphc_entry"(ptr' in text
    assert 'define i64 @"graphc_arena_bytes"(ptr' in text


def test_nan_semantics_and_no_fast_math(maxgraph):
    text = maxgraph.llvm_ir_unoptimized
    assert "fcmp uno" in text and "maxnum" not in text and "maximum" not in text.split("@")[0]
    for flag in (" fast ", " nnan ", " ninf ", " reassoc ", " nsz ", " afn "):
        assert flag not in text and flag not in maxgraph.llvm_ir


def test_elementwise_loop_is_vectorised_at_the_target_width(maxgraph):
    width = host_target().vector_width(4)
    lanes = {int(n) for n in re.findall(r"<(\d+) x float>", maxgraph.llvm_ir)}
    assert lanes and max(lanes) == width, lanes
    if host_target().vector_bits == 512:
        assert "zmm" in maxgraph.asm


def test_ir_and_asm_are_exposed(maxgraph):
    assert maxgraph.llvm_ir.startswith("; ModuleID")
    assert "graphc_entry" in maxgraph.asm


# -- fused elementwise groups ------------------------------------------------------------------
def test_a_fused_group_is_one_loop_with_no_intermediate_buffers():
    """relu(x * w_bcast + b_bcast) with a shared subexpression, as ONE kernel, one loop."""
    sub = Graph("fused")
    x = sub.add_input("x", _t(("N", 7)))
    w = sub.add_input("w", _t((7,)))
    b = sub.add_input("b", _t(()))
    xw = emit(sub, "mul", [x, emit(sub, "broadcast", [w], {"shape": ("N", 7), "dims": (1,)})])
    z = emit(sub, "add", [xw, emit(sub, "broadcast", [b], {"shape": ("N", 7), "dims": ()})])
    r = emit(sub, "relu", [z])
    sub.add_output(r, "r")
    sub.add_output(emit(sub, "mul", [r, xw]), "rx")   # xw is reused: computed once per element
    fn, text = compile_kernel(lambda kb: lower_fused_subgraph(kb, sub),
                              [v.type for v in sub.inputs], [v.type for v in sub.outputs])
    # the kernel and its pool worker (the loop lives in the worker: parallel.py)
    kernel = text[text.index('define internal i32 @"kernel0"'):text.index('define i32 @"run0"')]
    # the worker's item loop, then the nest over (N, 7): one loop per axis (rows of 7 are
    # shorter than a vector: no vector row loop, test_row_vectors.py has those)
    assert kernel.count(".body:") == 3 and kernel.count("item.body:") == 1
    assert kernel.count("store float") == 2            # only the two outputs are written
    assert kernel.count("fmul float") == 2             # x*w once, r*xw once
    assert not re.search(r"<\d+ x float>", kernel)
    rng = np.random.default_rng(0)
    for n in (1, 3, 17):
        args = [rng.standard_normal((n, 7)).astype(np.float32),
                rng.standard_normal(7).astype(np.float32), np.float32(0.25)]
        want = ir.run(sub, dict(zip(["x", "w", "b"], args)))
        got = fn(*args, N=n)
        np.testing.assert_array_equal(got[0], want["r"])
        np.testing.assert_array_equal(got[1], want["rx"])


def test_group_of_pure_elementwise_ops_uses_one_flat_loop():
    sub = Graph("flat")
    x = sub.add_input("x", _t(("N", 5)))
    y = sub.add_input("y", _t(("N", 5)))
    s = emit(sub, "select", [emit(sub, "less", [x, y]), emit(sub, "exp", [x]),
                             emit(sub, "sqrt", [emit(sub, "abs", [y])])])
    sub.add_output(emit(sub, "cast", [s], {"dtype": "f64"}))

    def emit_group(kb):
        emit_elementwise_group(kb, sub.nodes, dict(zip(sub.inputs, kb.inputs)),
                               [(sub.outputs[0], kb.outputs[0])])

    fn, text = compile_kernel(emit_group, [v.type for v in sub.inputs], [sub.outputs[0].type])
    # the kernel and its pool worker (the loop lives in the worker: parallel.py)
    kernel = text[text.index('define internal i32 @"kernel0"'):text.index('define i32 @"run0"')]
    assert kernel.count(".body:") == 2 and kernel.count("item.body:") == 1   # + item loop
    rng = np.random.default_rng(1)
    xv, yv = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(fn(xv, yv, N=4)[0], ir.run(sub, {"x": xv, "y": yv})["out0"],
                               rtol=1e-6)


# -- buffer plan -------------------------------------------------------------------------------
def test_arena_slots_are_reused_by_liveness_and_views_are_free():
    g = Graph("chain")
    v = g.add_input("x", _t(("N", 6)))
    for _ in range(12):
        v = emit(g, "neg", [v])
    v = emit(g, "reshape", [v], {"shape": ("N", 2, 3)})
    v = emit(g, "exp", [v])
    g.add_output(v)
    plan = plan_buffers(g)
    arena = {h for h in plan.home.values() if h.kind == ARENA}
    # each neg overwrites its dying operand (in-place reuse, passes/plan_memory.py): one slot
    assert len(plan.slots) == 1 and len(arena) == 1
    reshape_index = next(i for i, n in enumerate(g.nodes) if n.op == "reshape")
    assert reshape_index not in plan.kernel_nodes
    exe = graphc.compile(g, opt_level=0)   # the graph as built (-O2 cancels the negs)
    assert exe.arena_bytes(N=1) == 64 and exe.arena_bytes(N=100) == 2432
    x = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    np.testing.assert_allclose(exe(x), ir.run(g, {"x": x})["out0"], rtol=5e-7)


# -- compile cache -----------------------------------------------------------------------------
def _scaled(name, input_name, init):
    g = Graph(name)
    x = g.add_input(input_name, _t(("N",)))
    s = g.add_input("s", _t((1,)), "param", np.array([init], np.float32))
    g.add_output(emit(g, "mul", [x, emit(g, "broadcast", [s], {"shape": ("N",), "dims": (0,)})]),
                 "y")
    return g


def test_cache_serves_structurally_equal_graphs_with_their_own_names_and_params():
    a = graphc.compile(_scaled("a", "x", 2.0))
    hits = COMPILE_CACHE.hits
    b = graphc.compile(_scaled("b", "features", 3.0))       # other names, other weights
    assert COMPILE_CACHE.hits == hits + 1 and b.compiled is a.compiled
    assert b.input_names == ["features"]
    v = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(a(v), 2 * v)
    np.testing.assert_array_equal(b(features=v), 3 * v)
    c = graphc.compile(_scaled("c", "x", 2.0), opt_level=1)  # other options: other code
    assert c.compiled is not a.compiled
    d = graphc.compile(_scaled("d", "x", 2.0), cache=False)
    assert d.compiled is not a.compiled
    # graphc.compile's -O2 pipeline fuses the broadcast into the mul: compare like with like
    assert compile_graph(graphc.compile(_scaled("e", "x", 1.0)).graph) is a.compiled


# -- explicit vectors --------------------------------------------------------------------------
def test_explicit_vector_loops_match_the_interpreter():
    """Every flat elementwise op emitted with <W x T> vectors (main loop + scalar remainder):
    the per-element emitters are type-generic, as the speed work will rely on."""
    import rt_cases
    from rt_harness import build_graph, compare, draw_inputs
    width = host_target().vector_width(4)
    cases = [c for c in rt_cases.elementwise_cases() + rt_cases.cast_cases()
             + rt_cases.generator_cases()
             if c.op != "iota" and (".Nx33" in c.id or "special" in c.id or "edges" in c.id
                                    or c.op in ("cast", "random_uniform", "constant",
                                                "dim_value", "select"))]
    assert {c.op for c in cases} >= {"exp", "div", "cast", "random_uniform", "select", "sign"}
    g = build_graph("vectors", cases)
    nodes = {n.outputs[0]: n for n in g.nodes}
    specs = []
    for out in g.outputs:
        node = nodes[out]
        specs.append((lambda kb, node=node: emit_elementwise_group(
            kb, [node], dict(zip(node.inputs, kb.inputs)), list(zip(node.outputs, kb.outputs)),
            lanes=width), [v.type for v in node.inputs], [out.type]))
    fns, text = compile_kernels(specs)
    assert f"<{width} x float>" in text
    rng = np.random.default_rng(5)
    failures = []
    for n in (1, 3, 17):
        feeds = draw_inputs(g, cases, {"N": n}, rng)
        want = ir.run(g, feeds)
        for case, fn, out in zip(cases, fns, g.outputs):
            args = [feeds[f"{case.id}.{k}"] for k in range(len(case.inputs))]
            problem = compare(case, fn(*args, N=n)[0], want[case.id])
            if problem:
                failures.append(f"{case.id} N={n}: {problem}")
    assert not failures, "\n".join(failures[:20])


def test_concurrent_compiles_of_one_graph_compile_once():
    import threading
    seed = Graph("unique")                                       # a key nobody compiled yet
    xs = seed.add_input("x", _t(("N", 3)))
    seed.add_output(emit(seed, "sign", [emit(seed, "abs", [xs])]))
    misses = COMPILE_CACHE.misses
    results = []
    threads = [threading.Thread(target=lambda: results.append(compile_graph(seed)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert COMPILE_CACHE.misses == misses + 1
    assert len(results) == 4 and all(r is results[0] for r in results)


def test_compile_runs_the_pass_pipeline_first():
    g = Graph("with_dead_code")
    x = g.add_input("x", _t(("N",)))
    emit(g, "exp", [x])                                          # dead
    g.add_output(emit(g, "neg", [x]))
    exe = graphc.compile(g, pipeline="shape-infer,dce")
    assert [n.op for n in exe.graph.nodes] == ["neg"]
    assert "exp" not in exe.llvm_ir_unoptimized
    np.testing.assert_array_equal(exe(np.ones(2, np.float32)), [-1, -1])
    with pytest.raises(ir.GraphcError, match="unknown pass"):
        graphc.compile(g, pipeline="no-such-pass")


def test_cache_is_bounded_and_evicts_least_recently_used():
    from runtime.compile import CompileCache
    cache = CompileCache(capacity=2)
    built = []

    def build(k):
        return lambda: built.append(k) or k

    for k in ("a", "b", "a", "c", "b"):
        cache.get_or_compile(k, build(k))
    assert built == ["a", "b", "c", "b"] and len(cache) == 2   # "b" was evicted by "c"


def test_rank_zero_broadcast_compiles_and_runs():
    """A broadcast of a scalar to shape [] (found by a random graph: an IndexError in
    codegen, since the coordinate loop assumed an axis)."""
    import graphc
    import ir
    from ir import Graph, TensorType, emit
    g = Graph("scalar_broadcast")
    x = g.add_input("x", TensorType((), "f32"))
    y = emit(g, "broadcast", [x], {"shape": (), "dims": ()})
    g.add_output(y, "y")
    g.add_output(emit(g, "mul", [y, emit(g, "broadcast", [x], {"shape": (), "dims": ()})]), "sq")
    feeds = {"x": np.array(-1.5, np.float32)}
    want = ir.run(g, feeds)
    for level in (0, 2):
        got = graphc.compile(g, opt_level=level, cache=False).run(feeds)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
