"""graphc -> ONNX export: every primitive, the example models, fused graphs, random graphs.

Each exported model must pass onnx.checker.check_model(full_check=True) and give, in
onnxruntime, the outputs graphc's reference interpreter gives, at two values of the symbolic
batch N (one export serves every batch size). Exported models also import back.
"""
import glob
import os

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import onnx  # noqa: E402
from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import graphc.onnx as gonnx  # noqa: E402
from graphc.onnx.export_ops import RULES, _NO_EQUIVALENT  # noqa: E402
from graphc.onnx.errors import UnsupportedOnnxError  # noqa: E402
from ir import Graph, TensorType, all_ops, emit, run  # noqa: E402
from ir import dtypes as dt  # noqa: E402
from ir.serialize import load_gir  # noqa: E402
from ir.symbolic import evaluate, sym  # noqa: E402

N = sym("N")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def inputs_for(graph, n, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs_with_role("input"):
        shape = tuple(evaluate(d, {"N": n}) for d in v.type.shape)
        if v.type.dtype is dt.bool_:
            out[v.name] = rng.random(shape) < 0.5
        elif v.type.dtype.is_int:
            out[v.name] = rng.integers(0, 3, shape).astype(v.type.dtype.np_dtype)
        else:
            out[v.name] = (rng.standard_normal(shape) * 2).astype(v.type.dtype.np_dtype)
    return out


def assert_close(got, want):
    """rtol 1e-5, and an atol scaled to the output's magnitude (sums of many products differ
    in the last bits between onnxruntime's and numpy's summation orders)."""
    finite = np.abs(want[np.isfinite(want)]) if want.dtype.kind == "f" else np.abs(want)
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True)


def check_export(graph, batches=(2, 3), roundtrip=True, opset=17):
    model = gonnx.export_model(graph, opset=opset)     # runs check_model(full_check=True)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    back = gonnx.import_model(model) if roundtrip else None
    for n in batches:
        feeds = inputs_for(graph, n, seed=n)
        want = run(graph, feeds)
        got = session.run(graph.output_names, feeds)
        for name, arr in zip(graph.output_names, got):
            ref = want[name]
            assert arr.dtype == ref.dtype and arr.shape == ref.shape, name
            assert_close(arr, ref)
        if back is not None:
            again = run(back, feeds)
            for name in graph.output_names:
                assert_close(again[name], want[name])
    return model


def graph_with(*specs, name="g"):
    g = Graph(name)
    vals = [g.add_input(n, TensorType(shape, dtype)) for n, shape, dtype in specs]
    return g, vals


F32 = dt.f32


# -- one small graph per primitive family ------------------------------------------------------
def _unary():
    g, (x,) = graph_with(("x", (N, 5), F32))
    for op in ("neg", "abs", "sign", "relu", "exp", "tanh", "sigmoid", "erf", "reciprocal"):
        g.add_output(emit(g, op, [x]), op)
    pos = emit(g, "add", [emit(g, "abs", [x]), emit(g, "broadcast", [
        emit(g, "constant", [], {"value": np.float32(0.5)})], {"shape": (N, 5), "dims": ()})])
    for op in ("log", "log1p", "sqrt", "rsqrt"):
        g.add_output(emit(g, op, [pos]), op)
    return g


def _binary():
    g, (a, b) = graph_with(("a", (N, 4), F32), ("b", (N, 4), F32))
    for op in ("add", "sub", "mul", "div", "maximum", "minimum", "less", "less_equal",
               "greater", "greater_equal", "equal", "not_equal"):
        g.add_output(emit(g, op, [a, b]), op)
    g.add_output(emit(g, "pow", [emit(g, "abs", [a]), b]), "pow")
    lt, gt = emit(g, "less", [a, b]), emit(g, "greater", [a, b])
    g.add_output(emit(g, "logical_and", [lt, gt]), "and")
    g.add_output(emit(g, "logical_or", [lt, gt]), "or")
    g.add_output(emit(g, "logical_not", [lt]), "not")
    g.add_output(emit(g, "select", [lt, a, b]), "select")
    g.add_output(emit(g, "cast", [a], {"dtype": dt.i32}), "cast_i32")
    g.add_output(emit(g, "cast", [lt], {"dtype": dt.f32}), "cast_bool")
    return g


