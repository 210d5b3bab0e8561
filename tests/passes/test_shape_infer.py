"""shape-infer: golden files (tests/passes/golden/shape-infer) and targeted cases."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import DTypeError, Graph, Loc, ShapeError, TensorType, emit, f32, i64, sym  # noqa: E402
from ir.equality import structural_equal  # noqa: E402
from ir.interpreter import run  # noqa: E402
from ir.printer import print_graph  # noqa: E402
from passes import PassManager  # noqa: E402
from passes.shape_infer import infer_shapes as shape_infer  # noqa: E402
from tests.passes import golden_runner  # noqa: E402

N, M = sym("N"), sym("M")


@pytest.mark.parametrize("case", golden_runner.cases("shape-infer"))
def test_golden(case):
    golden_runner.run_case("shape-infer", case)


EXPECTED_STATS = {
    # case: (types_refined, unified_symbols)
    "consistent": (0, 0),
    "unify_batch": (3, 1),     # %y, the add and the mul (the column sum is f32[4] anyway)
    "unify_matmul": (2, 1),    # %w and %v; node types never mentioned K
    "unify_attrs": (3, 1),     # broadcast, add, reshape (dim_value is i64[] either way)
    "unify_alias": (1, 1),     # %s
    "specialize": (3, 0),      # %x and three node types (reduce_sum's [1,2] stays)
}


@pytest.mark.parametrize("case", sorted(EXPECTED_STATS))
def test_golden_stats(case):
    result = golden_runner.run_case("shape-infer", case)
    stats = result.records[0].stats
    assert (stats["types_refined"], stats["unified_symbols"]) == EXPECTED_STATS[case]
    _, graph = golden_runner.load_input(golden_runner.GOLDEN / "shape-infer" / f"{case}.gir")
    assert stats["nodes_checked"] == len(graph.nodes)
    assert result.records[0].changed == (EXPECTED_STATS[case] != (0, 0))


def _two_inputs(tx, ty, op="add"):
    """x `op` y built well-typed, then %y retyped to `ty` (stale types, as after an edit)."""
    g = Graph("t")
    x = g.add_input("x", tx)
    y = g.add_input("y", tx if op == "add" else TensorType((tx.shape[1], 3), tx.dtype))
    g.add_output(emit(g, op, [x, y], loc=Loc("model.py", 12, "net/op")), "out")
    y.type = ty
    return g


def test_unifies_and_reports_remark():
    g = _two_inputs(TensorType((N, 4), f32), TensorType((M, 4), f32))
    result = PassManager("shape-infer").run(g)
    out = result.graph
    assert [str(v.type) for v in out.inputs] == ["f32[N,4]", "f32[N,4]"]
    assert result.records[0].remarks == ["unified M with N: required by add at model.py:12 "
                                         "(net/op)"]
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(run(out, {"x": x, "y": 2 * x})["out"], 3 * x)


def test_input_graph_is_not_mutated():
    g = _two_inputs(TensorType((N, 4), f32), TensorType((M, 4), f32))
    before = print_graph(g)
    shape_infer(g)
    assert print_graph(g) == before
    assert str(g.inputs[1].type) == "f32[M,4]"


def test_transitive_unification_picks_first_symbol():
    # P meets M, then M (now P) meets N: every symbol ends as P, the first in input order.
    g = Graph("t")
    p = g.add_input("p", TensorType(("P", 2), f32))
    m = g.add_input("m", TensorType(("P", 2), f32))
    n = g.add_input("n", TensorType(("P", 2), f32))
    a = emit(g, "add", [p, m])
    b = emit(g, "add", [a, n])
    g.add_output(b, "out")
    m.type, n.type = TensorType(("M", 2), f32), TensorType(("N", 2), f32)
    out, stats = shape_infer(g)
    assert {str(v.type) for v in out.values()} == {"f32[P,2]"}
    assert stats["unified_symbols"] == 2
    remarks = PassManager("shape-infer").run(g).records[0].remarks
    assert remarks == ["unified M with P: required by add", "unified N with P: required by add"]


def test_compound_dims_unify_through_their_symbols():
    # 4*N against 4*M: equal exactly when N = M.
    g = Graph("t")
    x = g.add_input("x", TensorType((N, 4), f32))
    y = g.add_input("y", TensorType((N, 4), f32))
    fx = emit(g, "reshape", [x], {"shape": (4 * N,)})
    fy = emit(g, "reshape", [y], {"shape": (4 * N,)})
    g.add_output(emit(g, "add", [fx, fy]), "out")
    y.type = TensorType((M, 4), f32)
    fy.producer.attrs = {"shape": (4 * M,)}
    out, stats = shape_infer(g)
    assert stats["unified_symbols"] == 1
    assert str(out.nodes[1].attrs["shape"][0]) == "4*N"


@pytest.mark.parametrize("tx, ty, found", [
    (TensorType((N, 4), f32), TensorType((N, 5), f32), "f32[N,4]"),   # static dims differ
    (TensorType((N, 4), f32), TensorType((3, 4), f32), "f32[3,4]"),   # symbol vs int
    (TensorType((N, 4), f32), TensorType((M + 1, 4), f32), "f32[M+1,4]"),  # vs expression
    (TensorType((N, 4), f32), TensorType((2 * M, 4), f32), "f32[2*M,4]"),  # N=M cannot help
])
def test_unresolvable_mismatch_is_a_shape_error_with_op_types_and_loc(tx, ty, found):
    g = _two_inputs(tx, ty)
    with pytest.raises(ShapeError) as info:
        shape_infer(g)
    message = str(info.value)
    assert message.startswith("model.py:12 (net/op): add(")
    assert str(tx) in message and found in message
    assert info.value.loc == Loc("model.py", 12, "net/op")


def test_shape_error_through_pass_manager_names_the_pass():
    g = _two_inputs(TensorType((N, 4), f32), TensorType((3, 4), f32))
    with pytest.raises(ShapeError) as info:
        PassManager("dce,shape-infer").run(g)
    assert "in pass shape-infer (2/2)" in info.value.__notes__


def test_matmul_mismatch_names_the_rule():
    g = _two_inputs(TensorType((N, 4), f32), TensorType((5, 3), f32), op="matmul")
    with pytest.raises(ShapeError, match=r"matmul\(%x: f32\[N,4\], %y: f32\[5,3\]\).*"
                                         r"contracted dims"):
        shape_infer(g)


def test_dtype_errors_are_not_unified_away():
    g = _two_inputs(TensorType((N, 4), f32), TensorType((N, 4), i64))
    with pytest.raises(DTypeError) as info:
        shape_infer(g)
    assert info.value.loc == Loc("model.py", 12, "net/op")


def test_alias_with_static_mismatch_is_an_error():
    g = Graph("t")
    x = g.add_input("x", TensorType((N, 3), f32))
    s = g.add_input("s", TensorType((3,), f32), "state")
    g.add_output(emit(g, "reduce_sum", [x], {"axes": (0,)}), "s_new", updates="s")
    s.type = TensorType((4,), f32)
    with pytest.raises(ShapeError, match=r"output 's_new' updates %s in place, so its type "
                                         r"must be f32\[4\], found f32\[3\]"):
        shape_infer(g)


def test_rerunning_is_a_fixed_point():
    g = _two_inputs(TensorType((N, 4), f32), TensorType((M, 4), f32))
    once, _ = shape_infer(g)
    twice, stats = shape_infer(once)
    assert structural_equal(once, twice, check_names=True)
    assert stats == {"nodes_checked": 1, "types_refined": 0, "unified_symbols": 0}


# -- properties on random graphs (tests/strategies.py) -------------------------------------------

from hypothesis import given, settings  # noqa: E402

from ir.symbolic import substitute  # noqa: E402
from ir.verifier import verify  # noqa: E402
from strategies import graph_and_inputs, graphs  # noqa: E402


@settings(max_examples=40)
@given(graphs(max_nodes=10))
def test_well_typed_graphs_are_a_fixed_point(g):
    out, stats = shape_infer(g)
    assert stats == {"nodes_checked": len(g.nodes), "types_refined": 0, "unified_symbols": 0}
    assert structural_equal(out, g, check_names=True, check_locs=True)


def _bare_n(t):
    return any(d == N for d in t.shape)


# Ops that make values meet (so the retyped input gets unified in most examples), plus a few
# that carry N in attributes (reshape, broadcast helpers) or reduce it away.
MEETING_OPS = ["add", "mul", "sub", "maximum", "select", "matmul", "concat", "reduce_sum",
               "reshape", "relu", "exp"]


@settings(max_examples=40)
@given(graph_and_inputs(max_nodes=10, ops=MEETING_OPS))
def test_a_fresh_batch_symbol_on_one_input_is_unified_back(case):
    # Retype one data input from N to a fresh symbol Z (another input keeps N bound, so
    # every dim keeps a value): shape-infer must make the graph well-typed again, and it
    # must compute exactly what the original computes.
    g, inputs = case
    data = [v for v in g.inputs if v.name not in g.initializers and _bare_n(v.type)]
    if len(data) < 2:
        return
    edited = g.clone()
    target = edited.input(data[-1].name)
    target.type = TensorType(tuple(substitute(d, {"N": sym("Z")}) for d in target.type.shape),
                             target.type.dtype)
    out, stats = shape_infer(edited)
    verify(out)
    assert out.symbols() <= g.symbols() | {"Z"}
    want, got = run(g, inputs), run(out, inputs)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
