"""simplify: golden files (IEEE-exact rules), fast-math gating, per-rule counts, fixed point."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, TensorType, emit  # noqa: E402
from ir.interpreter import run  # noqa: E402
from ir.verifier import verify  # noqa: E402
from passes import PassManager  # noqa: E402
from passes.simplify import simplify  # noqa: E402
from passes.simplify_rules import RULES  # noqa: E402
from tests.passes import golden_runner  # noqa: E402

FAST_MATH = {r.name for r in RULES if r.fast_math}
EXPECTED_HITS = {
    "identities": {"mul-by-one": 1, "div-by-one": 1, "neg-neg": 1, "transpose-into-matmul": 1,
                   "reshape-reshape": 1, "reshape-identity": 1, "add-zero": 1, "slice-full": 1,
                   "add-neg": 1},
    "ieee_unsafe_kept": {},
    "canonical_and_relu_mask": {"uniform-constant": 1, "relu-mask": 1, "cast-identity": 1},
}


@pytest.mark.parametrize("case", golden_runner.cases("simplify"))
def test_golden(case):
    result = golden_runner.run_case("simplify", case)
    stats = result.records[0].stats
    hits = {name: n for name, n in stats.items()
            if n and name not in ("rewrites", "iterations")}
    assert hits == EXPECTED_HITS[case]
    assert all(stats[name] == 0 for name in FAST_MATH)      # never without fast-math


def test_every_golden_case_has_expectations():
    assert set(golden_runner.cases("simplify")) == set(EXPECTED_HITS)


def test_stats_name_every_rule_and_fast_math_rules_exist():
    _, stats = simplify(Graph("empty"))
    assert {r.name for r in RULES} <= set(stats)
    assert {"mul-by-zero", "sub-self", "add-pos-zero", "div-self",
            "reassociate-constants"} <= FAST_MATH


def _unsafe():
    return golden_runner.load_input(golden_runner.GOLDEN / "simplify" /
                                    "ieee_unsafe_kept.gir")[1]


def test_fast_math_rules_fire_only_when_asked_and_change_ieee_results():
    g = _unsafe()
    safe = PassManager("simplify,dce").run(g).graph
    fast_result = PassManager("simplify{fast-math=true},dce").run(g)
    fast = fast_result.graph
    stats = fast_result.records[0].stats
    assert stats["mul-by-zero"] == 1 and stats["sub-self"] == 1
    assert stats["add-pos-zero"] == 1 and stats["reassociate-constants"] == 1
    verify(fast)
    x = np.array([[np.inf, np.nan, -0.0, 1.5]], np.float32)
    want, got_safe, got_fast = run(g, {"x": x}), run(safe, {"x": x}), run(fast, {"x": x})
    for name in want:
        assert np.array_equal(got_safe[name], want[name], equal_nan=True)
    # exactly the documented IEEE differences: inf*0 and NaN*0 are NaN, not 0; inf-inf is NaN;
    # -0.0 + 0.0 is +0.0 (fast-math keeps -0.0)
    assert np.isnan(want["times_zero"][0, :2]).all() and (got_fast["times_zero"] == 0).all()
    assert np.isnan(want["minus_self"][0, 0]) and got_fast["minus_self"][0, 0] == 0
    assert not np.signbit(want["plus_zero"][0, 2]) and np.signbit(got_fast["plus_zero"][0, 2])


def test_integer_versions_of_unsafe_rules_are_always_on():
    g = Graph("ints")
    x = g.add_input("x", TensorType(("N",), "i32"))
    zero = emit(g, "broadcast", [emit(g, "constant", [], {"value": np.int32(0)})],
                {"shape": ("N",), "dims": ()})
    g.add_output(emit(g, "mul", [x, zero]), "a")
    g.add_output(emit(g, "sub", [x, x]), "b")
    out, stats = simplify(g)
    assert stats["int-mul-by-zero"] == 1 and stats["int-sub-self"] == 1
    xs = np.array([2**31 - 1, -2**31, 0, 7], np.int32)
    for name, arr in run(g, {"x": xs}).items():
        assert np.array_equal(run(out, {"x": xs})[name], arr)


def test_fixed_point_cap_and_remark():
    g = Graph("negs")
    v = g.add_input("x", TensorType((3,), "f32"))
    for _ in range(8):
        v = emit(g, "neg", [v])
    g.add_output(v, "y")
    capped = PassManager("simplify{max-iterations=1}").run(g)
    assert capped.records[0].stats["iterations"] == 1
    assert any("without a fixed point" in r for r in capped.records[0].remarks)
    full = PassManager("simplify,dce").run(g).graph
    assert full.outputs[0] is full.inputs[0]            # eight negations cancel exactly


def test_broadcast_compositions_and_transposes_compose():
    g = Graph("compose")
    x = g.add_input("x", TensorType((3,), "f32"))
    b1 = emit(g, "broadcast", [x], {"shape": (2, 3), "dims": (1,)})
    b2 = emit(g, "broadcast", [b1], {"shape": (4, 2, 3), "dims": (1, 2)})
    t1 = emit(g, "transpose", [b2], {"perm": (1, 2, 0)})
    t2 = emit(g, "transpose", [t1], {"perm": (2, 0, 1)})
    g.add_output(t2, "y")
    out = PassManager("simplify,dce").run(g).graph
    assert [n.op for n in out.nodes] == ["broadcast"]
    assert out.nodes[0].attrs["dims"] == (2,)
    xs = np.array([1.0, -0.0, np.nan], np.float32)
    assert np.array_equal(run(out, {"x": xs})["y"], run(g, {"x": xs})["y"], equal_nan=True)
