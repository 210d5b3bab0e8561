"""Parameter updates written in place by their producing kernel (runtime/plan.py
`_direct_updates`) instead of copied at the end of the call: taken only when it is safe, and
results always equal the reference interpreter's (old values seen by every reader that
needs them; a failing call leaves parameters untouched)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
import ir
from ir import Graph, TensorType, emit
from runtime import ExecutionError
from runtime.plan import PARAM, plan_buffers


def _t(shape, dtype="f32"):
    return TensorType(shape, dtype)


def _sgd(name="sgd", read_after=False, broadcast_row=False, view_after=False, gather_after=False):
    """w <- w - 0.5 * g (+ variants that must keep the end-of-call copy)."""
    g = Graph(name)
    x = g.add_input("x", _t(("N", 4)))
    idx = g.add_input("idx", _t(("N",), "i64")) if gather_after else None
    w0 = np.arange(12, dtype=np.float32).reshape(3, 4)
    w = g.add_input("w", _t((3, 4)), "param", w0)
    grad = emit(g, "reduce_sum", [x], {"axes": (0,), "keepdims": False})          # f32[4]
    gb = emit(g, "broadcast", [grad], {"shape": (3, 4), "dims": (1,)})
    half = emit(g, "constant", [], {"value": np.full((3, 4), 0.5, np.float32)})
    step = emit(g, "mul", [gb, half])
    if broadcast_row:                               # reads w[0, :] for every row
        row = emit(g, "slice", [w], {"starts": (0, 0), "stops": (1, 4), "steps": (1, 1)})
        rowb = emit(g, "broadcast", [emit(g, "reshape", [row], {"shape": (4,)})],
                    {"shape": (3, 4), "dims": (1,)})
        step = emit(g, "add", [step, emit(g, "mul", [rowb, half])])
    new_w = emit(g, "sub", [w, step])
    if read_after:                                  # a later node reads the OLD w
        g.add_output(emit(g, "mul", [w, emit(g, "exp", [new_w])]), "w_times")
    if view_after:                                  # a later node reads the old w via a view
        flat = emit(g, "reshape", [w], {"shape": (12,)})
        g.add_output(emit(g, "add", [flat, flat]), "w_twice")
    if gather_after:                                # a later kernel that can fail
        g.add_output(emit(g, "gather", [emit(g, "reshape", [new_w], {"shape": (12,)}), idx],
                          {"axis": 0}), "picked")
    g.add_output(new_w, "w_new", updates="w")
    return g, w0


CASES = {"plain": {}, "read_after": {"read_after": True}, "broadcast": {"broadcast_row": True},
         "view_after": {"view_after": True}, "gather_after": {"gather_after": True}}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("pipeline", ["", None])          # unfused, and the default -O2
def test_updates_match_interpreter(case, pipeline):
    g, w0 = _sgd(f"sgd_{case}", **CASES[case])
    exe = graphc.compile(g, pipeline=pipeline)
    rng = np.random.default_rng(0)
    w = w0.copy()
    for step in range(3):
        x = rng.standard_normal((5, 4)).astype(np.float32)
        feeds = {"x": x}
        if "idx" in exe.input_names:
            feeds["idx"] = np.array([0, 3, 11, 5, 7], np.int64)
        ref = ir.run(exe.graph, {**feeds, "w": w})
        got = exe.run(feeds)
        w = ref["w_new"]
        np.testing.assert_allclose(exe.params["w"], w, rtol=1e-6)
        for name in got:
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-6)


def test_only_safe_updates_are_written_in_place():
    def direct(pipeline=None, **kw):
        g, _ = _sgd(**kw)
        exe = graphc.compile(g, pipeline=pipeline)
        plan, cg = exe.compiled.plan, exe.compiled.graph
        v = cg.outputs[cg.output_names.index("w_new")]
        return plan.home[v].kind == PARAM and not plan.update_copies
    assert direct()
    assert not direct(pipeline="", read_after=True)     # a later kernel reads the old w
    assert direct(read_after=True)      # fused: that read is in the update's own loop
    assert not direct(view_after=True)
    # the row of w is read by its own slice kernel BEFORE the update runs: still in place
    assert direct(broadcast_row=True)
    assert not direct(gather_after=True)


def test_a_failing_call_leaves_parameters_untouched():
    g, w0 = _sgd("sgd_fail", gather_after=True)
    exe = graphc.compile(g)
    before = exe.params["w"].copy()
    with pytest.raises(ExecutionError, match="out of range"):
        exe.run({"x": np.ones((2, 4), np.float32), "idx": np.array([0, 99], np.int64)})
    np.testing.assert_array_equal(exe.params["w"], before)
    np.testing.assert_array_equal(before, w0)


def test_adam_step_has_no_end_of_call_copies():
    """The MLP training step: every parameter and optimizer-state update is in place."""
    from benchmarks import models
    rng = np.random.default_rng(0)
    model = models.graphc_mlp()
    x = rng.standard_normal((8, 784)).astype(np.float32)
    y = rng.integers(0, 10, 8).astype(np.int64)
    model.train_step(x, y)
    exe = model.executable("train_step", y=y)
    assert exe.compiled.plan.update_copies == []
    assert plan_buffers(exe.graph).update_copies == []


def test_an_output_of_the_updating_group_reads_the_old_value():
    """Found by a random graph: a fused group writes new_w over w in place AND computes
    another output from the old w at the same element. The group used to store new_w first
    and then load w for the other output (reading the new value); now every value of an
    element is computed before any is stored."""
    text = """
graph @g(%x: f32[N], %q: f32[] param, %w: bool[] param, %v: f32[8] param) {
  %0 = less(%q, %q) : bool[]
  %1 = logical_or(%0, %w) : bool[]
  %2 = mul(%v, %v) : f32[8]
  %3 = sub(%v, %2) : f32[8]
  %4 = abs(%x) : f32[N]
  return %0 as "new_w" updates %w, %3 as "new_v" updates %v, %1 as "or_old", %2 as "sq",
         %4 as "ax"
}
init %q = dense<f32[]>[0.25]
init %w = dense<bool[]>[true]
init %v = dense<f32[8]>[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
"""
    g = ir.parse(text)
    feeds = {"x": np.ones(3, np.float32)}
    want = ir.run(g, feeds)
    exe = graphc.compile(g, cache=False)
    assert any(n.op == "fused" for n in exe.graph.nodes)
    got = exe.run(feeds)
    assert bool(got["or_old"]) is True and bool(want["or_old"]) is True
    np.testing.assert_array_equal(got["sq"], want["sq"])
    assert bool(exe.params["w"]) is False
    np.testing.assert_array_equal(exe.params["v"], want["new_v"])
