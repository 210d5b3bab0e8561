"""Verifier: valid graphs pass; each invariant is caught on a graph broken by hand."""
import numpy as np
import pytest
from hypothesis import given

from ir import Graph, Loc, Node, TensorType, Value, VerifyError, emit, sym
from ir.dtypes import f64
from ir.verifier import INVARIANTS, check, verify
from strategies import graphs

LOC = Loc("model.py", 7, "net/dense")


def valid_graph():
    g = Graph("g")
    x = g.add_input("x", TensorType((sym("N"), 4), "f32"))
    w = g.add_input("w", TensorType((4, 3), "f32"), "param", np.ones((4, 3), np.float32))
    s = g.add_input("s", TensorType((3,), "f32"), "state", np.zeros(3, np.float32))
    h = emit(g, "matmul", [x, w], loc=LOC)
    r = emit(g, "relu", [h], loc=Loc("model.py", 8, "net/act"))
    t = emit(g, "reduce_sum", [r], {"axes": (0,)})
    u = emit(g, "add", [t, s])
    g.add_output(r, "y")
    g.add_output(u, "s_new", updates="s")
    return g


def invariants(g):
    return [e.invariant for e in check(g)]


def assert_violates(g, invariant, *fragments):
    errors = check(g)
    names = [e.invariant for e in errors]
    assert invariant in names, [str(e) for e in errors]
    err = errors[names.index(invariant)]
    assert f"[{invariant}]" in str(err)
    for fragment in fragments:
        assert fragment in str(err), str(err)
    with pytest.raises(VerifyError):
        verify(g)
    return err


def test_valid_graph_passes():
    g = valid_graph()
    assert check(g) == []
    verify(g)


@given(graphs(max_nodes=8))
def test_generated_graphs_verify(g):
    assert check(g) == []


def test_defined_before_use_out_of_order():
    g = valid_graph()
    g.nodes[0], g.nodes[1] = g.nodes[1], g.nodes[0]
    err = assert_violates(g, "defined-before-use", "node 0 (%1 = relu)", "operand 0 %0",
                          "comes later")
    assert err.loc == Loc("model.py", 8, "net/act")
    assert str(err).startswith("model.py:8 (net/act): [defined-before-use]")


def test_defined_before_use_foreign_value():
    g = valid_graph()
    stranger = Value("ghost", TensorType((sym("N"), 3), "f32"))
    g.nodes[1].inputs = [stranger]
    assert_violates(g, "defined-before-use", "%ghost is not defined in this graph")


def test_single_definition():
    g = valid_graph()
    node = g.nodes[1]
    g.nodes.insert(2, Node(node.op, node.inputs, node.attrs, node.outputs, node.loc))
    assert_violates(g, "single-definition", "defines %1, which is already defined")


def test_single_definition_wrong_producer():
    g = valid_graph()
    g.nodes[1].outputs[0].producer = g.nodes[0]
    assert_violates(g, "single-definition", "records producer matmul")


def test_unique_names():
    g = valid_graph()
    g.nodes[1].outputs[0].name = "x"
    assert_violates(g, "unique-names", "second value named %x")


def test_unique_output_names():
    g = valid_graph()
    g.output_names[1] = "y"
    g.aliases = {"y": "s"}
    assert_violates(g, "unique-names", "output name 'y' is used twice")


def test_known_op():
    g = valid_graph()
    g.nodes[1].op = "relux"
    assert_violates(g, "known-op", "node 1 (%1 = relux)", "did you mean relu")


def test_arity_operands():
    g = valid_graph()
    g.nodes[1].inputs.append(g.inputs[0])
    assert_violates(g, "arity", "relu takes 1 operand(s), found 2")


def test_arity_results():
    g = valid_graph()
    node = g.nodes[1]
    node.outputs.append(Value("extra", node.outputs[0].type, node, 1))
    assert_violates(g, "arity", "relu has 1 result(s), found 2")


@pytest.mark.parametrize("edit, fragment", [
    (lambda a: a.pop("keepdims"), "missing"),
    (lambda a: a.update(axes="0"), "expects a list of ints"),
    (lambda a: a.update(bogus=1), "unknown attribute"),
    (lambda a: a.update(axes=[0]), "canonical form"),
    (lambda a: a.update(keepdims=np.bool_(False)), "canonical form"),
])
def test_attrs_valid(edit, fragment):
    g = valid_graph()
    edit(g.nodes[2].attrs)
    assert_violates(g, "attrs-valid", "node 2 (%2 = reduce_sum)", fragment)


def test_attrs_valid_writeable_tensor():
    g = valid_graph()
    c = emit(g, "constant", [], {"value": np.ones(3, np.float32)})
    g.add_output(c, "c")
    assert check(g) == []
    c.producer.attrs["value"] = np.ones(3, np.float32)
    assert_violates(g, "attrs-valid", "writeable array")


