"""Tracing: specs, params, graphc.function / graphc.trace, output naming, scopes and locations,
the building blocks later layers use (emit, wrap, unwrap, building), and misuse errors."""
import sys

import numpy as np
import pytest

import graphc as gc
import ir
from ir.printer import print_graph
from ir.symbolic import sym


def this_line():
    return sys._getframe(1).f_lineno


# -- the tiny MLP from the README, golden structure ---------------------------------------------
def make_mlp():
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((784, 400)).astype(np.float32) * 0.05
    w2 = rng.standard_normal((400, 10)).astype(np.float32) * 0.05

    @gc.function(x=gc.spec(("N", 784), "f32"))
    def mlp(x):
        with gc.scope("net"):
            with gc.scope("dense1"):
                h = gc.relu(x @ gc.param("w1", w1) + gc.param("b1", np.zeros(400, np.float32)))
            with gc.scope("dense2"):
                return gc.linear(h, gc.param("w2", w2), gc.param("b2", np.zeros(10, np.float32)))
    return mlp, w1, w2


MLP_GOLDEN = """\
graph @mlp(%x: f32[N,784], %w1: f32[784,400] param, %b1: f32[400] param, %w2: f32[400,10] param, %b2: f32[10] param) {
  %0 = matmul(%x, %w1) {transpose_a=false, transpose_b=false} : f32[N,400]
  %1 = broadcast(%b1) {shape=[N, 400], dims=[1]} : f32[N,400]
  %2 = add(%0, %1) : f32[N,400]
  %3 = relu(%2) : f32[N,400]
  %4 = matmul(%3, %w2) {transpose_a=false, transpose_b=false} : f32[N,10]
  %5 = broadcast(%b2) {shape=[N, 10], dims=[1]} : f32[N,10]
  %6 = add(%4, %5) : f32[N,10]
  return %6 as "out"
}
"""


def test_mlp_ir_golden():
    mlp, _, _ = make_mlp()
    text = print_graph(mlp.graph, show_locs=False)
    assert text.split("init ")[0] == MLP_GOLDEN
    assert [n.op for n in mlp.graph.nodes] == ["matmul", "broadcast", "add", "relu", "matmul",
                                               "broadcast", "add"]


def test_mlp_locations_and_layer_paths():
    mlp, _, _ = make_mlp()
    paths = [n.loc.path for n in mlp.graph.nodes]
    assert paths == ["net/dense1/matmul", "net/dense1/broadcast", "net/dense1/add",
                     "net/dense1/relu", "net/dense2/matmul", "net/dense2/broadcast",
                     "net/dense2/add"]
    assert all(n.loc.file.endswith("test_tracing.py") for n in mlp.graph.nodes)
    assert len({n.loc.line for n in mlp.graph.nodes}) == 2   # two user lines built the nodes
    assert 'loc("' in str(mlp.graph) and '"net/dense1/matmul"' in str(mlp.graph)


def test_mlp_runs_and_matches_numpy(rng):
    mlp, w1, w2 = make_mlp()
    for n in (1, 4):
        x = rng.standard_normal((n, 784)).astype(np.float32)
        want = np.maximum(x @ w1, 0) @ w2
        np.testing.assert_allclose(mlp(x), want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ir.run(mlp.graph, {"x": x})["out"], want, rtol=1e-4,
                                   atol=1e-4)


def test_front_end_graphs_verify_and_round_trip_through_text():
    verifier = pytest.importorskip("ir.verifier")
    parser = pytest.importorskip("ir.parser")
    equality = pytest.importorskip("ir.equality")
    from ir.printer import dump

    def f(x, y, labels):
        with gc.scope("net"):
            k = gc.param("k", np.ones((4, 3, 3, 3), np.float32))
            h = gc.conv2d(x, k, gc.param("kb", np.zeros(4, np.float32)), padding="same")
            h = gc.dropout(gc.max_pool2d(gc.relu(h), 2).flatten(), 0.2)
            z = gc.linear(h, gc.param("w", np.ones((64, 10), np.float32)))
            loss = -(gc.log_softmax(z) * gc.one_hot(labels, 10)).sum(1).mean()
            return {"loss": loss, "v": gc.var(gc.softmax(y[:, 1:]), 0),
                    "lse": gc.logsumexp(z, 1), "up": gc.conv_transpose2d(x, k[:3, :2], stride=2)}
    g = gc.trace(f, gc.spec(("N", 3, 8, 8)), gc.spec(("N", 5)), gc.spec(("N",), "i64"))
    verifier.verify(g)
    text, weights = dump(g)
    again = parser.parse(text, weights)
    assert equality.structural_equal(g, again, check_names=True, check_locs=True)


def test_function_traces_once_lazily():
    calls = []

    @gc.function(gc.spec((2,)))
    def f(x):
        calls.append(1)
        return x * 2.0
    assert calls == []
    g = f.graph
    assert f.graph is g and calls == [1]
    assert f.input_names == ["x"] and f.output_names == ["out"]
    assert f.__name__ == "f"


