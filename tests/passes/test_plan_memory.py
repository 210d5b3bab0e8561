"""plan-memory: the placement is valid for every binding (checked by an independent interval
checker at several batch sizes), in-place reuse, the report, the MLP step's 1.25x bound."""
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, TensorType, emit  # noqa: E402
from ir.symbolic import evaluate  # noqa: E402
from passes import PassManager  # noqa: E402
from passes.plan_memory import ALIGN, graph_buffers, plan_graph  # noqa: E402
from tests.passes import golden_runner  # noqa: E402
from tests.strategies import graphs  # noqa: E402

BINDINGS = ({"N": 1, "M": 1}, {"N": 3, "M": 2}, {"N": 64, "M": 5}, {"N": 1000, "M": 77})


def overlaps(plan, env) -> list:
    """Every pair of buffers alive at the same time whose byte ranges intersect (computed
    from scratch: offsets evaluated and aligned as the runtime does)."""
    spans = []
    units = {}
    for b in plan.buffers:
        root = b
        while root.host is not None:
            root = next(x for x in plan.buffers if x.key is root.host)
        units.setdefault(id(root.key), []).append(b)
    for key, members in units.items():
        start = min(b.start for b in members)
        end = max(b.end for b in members)
        off = max(evaluate(t, env) for t in plan.offsets[members[0].key])
        off = (off + ALIGN - 1) // ALIGN * ALIGN
        size = max(evaluate(b.size, env) for b in members)
        spans.append((start, end, off, off + size, members[0].key))
    bad = []
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if a[0] <= b[1] and b[0] <= a[1] and a[2] < b[3] and b[2] < a[3] \
                    and a[3] > a[2] and b[3] > b[2]:
                bad.append((a[4], b[4]))
    return bad


def test_golden_is_unchanged_and_reports():
    result = golden_runner.run_case("plan-memory", "chain")
    stats = result.records[0].stats
    # N=64: %0, %1, %2 are 2048 bytes; %0 dies into exp(%0), %2 into tanh(%2): 2 buffers live.
    # The second starts at 32*N+63 rounded up (the slack that keeps symbolic offsets aligned)
    assert stats["lower_bound_bytes"] == 2 * 2048 and stats["arena_bytes"] == 2 * 2048 + 64
    assert stats["unplanned_bytes"] == 4 * 2048 and stats["inplace"] == 2


@settings(max_examples=60, deadline=None)
@given(graphs(max_nodes=10))
def test_random_graph_plans_have_no_overlap_at_any_binding(g):
    plan = plan_graph(g)
    for env in BINDINGS:
        assert not overlaps(plan, env), env
        assert plan.lower_bound(env) <= plan.arena_bytes(env) <= \
            max(plan.unplanned_bytes(env), plan.arena_bytes(env))


def test_offsets_are_polynomials_that_serve_every_batch_size():
    g = Graph("mix")
    x = g.add_input("x", TensorType(("N", 300), "f32"))
    w = g.add_input("w", TensorType((300, 300), "f32"), "param", np.zeros((300, 300), np.float32))
    a = emit(g, "exp", [w])                       # 360000 bytes, static
    h = emit(g, "matmul", [x, a])                 # 1200*N bytes
    k = emit(g, "tanh", [h])
    g.add_output(emit(g, "add", [emit(g, "matmul", [k, a]), h]), "y")
    plan = plan_graph(g, {"N": 64})
    for env in BINDINGS:
        assert not overlaps(plan, env)
    # static and N-sized buffers conflict; the layout is a max of incomparable polynomials
    assert any(len(o) > 1 or not isinstance(o[0], int) for o in plan.offsets.values())


def test_in_place_needs_a_dying_operand_read_at_the_written_position():
    g = Graph("inplace")
    x = g.add_input("x", TensorType(("N", 4), "f32"))
    a = emit(g, "exp", [x])                       # x is an input: never overwritten
    b = emit(g, "neg", [a])                       # a dies here: in place
    c = emit(g, "broadcast", [emit(g, "reduce_sum", [b], {"axes": (1,)})],
              {"shape": ("N", 4), "dims": (0,)})
    g.add_output(emit(g, "mul", [b, c]), "y")     # b dies at the (returned) mul
    bufs = {b_.key.name: b_ for b_ in graph_buffers(g)}
    assert bufs[b.name].host is a and bufs[a.name].host is None
    assert bufs[c.name].host is None              # a broadcast reads its operand elsewhere


def test_mlp_training_step_arena_within_1_25x_of_the_lower_bound():
    from tests.passes.mlp_step import mlp_train_step
    g = PassManager("shape-infer,constant-fold,simplify,cse,dce,fuse").run(mlp_train_step()).graph
    plan = plan_graph(g, {"N": 128})
    for n in (1, 32, 128, 1000):
        env = {"N": n}
        assert not overlaps(plan, env)
        assert plan.arena_bytes(env) <= 1.25 * plan.lower_bound(env), n


def test_a_repeated_placement_is_remembered_and_handed_out_as_a_copy(monkeypatch):
    plan_memory = sys.modules["passes.plan_memory"]   # `passes.plan_memory` is the pass
    g = Graph("twice")
    x = g.add_input("x", TensorType(("N", 32), "f32"))
    h = emit(g, "tanh", [emit(g, "exp", [x])])
    g.add_output(emit(g, "add", [emit(g, "neg", [h]), h]), "y")
    fresh = []
    real = plan_memory._place_fresh
    monkeypatch.setattr(plan_memory, "_place_fresh",
                        lambda buffers, hint=None: fresh.append(1) or real(buffers, hint))
    buffers = graph_buffers(g)
    first = plan_memory.place_buffers(buffers)
    calls = len(fresh)
    second = plan_memory.place_buffers(graph_buffers(g))     # equal buffers, new objects
    assert len(fresh) == calls and calls > 0
    assert second.offsets == first.offsets and second is not first
    second.offsets.clear()
    assert plan_memory.place_buffers(graph_buffers(g)).offsets == first.offsets
    other = Graph("other")                                    # other values: planned afresh
    y = other.add_input("x", TensorType(("N", 32), "f32"))
    other.add_output(emit(other, "exp", [emit(other, "exp", [y])]), "y")
    plan_memory.place_buffers(graph_buffers(other))
    assert len(fresh) > calls
