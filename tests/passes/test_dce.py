"""dce: golden files (tests/passes/golden/dce) and targeted cases."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, TensorType, emit, f32, get_op, i64  # noqa: E402
from ir.printer import print_graph  # noqa: E402
from ir.serialize import load_gir  # noqa: E402
import passes.dce as dce_module  # noqa: E402
from passes import PassManager, live_nodes  # noqa: E402
from passes.dce import eliminate_dead_code as dce  # noqa: E402
from tests.passes import golden_runner  # noqa: E402

EXPECTED_REMOVED = {"dead_chain": 3, "param_update": 2, "random": 1, "nothing_dead": 0}


@pytest.mark.parametrize("case", golden_runner.cases("dce"))
def test_golden(case):
    result = golden_runner.run_case("dce", case)
    assert result.records[0].stats == {"removed_nodes": EXPECTED_REMOVED[case]}
    assert result.records[0].changed == (EXPECTED_REMOVED[case] > 0)


def test_every_golden_case_has_an_expected_count():
    assert set(golden_runner.cases("dce")) == set(EXPECTED_REMOVED)


def test_unused_inputs_and_their_initializers_stay():
    g = load_gir(golden_runner.GOLDEN / "dce" / "param_update.gir")
    g.outputs, g.output_names, g.aliases = [g.outputs[0]], ["loss"], {}
    out, stats = dce(g)
    assert [v.name for v in out.inputs] == ["x", "w", "lr"]   # %w and %lr are now unused
    assert set(out.initializers) == {"w"}
    assert [n.op for n in out.nodes] == ["matmul", "reduce_sum"]
    assert stats == {"removed_nodes": 8}


def test_input_graph_is_not_mutated():
    g = load_gir(golden_runner.GOLDEN / "dce" / "dead_chain.gir")
    before = print_graph(g)
    out, _ = dce(g)
    assert print_graph(g) == before and len(out.nodes) < len(g.nodes)


def _graph_with_unused_exp():
    g = Graph("t")
    x = g.add_input("x", TensorType(("N", 3), f32))
    emit(g, "exp", [x])
    g.add_output(emit(g, "neg", [x]), "y")
    return g


def test_stateful_ops_are_never_removed(monkeypatch):
    # No registered primitive is stateful yet, so pretend `exp` is one for this test.
    stateful_exp = dataclasses.replace(get_op("exp"), purity="stateful")
    monkeypatch.setattr(dce_module, "get_op",
                        lambda name: stateful_exp if name == "exp" else get_op(name))
    g = _graph_with_unused_exp()
    out, stats = dce(g)
    assert [n.op for n in out.nodes] == ["exp", "neg"] and stats["removed_nodes"] == 0


def test_a_stateful_node_keeps_what_it_reads(monkeypatch):
    stateful_exp = dataclasses.replace(get_op("exp"), purity="stateful")
    monkeypatch.setattr(dce_module, "get_op",
                        lambda name: stateful_exp if name == "exp" else get_op(name))
    g = Graph("t")
    x = g.add_input("x", TensorType((3,), f32))
    feeds = emit(g, "abs", [x])
    emit(g, "exp", [feeds])                  # unused result, but stateful
    emit(g, "sqrt", [x])                     # unused and pure: dead
    g.add_output(x, "same")
    assert live_nodes(g) == [True, True, False]


def test_same_value_in_several_outputs_and_direct_input_outputs():
    g = Graph("t")
    x = g.add_input("x", TensorType((2,), f32))
    step = g.add_input("step", TensorType((), i64))
    r = emit(g, "random_uniform", [step], {"shape": (2,)})
    g.add_output(x, "passthrough")
    g.add_output(r, "noise")
    g.add_output(r, "noise_again")
    out, stats = dce(g)
    assert stats == {"removed_nodes": 0} and len(out.nodes) == 1


def test_dce_in_a_pipeline_after_shape_infer_on_the_mlp_example():
    g = load_gir(Path(__file__).resolve().parents[2] / "examples" / "mlp.gir")
    result = PassManager("shape-infer,dce").run(g)
    assert result.record("dce").stats == {"removed_nodes": 2}
    assert "exp" not in {n.op for n in result.graph.nodes}
    x = np.random.default_rng(0).standard_normal((5, 784)).astype(np.float32)
    from ir.interpreter import run
    np.testing.assert_array_equal(run(result.graph, {"x": x})["logits"],
                                  run(g, {"x": x})["logits"])


# -- properties on random graphs (tests/strategies.py) -------------------------------------------

from hypothesis import given, settings  # noqa: E402

from ir.equality import structural_diff  # noqa: E402
from ir.interpreter import run  # noqa: E402
from ir.parser import parse  # noqa: E402
from ir.printer import dump  # noqa: E402
from ir.verifier import verify  # noqa: E402
from strategies import graph_and_inputs  # noqa: E402


@settings(max_examples=40)
@given(graph_and_inputs(max_nodes=10, special_values=True))
def test_dce_keeps_numbers_and_leaves_no_dead_pure_node(case):
    g, inputs = case
    out, stats = dce(g)
    verify(out)
    assert stats["removed_nodes"] == len(g.nodes) - len(out.nodes)
    assert all(live_nodes(out)), "a node dce kept is still dead"
    assert dce(out)[1] == {"removed_nodes": 0}
    want, got = run(g, inputs), run(out, inputs)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    text, weights = dump(out)
    assert structural_diff(parse(text, weights), out, check_names=True, check_locs=True) is None