def _ints():
    g, (a, b) = graph_with(("a", (N, 4), dt.i64), ("b", (N, 4), dt.i64))
    g.add_output(emit(g, "add", [a, b]), "add")
    g.add_output(emit(g, "mul", [a, b]), "mul")
    g.add_output(emit(g, "reduce_max", [a], {"axes": (1,)}), "max")
    return g


def _movement():
    g, (x, idx) = graph_with(("x", (N, 3, 4), F32), ("idx", (2,), dt.i64))
    g.add_output(emit(g, "reshape", [x], {"shape": (N, 12)}), "reshape")
    g.add_output(emit(g, "reshape", [x], {"shape": (3 * N, 4)}), "reshape_sym")
    g.add_output(emit(g, "transpose", [x], {"perm": (2, 0, 1)}), "transpose")
    g.add_output(emit(g, "slice", [x], {"starts": (0, 1, 0), "stops": (N, 3, 4),
                                        "steps": (1, 1, 2)}), "slice")
    g.add_output(emit(g, "slice", [x], {"starts": (1, 0, 0), "stops": (N, 3, 4),
                                        "steps": (1, 1, 1)}), "slice_sym")
    g.add_output(emit(g, "pad", [x], {"low": (0, 1, 2), "high": (1, 0, 1), "value": -1.5}),
                 "pad")
    g.add_output(emit(g, "concat", [x, x], {"axis": 0}), "concat0")
    g.add_output(emit(g, "concat", [x, x], {"axis": 2}), "concat2")
    g.add_output(emit(g, "gather", [x, idx], {"axis": 1}), "gather")
    v = emit(g, "reduce_sum", [x], {"axes": (0, 1)})
    g.add_output(emit(g, "broadcast", [v], {"shape": (2, N, 4), "dims": (2,)}), "broadcast")
    g.add_output(emit(g, "iota", [], {"shape": (N, 4), "axis": 0, "dtype": dt.i64}), "iota")
    g.add_output(emit(g, "iota", [], {"shape": (3, 4), "axis": 1, "dtype": dt.f32}), "iota_c")
    g.add_output(emit(g, "dim_value", [], {"dim": 2 * N + 1, "dtype": dt.f32}), "dim")
    g.add_output(emit(g, "constant", [], {"value": np.arange(6, dtype=np.int32)}), "const")
    return g


def _reductions():
    g, (x,) = graph_with(("x", (N, 3, 4), F32))
    for op in ("reduce_sum", "reduce_max", "reduce_min"):
        g.add_output(emit(g, op, [x], {"axes": (0, 2)}), op)
        g.add_output(emit(g, op, [x], {"axes": (1,), "keepdims": True}), op + "_keep")
    g.add_output(emit(g, "argmax", [x], {"axis": 2}), "argmax")
    g.add_output(emit(g, "argmax", [x], {"axis": 1, "keepdims": True}), "argmax_keep")
    return g


def _matmul():
    g, (a, b, c) = graph_with(("a", (N, 5), F32), ("b", (5, 3), F32), ("c", (2, N, 5), F32))
    g.add_output(emit(g, "matmul", [a, b]), "mm")
    g.add_output(emit(g, "matmul", [b, a], {"transpose_a": True, "transpose_b": True}), "mm_t")
    cc = emit(g, "matmul", [c, c], {"transpose_b": True})
    g.add_output(cc, "bmm")
    g.add_output(emit(g, "matmul", [c, cc], {"transpose_a": True}), "bmm_ta")
    return g