def test_type_matches_rule_stored_type_differs():
    g = valid_graph()
    g.nodes[0].outputs[0].type = TensorType((sym("N"), 5), "f32")
    err = assert_violates(g, "type-matches-rule", "result 0 %0 is stored as f32[N,5]",
                          "matmul infers f32[N,3]")
    assert err.loc == LOC


def test_type_matches_rule_operands_rejected():
    g = valid_graph()
    g.inputs[1].type = TensorType((5, 3), "f32")
    g.initializers["w"] = np.ones((5, 3), np.float32)
    assert_violates(g, "type-matches-rule", "the op's rule rejects its operands",
                    "contracted dims")


def test_no_cycles():
    g = valid_graph()
    # matmul now consumes relu's result while relu consumes matmul's: a cycle
    g.nodes[0].inputs[0] = g.nodes[1].outputs[0]
    g.inputs[0].type = TensorType((sym("N"), 3), "f32")
    err = assert_violates(g, "no-cycles", "cycle", "%0 = matmul", "%1 = relu")
    assert "defined-before-use" in invariants(g)
    assert err.invariant == "no-cycles"


def test_outputs_defined():
    g = valid_graph()
    g.outputs[0] = Value("elsewhere", TensorType((2,), "f32"))
    assert_violates(g, "outputs-defined", "output 0 'y' is %elsewhere")


def test_outputs_and_names_counts():
    g = valid_graph()
    g.output_names.append("dangling")
    assert_violates(g, "outputs-defined", "2 output value(s) but 3 output name(s)")


def test_input_roles():
    g = valid_graph()
    g.inputs[0].role = "weights"
    assert_violates(g, "input-roles", "input 0 %x has role 'weights'")


@pytest.mark.parametrize("edit, fragment", [
    (lambda g: g.aliases.update({"s_new": "x"}), "%x has role 'input'"),
    (lambda g: g.aliases.update({"s_new": "nope"}), "no input %nope"),
    (lambda g: g.aliases.update({"zzz": "s"}), "no output named 'zzz'"),
    (lambda g: g.aliases.update({"y": "w"}), "the output is f32[N,3] and the input is f32[4,3]"),
    (lambda g: g.add_output(g.outputs[1], "s_again", updates="s"), "already updates it"),
])
def test_aliases_valid(edit, fragment):
    g = valid_graph()
    edit(g)
    assert_violates(g, "aliases-valid", fragment)


@pytest.mark.parametrize("edit, fragment", [
    (lambda g: g.initializers.update(x=np.ones((2, 4), np.float32)), "role 'input'"),
    (lambda g: g.initializers.update(q=np.ones(3, np.float32)), "%q names no graph input"),
    (lambda g: g.initializers.update(w=np.ones((4, 3), np.float64)), "dtype f64"),
    (lambda g: g.initializers.update(w=np.ones((3, 4), np.float32)), "shape (3, 4)"),
    (lambda g: g.initializers.update(w=np.ones(12, np.float32)), "shape (12,)"),
])
def test_initializers_valid(edit, fragment):
    g = valid_graph()
    edit(g)
    assert_violates(g, "initializers-valid", fragment)


def test_initializer_for_a_symbolic_param_checks_rank_and_static_dims():
    g = valid_graph()
    g.inputs[2].type = TensorType((sym("N"), 3), "f32")
    g.initializers["s"] = np.zeros((5, 3), np.float32)
    assert "initializers-valid" not in invariants(g)
    g.initializers["s"] = np.zeros((5, 2), np.float32)
    assert "initializers-valid" in invariants(g)


def test_nested_graphs_are_verified_recursively():
    g = valid_graph()
    inner = valid_graph()
    inner.name = "body"
    inner.nodes[1].op = "relux"
    g.nodes[1].attrs["body"] = inner        # attrs-valid also objects: relu takes no attrs
    errors = check(g)
    nested = [e for e in errors if e.invariant == "known-op"]
    assert nested and "in nested graph @body (attribute 'body' of node 1 (%1 = relu)" \
        in str(nested[0])
    assert "attrs-valid" in [e.invariant for e in errors]


def test_check_lists_every_problem():
    g = valid_graph()
    g.nodes[1].op = "relux"
    g.inputs[0].role = "weights"
    g.nodes[2].outputs[0].type = TensorType((3,), f64)
    assert set(invariants(g)) == {"input-roles", "known-op", "type-matches-rule"}


def test_every_invariant_is_tested_here():
    import inspect
    import sys
    source = inspect.getsource(sys.modules[__name__])
    for name in INVARIANTS:
        assert f'"{name}"' in source, name
