"""constant-fold: golden files, the size guard, random ops, frozen params."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, TensorType, emit  # noqa: E402
from ir.interpreter import run  # noqa: E402
from ir.verifier import verify  # noqa: E402
from passes import PassManager  # noqa: E402
from passes.constant_fold import fold_constants  # noqa: E402
from tests.passes import golden_runner  # noqa: E402

EXPECTED = {"fold_chain": {"folded_nodes": 3}, "nan_and_signed_zero": {"folded_nodes": 2}}


@pytest.mark.parametrize("case", golden_runner.cases("constant-fold"))
def test_golden(case):
    # folded values are f32 (the runtime's dtype): the f64 run of the input differs by rounding
    result = golden_runner.run_case("constant-fold", case, f64_rtol=1e-6)
    stats = result.records[0].stats
    assert stats["folded_nodes"] == EXPECTED[case]["folded_nodes"]


def test_every_golden_case_has_expectations():
    assert set(golden_runner.cases("constant-fold")) == set(EXPECTED)


def test_fold_chain_keeps_random_and_symbolic_nodes():
    out = PassManager("constant-fold").run(golden_runner.load_input(
        golden_runner.GOLDEN / "constant-fold" / "fold_chain.gir")[1]).graph
    ops = [n.op for n in out.nodes]
    assert "random_uniform" in ops and "dim_value" in ops
    assert "mul" not in ops and "exp" not in ops and "iota" not in ops


def test_folded_values_are_the_f32_reference_bits():
    out, _ = fold_constants(golden_runner.load_input(
        golden_runner.GOLDEN / "constant-fold" / "nan_and_signed_zero.gir")[1])
    folded = [n for n in out.nodes if n.op == "constant"][-1].attrs["value"]
    with np.errstate(invalid="ignore"):
        want = np.maximum(np.array([np.nan, np.inf, -0.0, 0.0], np.float32)
                          * np.array([0, 0, 1, -1], np.float32),
                          np.array([0, 0, 1, -1], np.float32))
    assert folded.dtype == np.float32
    assert np.array_equal(folded.view(np.uint32), want.view(np.uint32))


def _broadcast_graph(n):
    g = Graph("big")
    c = emit(g, "constant", [], {"value": np.float32(2.0)})
    b = emit(g, "broadcast", [c], {"shape": (n, n), "dims": ()})
    e = emit(g, "exp", [b])
    g.add_output(e, "y")
    return g


def test_size_guard_keeps_huge_results_unmaterialised():
    small, stats = fold_constants(_broadcast_graph(4))
    assert [n.op for n in small.nodes] == ["constant", "broadcast", "constant"]
    assert stats["folded_nodes"] == 1 and stats["skipped_large"] == 0
    big, stats = fold_constants(_broadcast_graph(1024), max_elements=4096)
    assert [n.op for n in big.nodes] == ["constant", "broadcast", "exp"]
    assert stats["skipped_large"] == 1 and stats["folded_nodes"] == 0


def _frozen_graph():
    g = Graph("infer")
    x = g.add_input("x", TensorType(("N", 3), "f32"))
    w = g.add_input("w", TensorType((3, 2), "f32"), "param",
                    np.arange(6, dtype=np.float32).reshape(3, 2))
    s = g.add_input("s", TensorType((3, 2), "f32"), "state", np.ones((3, 2), np.float32))
    wt = emit(g, "mul", [emit(g, "exp", [w]), s])          # weight-only subgraph
    g.add_output(emit(g, "matmul", [x, wt]), "y")
    g.add_output(emit(g, "neg", [s]), "s_new", updates="s")
    return g


def test_params_fold_only_when_frozen_and_never_when_updated():
    g = _frozen_graph()
    plain, stats = fold_constants(g)
    assert stats["folded_nodes"] == 0
    frozen, stats = fold_constants(g, freeze=True)
    # exp(w) folds; its product with %s does not: %s is updated in place, so it is state
    assert stats["folded_nodes"] == 1
    assert [n.op for n in frozen.nodes] == ["constant", "mul", "matmul", "neg"]
    verify(frozen)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    for name, arr in run(g, {"x": x}).items():
        assert np.array_equal(run(frozen, {"x": x})[name], arr)


def test_input_graph_is_not_mutated_and_errors_stay_runtime_errors():
    g = Graph("gather")
    data = emit(g, "constant", [], {"value": np.arange(4, dtype=np.float32)})
    idx = emit(g, "constant", [], {"value": np.array([7], np.int64)})     # out of range
    g.add_output(emit(g, "gather", [data, idx], {"axis": 0}), "y")
    before = str(g)
    result = PassManager("constant-fold").run(g)
    assert str(g) == before
    assert result.records[0].stats["fold_errors"] == 1
    assert [n.op for n in result.graph.nodes][-1] == "gather"
    assert any("not folded" in r for r in result.records[0].remarks)