# -- inputs and outputs -------------------------------------------------------------------------
def test_specs_positional_keyword_and_named():
    g = gc.trace(lambda a, b: a + b, gc.spec(("N", 3)), b=gc.spec((3,), name="bias"))
    assert [v.name for v in g.inputs] == ["a", "bias"]
    assert g.inputs[0].type.shape == (sym("N"), 3) and g.name == "lambda"
    g2 = gc.trace(lambda a: a, gc.spec((2,), "i64", name="labels"), name="ident")
    assert g2.name == "ident" and g2.inputs[0].name == "labels"
    assert str(g2.inputs[0].type) == "i64[2]"


def test_symbols_are_shared_between_inputs():
    g = gc.trace(lambda a, b: a * b, gc.spec(("N", 3)), gc.spec(("N", 3)))
    assert [n.op for n in g.nodes] == ["mul"]


def test_spec_from_array_and_tensor_type():
    g = gc.trace(lambda a, b: a + b, np.zeros((2, 3), np.float64),
                 ir.TensorType((2, 3), ir.f64))
    assert str(g.outputs[0].type) == "f64[2,3]"


def test_output_naming_single_tuple_dict():
    g1 = gc.trace(lambda x: x + 1.0, gc.spec((2,)))
    g2 = gc.trace(lambda x: (x + 1.0, x * 2.0), gc.spec((2,)))
    g3 = gc.trace(lambda x: {"loss": x.sum(), "logits": x}, gc.spec((2,)))
    assert g1.output_names == ["out"]
    assert g2.output_names == ["out0", "out1"]
    assert g3.output_names == ["loss", "logits"]


def test_function_call_returns_the_same_structure():
    @gc.function(x=gc.spec(("N", 2)), y=gc.spec(("N", 2)))
    def f(x, y):
        return {"s": x + y, "d": x - y}

    @gc.function(gc.spec((2,)))
    def pair(x):
        return x, -x
    a = np.array([[1.0, 2.0]], np.float32)
    b = np.array([[3.0, 5.0]], np.float32)
    out = f(a, y=b)
    assert set(out) == {"s", "d"}
    np.testing.assert_array_equal(out["s"], a + b)
    p, m = pair(np.array([1.0, -2.0], np.float32))
    np.testing.assert_array_equal(m, [-1.0, 2.0])


def test_function_called_inside_a_trace_is_inlined():
    @gc.function(gc.spec((3,)))
    def double(x):
        return x * 2.0

    g = gc.trace(lambda x: double(x) + 1.0, gc.spec((3,)))
    assert [n.op for n in g.nodes] == ["constant", "broadcast", "mul", "constant", "broadcast",
                                       "add"]
    np.testing.assert_array_equal(ir.run(g, {"x": np.ones(3, np.float32)})["out"], [3, 3, 3])


# -- params ---------------------------------------------------------------------------------------
def test_params_and_state_are_inputs_with_initializers():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)

    def f(x):
        p = gc.param("w", w)
        s = gc.param("count", np.zeros((), np.int64), role="state")
        lst = gc.param("scale", [1.0, 2.0, 3.0])
        return x @ p * lst, s + 1
    g = gc.trace(f, gc.spec(("N", 2)))
    assert [(v.name, v.role) for v in g.inputs] == [("x", "input"), ("w", "param"),
                                                   ("count", "state"), ("scale", "param")]
    assert g.inputs[3].type.dtype is ir.f32          # a list of Python floats becomes f32
    np.testing.assert_array_equal(g.initializers["w"], w)
    w[0, 0] = 100.0                                  # the graph keeps its own copy
    assert g.initializers["w"][0, 0] == 0.0
    assert not g.initializers["w"].flags.writeable   # ... as a value (replace, never edit)
    out = ir.run(g, {"x": np.ones((1, 2), np.float32)})
    np.testing.assert_array_equal(out["out0"], [[3.0, 10.0, 21.0]])
    assert out["out1"] == 1


def test_duplicate_param_names_point_at_the_first_definition():
    first = None

    def f(x):
        nonlocal first
        first = this_line() + 1
        a = gc.param("w", np.ones(2, np.float32))
        b = gc.param("w", np.ones(2, np.float32))
        return x + a + b
    with pytest.raises(gc.TraceError) as info:
        gc.trace(f, gc.spec((2,)))
    msg = str(info.value)
    assert "already has a param named 'w'" in msg
    assert f"test_tracing.py:{first}" in msg
    assert info.value.loc.line == first + 1


def test_param_errors():
    with pytest.raises(gc.TraceError, match="role"):
        gc.trace(lambda x: gc.param("w", np.ones(2), role="buffer"), gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="input with that name"):
        gc.trace(lambda x: x + gc.param("x", np.ones(2, np.float32)), gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="no graph is being traced"):
        gc.param("w", np.ones(2))


