"""cse: golden file, random ops never merged, outputs and aliased updates kept."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, TensorType, emit, make_node  # noqa: E402
from ir.interpreter import run  # noqa: E402
from passes import PassManager  # noqa: E402
from passes.cse import eliminate_common_subexpressions as cse  # noqa: E402
from tests.passes import golden_runner  # noqa: E402

# exp, the 0.5 constant, its broadcast, the mul; then add(%7, %6) and add(%6, %7) both read
# add(%6, %6) and merge too
EXPECTED_MERGED = {"duplicates": 5}


@pytest.mark.parametrize("case", golden_runner.cases("cse"))
def test_golden(case):
    result = golden_runner.run_case("cse", case)
    assert result.records[0].stats == {"merged_nodes": EXPECTED_MERGED[case]}


def test_every_golden_case_has_expectations():
    assert set(golden_runner.cases("cse")) == set(EXPECTED_MERGED)


def test_random_ops_are_never_merged_even_inside_fused_groups():
    g = Graph("drop")
    step = g.add_input("step", TensorType((), "i64"))
    outs = []
    for _ in range(2):
        body = Graph("fused_0")
        c = body.add_input("c", TensorType((), "i64"))
        body.add_output(emit(body, "random_uniform", [c], {"shape": (4,), "seed": 3}), "r0")
        outs.append(make_node(g, "fused", [step], {"kind": "elementwise", "body": body})
                    .outputs[0])
    g.add_output(emit(g, "sub", [outs[0], outs[1]]), "y")
    out, stats = cse(g)
    assert stats["merged_nodes"] == 0 and len(out.nodes) == 3


def test_operand_order_matters_and_updates_survive():
    g = Graph("upd")
    x = g.add_input("x", TensorType((3,), "f32"))
    w = g.add_input("w", TensorType((3,), "f32"), "param", np.ones(3, np.float32))
    a, b = emit(g, "add", [x, w]), emit(g, "add", [w, x])
    dup = emit(g, "add", [x, w])
    g.add_output(a, "a")
    g.add_output(b, "b")
    g.add_output(dup, "w_new", updates="w")
    out = PassManager("cse,dce").run(g).graph
    assert len(out.nodes) == 2                       # add(x, w) twice -> once; add(w, x) kept
    assert out.aliases == {"w_new": "w"} and out.output("w_new") is out.output("a")
    xs = np.array([np.nan, -0.0, 1.0], np.float32)
    for name, arr in run(g, {"x": xs}).items():
        assert np.array_equal(run(out, {"x": xs})[name], arr, equal_nan=True)