def _conv_pool():
    g, (x, w, wg) = graph_with(("x", (N, 4, 7, 6), F32), ("w", (6, 4, 3, 2), F32),
                               ("wg", (4, 2, 3, 3), F32))
    attrs = {"stride": (2, 1), "padding": (1, 0, 2, 1), "dilation": (1, 2)}
    y = emit(g, "conv2d", [x, w], attrs)
    g.add_output(y, "conv")
    g.add_output(emit(g, "conv2d", [x, wg], {"groups": 2, "padding": (1, 1, 1, 1)}), "gconv")
    g.add_output(emit(g, "conv2d_grad_input", [y, w], dict(attrs, input_hw=(7, 6))), "dx")
    g.add_output(emit(g, "conv2d_grad_input", [y, w], dict(attrs, input_hw=(6, 6))), "dx_full")
    for op in ("max_pool2d", "avg_pool2d"):
        g.add_output(emit(g, op, [x], {"kernel": (3, 2), "stride": (2, 2),
                                       "padding": (1, 0, 1, 1), "ceil_mode": True}), op)
    g.add_output(emit(g, "avg_pool2d", [x], {"kernel": (2, 2), "stride": (1, 2),
                                              "padding": (1, 1, 1, 1),
                                              "count_include_pad": False}), "avg_nopad")
    return g


def _conv_grad_filter():
    g, (x, dy) = graph_with(("x", (N, 4, 7, 6), F32), ("dy", (N, 6, 4, 5), F32))
    attrs = {"stride": (2, 1), "padding": (1, 0, 2, 1), "dilation": (1, 2)}
    g.add_output(emit(g, "conv2d_grad_filter", [x, dy], dict(attrs, kernel_hw=(3, 2))), "dw")
    return g


def _params():
    g, (x,) = graph_with(("x", (N, 3), F32))
    w = g.add_input("w", TensorType((3, 2), F32), "param",
                    np.arange(6, dtype=np.float32).reshape(3, 2))
    s = g.add_input("s", TensorType((2,), F32), "state", np.array([1.5, -2], np.float32))
    y = emit(g, "matmul", [x, w])
    y = emit(g, "add", [y, emit(g, "broadcast", [s], {"shape": (N, 2), "dims": (1,)})])
    g.add_output(y, "y")
    g.add_output(y, "y_again")
    g.add_output(x, "x_out")
    return g


CASES = {"unary": _unary, "binary": _binary, "ints": _ints, "movement": _movement,
         "reductions": _reductions, "matmul": _matmul, "conv_pool": _conv_pool,
         "conv_grad_filter": _conv_grad_filter, "params": _params}
