"""GraphState (passes/graph_state.py): the facts a graph is made of tell whether it changed,
and the structural hash of the graph as it was comes back from them, also after a change;
the PassManager's hashes and change flags, read late, are those of the run."""
import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ir import Graph, PassError, TensorType, emit, f32  # noqa: E402
from ir.equality import structural_hash  # noqa: E402
from passes import (Instrument, PassManager, function_pass, pipeline_for,  # noqa: E402
                    unregister_pass)
from passes.graph_state import GraphState, facts_of, rebuild  # noqa: E402
from mlp_step import mlp_train_step  # noqa: E402


def _frozen(arr):
    arr = np.array(arr)
    arr.setflags(write=False)
    return arr


def small_graph(weights=None, batch="N"):
    """x, w (param, with an initializer) -> matmul -> relu -> scaled; w updated in place."""
    g = Graph("small")
    x = g.add_input("x", TensorType((batch, 3), f32))
    w = g.add_input("w", TensorType((3, 3), f32), "param",
                    _frozen(np.eye(3, dtype=np.float32)) if weights is None else weights)
    m = emit(g, "matmul", [x, w])
    r = emit(g, "relu", [m])
    c = emit(g, "constant", [], {"value": _frozen(np.float32(0.5))})
    b = emit(g, "broadcast", [c], {"shape": r.type.shape, "dims": ()})
    g.add_output(emit(g, "mul", [r, b]), "y")
    g.add_output(emit(g, "neg", [w]), "w_new", updates="w")
    return g


@pytest.fixture(scope="module")
def optimised_step():
    """The MLP training step after the -O2 pipeline: fused nodes with nested graphs."""
    return PassManager(pipeline_for(2)).run(mlp_train_step()).graph


def test_rebuilt_graphs_hash_as_the_originals(optimised_step):
    for g in (small_graph(), mlp_train_step(), optimised_step):
        facts = facts_of(g)
        assert facts is not None
        assert structural_hash(rebuild(facts)) == structural_hash(g)
        state = GraphState(g)
        assert state.holds() and state.hash == structural_hash(g)


def _set_attr(value):
    def mutate(g):
        g.nodes[2].attrs["value"] = value
    return mutate


MUTATIONS = {
    "node removed": lambda g: g.nodes.pop(2),
    "operand swapped": lambda g: g.nodes[0].inputs.reverse(),
    "op renamed": lambda g: setattr(g.nodes[1], "op", "abs"),
    "attr value": _set_attr(_frozen(np.float32(0.25))),
    "attr added": lambda g: g.nodes[3].attrs.update(extra=(1, 2)),
    "result type": lambda g: setattr(g.nodes[1].outputs[0], "type", TensorType((7,), f32)),
    "input role": lambda g: setattr(g.inputs[1], "role", "state"),
    "output name": lambda g: g.output_names.__setitem__(0, "z"),
    "output value": lambda g: g.outputs.reverse(),
    "alias dropped": lambda g: g.aliases.clear(),
    "initializer replaced": lambda g: g.initializers.update(w=_frozen(np.zeros((3, 3),
                                                                             np.float32))),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_a_change_is_seen_and_the_old_hash_survives_it(name):
    g = small_graph()
    before = structural_hash(g)
    state = GraphState(g)                   # nothing hashed yet
    MUTATIONS[name](g)
    assert not state.holds()
    assert state.hash == before             # from the facts: the graph as it was
    assert structural_hash(g) != before


def test_equal_but_distinct_values_are_a_change():
    g = small_graph()
    g.nodes[2].attrs["value"] = 0.0
    state, before = GraphState(g), structural_hash(g)
    g.nodes[2].attrs["value"] = -0.0        # == 0.0, but other bits: another hash
    assert not state.holds() and state.hash == before != structural_hash(g)


def test_a_renamed_value_moves_the_facts_but_not_the_hash():
    g = small_graph()
    state = GraphState(g)
    g.nodes[0].outputs[0].name = "renamed"  # names are not structural
    assert state.hash == structural_hash(g)


def test_a_change_inside_a_nested_graph_is_seen(optimised_step):
    g = optimised_step.clone()
    state = GraphState(g)
    before = structural_hash(g)
    body = next(n.attrs["body"] for n in g.nodes if n.op == "fused")
    body.nodes[-1].op = "abs" if body.nodes[-1].op != "abs" else "neg"
    assert not state.holds() and state.hash == before
    assert structural_hash(g) != before


def test_writeable_arrays_are_hashed_at_once():
    weights = np.eye(3, dtype=np.float32)              # writeable: could change unseen
    g = small_graph(weights)
    assert facts_of(g) is None
    before = structural_hash(g)
    state = GraphState(g)
    weights[0, 0] = 7.0
    assert not state.holds() and state.hash == before
    view = _frozen(np.eye(3, dtype=np.float32))
    base = np.eye(3, dtype=np.float32)
    ro_view = base[:]
    ro_view.setflags(write=False)                      # read-only view of writeable memory
    assert facts_of(small_graph(view)) is not None and facts_of(small_graph(ro_view)) is None


# -- the manager's records ------------------------------------------------------------------------

@pytest.fixture
def test_passes():
    def rename_input(graph, ctx):
        """renames a value of its input in place (not structural: allowed)"""
        graph.nodes[0].outputs[0].name = "renamed"
        return graph, {}

    def edit_nested(graph, ctx):
        """changes a nested graph of its input in place"""
        body = next(n.attrs["body"] for n in graph.nodes if n.op == "fused")
        body.nodes.pop()
        return graph, {}

    function_pass("test-rename-input", rename_input.__doc__)(rename_input)
    function_pass("test-edit-nested", edit_nested.__doc__)(edit_nested)
    yield
    unregister_pass("test-rename-input")
    unregister_pass("test-edit-nested")


def test_a_copied_state_still_gives_the_hash():
    g = small_graph(batch=4)              # (a SymDim cannot be deep-copied)
    state = GraphState(g)
    before = structural_hash(g)
    g.nodes.pop()
    assert copy.deepcopy(state).hash == before
    assert pickle.loads(pickle.dumps(state)).hash == before


def test_records_read_late_describe_the_run():
    g = small_graph()
    first = structural_hash(g)
    result = PassManager("shape-infer,dce,cse").run(g)
    final = structural_hash(result.graph)
    g.nodes.pop()                                       # the caller's graphs change later
    result.graph.outputs.reverse()
    si, dce, cse = result.records
    assert si.hash_before == first and cse.hash_after == final
    assert [r.changed for r in result.records] == [False, False, False]
    assert dce.hash_before == si.hash_after == first


def test_non_structural_and_structural_edits_of_the_input(test_passes, optimised_step):
    result = PassManager("test-rename-input").run(small_graph())
    assert not result.records[0].changed
    with pytest.raises(PassError, match=r"test-edit-nested \(1/1\) mutated its input graph"):
        PassManager("test-edit-nested").run(optimised_step.clone())


class _EagerHashes(Instrument):
    """What the manager used to record: both hashes of every pass, taken as it ran."""

    def __init__(self):
        self.seen = []

    def after_pass(self, record, before, after):
        self.seen.append((structural_hash(before), structural_hash(after)))


def test_changed_and_hashes_match_hashes_taken_during_the_run():
    eager = _EagerHashes()
    result = PassManager(pipeline_for(2), [eager]).run(mlp_train_step())
    late = [(r.hash_before, r.hash_after) for r in result.records]
    assert late == eager.seen
    assert [r.changed for r in result.records] == [a != b for a, b in eager.seen]
    assert result.record("fuse").changed and not result.record("plan-memory").changed