# -- scopes -------------------------------------------------------------------------------------
def test_nested_scopes_and_current_scope():
    seen = []

    def f(x):
        with gc.scope("net") as outer:
            with gc.scope("block1") as inner:
                seen.extend([outer, inner, gc.current_scope()])
                y = gc.softmax(x)
            z = y * 2.0
        return z + 1.0
    g = gc.trace(f, gc.spec((2, 3)))
    assert seen == ["net", "net/block1", "net/block1"]
    assert gc.current_scope() == ""
    paths = [n.loc.path for n in g.nodes]
    assert paths[:2] == ["net/block1/reduce_max", "net/block1/broadcast"]
    assert "net/mul" in paths and paths[-1] == "add"


def test_scope_is_restored_after_an_error():
    with pytest.raises(gc.GraphcError):
        with gc.scope("boom"):
            gc.trace(lambda x: x @ x, gc.spec((2, 3)))
    assert gc.current_scope() == ""
    with pytest.raises(gc.GraphcError, match="non-empty"):
        with gc.scope(""):
            pass


def test_error_loc_carries_the_scope_path():
    def f(x):
        with gc.scope("enc"):
            return x.reshape(7, -1)
    with pytest.raises(gc.ShapeError) as info:
        gc.trace(f, gc.spec((3, 4)))
    assert info.value.loc.path == "enc/reshape"
    assert "(enc/reshape)" in str(info.value)


# -- misuse -------------------------------------------------------------------------------------
@pytest.mark.parametrize("result,pattern", [
    (None, "must return a Tensor"), (3.0, "must return a Tensor"), ((), "no outputs"),
    ({1: "x"}, "output names must be non-empty strings"),
])
def test_bad_return_values(result, pattern):
    with pytest.raises(gc.TraceError, match=pattern):
        gc.trace(lambda x: result, gc.spec((2,)))


def test_returning_a_non_tensor_inside_a_tuple():
    with pytest.raises(gc.TraceError, match=r"output 'out1' must be a Tensor, found float"):
        gc.trace(lambda x: (x, 1.0), gc.spec((2,)))


def test_tensor_from_another_trace():
    leaked = {}

    def first(x):
        leaked["x"] = x
        return x
    gc.trace(first, gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="from graph 'first'.*cannot cross traces"):
        gc.trace(lambda y: leaked["x"], gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="cannot cross traces"):
        gc.trace(lambda y: y + leaked["x"], gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="no graph is being traced"):
        leaked["x"] * 2.0


def test_spec_binding_errors():
    with pytest.raises(gc.TraceError, match="no spec for parameter"):
        gc.trace(lambda x, y: x, gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="no parameter 'z'"):
        gc.trace(lambda x: x, gc.spec((2,)), z=gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="1 positional parameter"):
        gc.trace(lambda x: x, gc.spec((2,)), gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="two inputs are named"):
        gc.trace(lambda x, y: x, gc.spec((2,), name="a"), gc.spec((2,), name="a"))
    with pytest.raises(gc.TraceError, match="input spec"):
        gc.trace(lambda x: x, (2, 3))
    with pytest.raises(gc.TraceError, match="must be a string"):
        gc.trace(lambda name: name, name=gc.spec((2,)))
    g = gc.trace(lambda x, scale=2.0: x * scale, gc.spec((2,)))   # defaults stay Python values
    assert [v.name for v in g.inputs] == ["x"]


# -- the API later layers build on ---------------------------------------------------------------
def test_emit_wrap_unwrap_and_current_graph():
    def f(x):
        g = gc.current_graph()
        v = gc.unwrap(x)
        assert v is g.inputs[0] and gc.wrap(v).value is v
        y = gc.emit("exp", [x])
        z = gc.emit("reduce_sum", [y], {"axes": [0]})
        assert isinstance(z, gc.Tensor) and z.graph is g
        return z
    g = gc.trace(f, gc.spec((3,)))
    assert [n.op for n in g.nodes] == ["exp", "reduce_sum"]
    assert g.nodes[0].loc.file.endswith("test_tracing.py") and g.nodes[1].loc.path == "reduce_sum"


def test_emit_checks_attrs_with_the_user_line():
    line = None

    def f(x):
        nonlocal line
        line = this_line() + 1
        return gc.emit("reduce_sum", [x], {"axis": 0})
    with pytest.raises(ir.AttrError) as info:
        gc.trace(f, gc.spec((3,)))
    assert info.value.loc.line == line


def test_building_into_an_existing_graph():
    g = gc.trace(lambda x: x * 2.0, gc.spec(("N", 2)))
    with gc.building(g):
        out = gc.wrap(g.outputs[0])
        extra = gc.relu(out - 1.0)
        with pytest.raises(gc.TraceError, match="already has a param"):
            gc.param("w", np.ones(2, np.float32))
            gc.param("w", np.ones(2, np.float32))
    g.add_output(extra.value, "relu")
    res = ir.run(g, {"x": np.array([[0.25, 2.0]], np.float32)})
    np.testing.assert_array_equal(res["relu"], [[0.0, 3.0]])
    assert not gc.tensor.is_tracing()