# conv2d_grad_filter exports as a Conv whose channels are the batch: symbolic there, which
# graphc's conv2d (static channels) cannot import back
NO_ROUNDTRIP = {"conv_grad_filter"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_primitive_family_exports_and_matches_onnxruntime(name):
    check_export(CASES[name](), roundtrip=name not in NO_ROUNDTRIP)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_other_opsets(opset):
    """Reduce ops take axes as an input from opset 18 (ReduceSum from 13)."""
    model = check_export(_reductions(), opset=opset)
    assert model.opset_import[0].version == opset


def test_every_primitive_has_an_export_rule_or_a_stated_reason():
    exported = set(RULES) | {"fused"}
    missing = sorted(set(all_ops()) - exported - set(_NO_EQUIVALENT))
    assert not missing, f"ops with no ONNX export rule: {missing}"
    covered = set()
    for make in CASES.values():
        covered |= {node.op for node in make().nodes}
    untested = sorted(set(RULES) - covered)
    assert not untested, f"export rules without a test case: {untested}"


def test_symbolic_dims_become_dim_params_and_params_initializers():
    model = gonnx.export_model(_params())
    x = model.graph.input[0]
    assert [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim] == ["N", 3]
    assert {t.name for t in model.graph.initializer} >= {"w", "s"}
    assert [i.name for i in model.graph.input] == ["x"]


def test_node_names_and_doc_strings_carry_the_graphc_location():
    g = load_gir(os.path.join(ROOT, "examples", "mlp.gir"))
    model = gonnx.export_model(g)
    gemm = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert gemm[0].name.startswith("mlp/dense1/matmul")
    assert "make_gir_examples.py" in gemm[0].doc_string


@pytest.mark.parametrize("op", ["random_uniform", "max_pool2d_grad"])
def test_ops_without_an_onnx_equivalent_raise_a_clear_error(op):
    g, (x,) = graph_with(("x", (2, 1, 4, 4), F32))
    if op == "random_uniform":
        y = emit(g, op, [], {"shape": (2, 3), "seed": 1})
    else:
        y = emit(g, op, [x, emit(g, "max_pool2d", [x], {"kernel": (2, 2), "stride": (2, 2)})],
                 {"kernel": (2, 2), "stride": (2, 2)})
    g.add_output(y, "y")
    with pytest.raises(UnsupportedOnnxError, match=f"cannot export node %.* \\({op}\\)"):
        gonnx.export_model(g)


# -- the example models ------------------------------------------------------------------------
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.gir")))


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_gir_model_round_trips_through_onnxruntime(path):
    check_export(load_gir(path), batches=(1, 4))


def test_mnist_example_mlp_round_trips_through_onnxruntime():
    path = os.path.join(ROOT, "examples", "mnist.py")
    if not os.path.exists(path):
        pytest.skip("examples/mnist.py is not there")
    import importlib.util
    spec = importlib.util.spec_from_file_location("graphc_example_mnist", path)
    mnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mnist)
    from graphc.training import graphs
    model = mnist.build_model(1e-3, 0)
    model.build((784,))
    graph = graphs.trace_predict(model.net, model._x_type, training=False)
    assert graph.initializers, "the predict graph carries the parameter values"
    check_export(graph, batches=(1, 5))


# -- fused and random graphs -------------------------------------------------------------------
def test_fused_nodes_are_inlined():
    from passes import run_pipeline, registered_passes
    if "fuse" not in registered_passes():
        pytest.skip("the fusion pass is not registered yet")
    g = load_gir(os.path.join(ROOT, "examples", "cnn.gir"))
    fused = run_pipeline(g, "fuse")
    assert any(n.op == "fused" for n in fused.nodes)
    check_export(fused, batches=(1, 3), roundtrip=False)


EXPORT_OPS = sorted(set(RULES) - {"pow", "div", "cast", "log", "log1p", "sqrt", "rsqrt",
                                  "argmax", "reciprocal"})


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_graphs_export_and_match(data):
    from strategies import graph_and_inputs
    g, feeds = data.draw(graph_and_inputs(max_nodes=6, ops=EXPORT_OPS))
    assume(all(n.op in RULES for n in g.nodes))
    # a documented limit: a grouped filter gradient has no single ONNX op
    assume(not any(n.op == "conv2d_grad_filter" and n.attrs["groups"] > 1 for n in g.nodes))
    model = gonnx.export_model(g)
    try:
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
    except Exception as e:
        # onnxruntime lacks kernels for some valid dtypes (Erf and AveragePool in float64,
        # Relu on ints, ...)
        other_dtypes = any(v.dtype is not dt.f32 for v in g.values())
        assume(not (other_dtypes and "NOT_IMPLEMENTED" in str(e)))
        raise
    data_feeds = {v.name: feeds[v.name] for v in g.inputs if v.name not in g.initializers}
    want = run(g, feeds)
    got = session.run(g.output_names, data_feeds)
    for name, arr in zip(g.output_names, got):
        assert_close(arr, want[name])


def test_a_traced_function_exports_and_bad_arguments_are_refused():
    import graphc

    @graphc.function(x=graphc.spec(("N", 3)))
    def f(x):
        return graphc.softmax(x * 2.0, axis=1)

    check_export(f.graph)
    assert gonnx.export_model(f).graph.output[0].name == "out"
    with pytest.raises(gonnx.OnnxError, match="expects an ir.Graph"):
        gonnx.export_model("model.onnx")
