"""graphc.onnx.import_model: symbolic dims, locations, params vs constants, import-time
folding of shape computations, specialisation of shape inputs, error messages, and the op
forms ONNX's node tests do not reach (checked against onnxruntime)."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import graphc  # noqa: E402
import graphc.onnx as gonnx  # noqa: E402
from graphc.onnx import backend  # noqa: E402
from graphc.onnx.errors import DataDependentError, OnnxError, UnsupportedOnnxError  # noqa
from ir import ShapeError, parse, run, structural_equal, verify  # noqa: E402
from ir.printer import dump  # noqa: E402
from ir.symbolic import SymDim, sym  # noqa: E402

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def make(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        return onnx.shape_inference.infer_shapes(model)     # fills in output shapes left None
    except Exception:       # e.g. an op of a domain the model does not import yet
        return model


def ints(name, values):
    return (name, np.array(values, np.int64))


def against_ort(model, feeds, rtol=1e-5, atol=1e-6):
    """graphc (native) and onnxruntime agree on `feeds`; returns graphc's outputs."""
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds)
    got = backend.prepare(model, opt_level=1).run(feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return got


# -- inputs, symbols, params -------------------------------------------------------------------
def test_dim_params_become_shared_symbols_and_unknown_dims_get_fresh_ones():
    m = make([helper.make_node("Add", ["a", "b"], ["c"])],
             [("a", F, ["batch size", 3]), ("b", F, ["batch size", 3])],
             [("c", F, ["batch size", 3])])
    g = gonnx.import_model(m)
    a, b = g.inputs
    assert a.type.shape == b.type.shape == (sym("batch_size"), 3)
    m2 = make([helper.make_node("Relu", ["a"], ["c"])], [("a", F, [None, 3])], [("c", F, None)])
    shape = gonnx.import_model(m2).inputs[0].type.shape
    assert isinstance(shape[0], SymDim) and shape[1] == 3


def test_float_initializers_become_params_or_constants_when_frozen():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    m = make([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", F, ["N", 2])],
             [("y", F, ["N", 3])], [("w", w)])
    g = gonnx.import_model(m)
    assert [(v.name, v.role) for v in g.inputs] == [("x", "input"), ("w", "param")]
    np.testing.assert_array_equal(g.initializers["w"], w)
    frozen = gonnx.import_model(m, frozen=True)
    assert [v.name for v in frozen.inputs] == ["x"]
    assert any(n.op == "constant" for n in frozen.nodes)
    x = np.ones((4, 2), np.float32)
    for graph in (g, frozen):
        np.testing.assert_array_equal(graphc.compile(graph)(x), x @ w)


def test_locations_name_the_model_file_and_the_onnx_node(tmp_path):
    m = make([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="/fc/Gemm", transB=1),
              helper.make_node("Softmax", ["y"], ["z"], axis=1)],
             [("x", F, ["N", 4])], [("z", F, ["N", 2])],
             [("w", np.ones((2, 4), np.float32)), ("b", np.zeros(2, np.float32))])
    path = tmp_path / "model.onnx"
    onnx.save(m, str(path))
    g = gonnx.import_model(str(path))
    for node in g.nodes:
        assert node.loc.file == str(path)
    paths = [node.loc.path for node in g.nodes]
    assert "onnx/fc/Gemm/matmul" in paths
    assert any(p.startswith("onnx/Softmax_1/") for p in paths)
    verify(g)
    text, weights = dump(g)
    assert structural_equal(parse(text, weights), g)


def test_torch_style_shape_arithmetic_folds_with_symbolic_dims():
    """Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])) becomes one reshape to
    (N, 48): no Shape/Gather/Concat node survives."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    m = make(nodes, [("x", F, ["N", 3, 4, 4])], [("y", F, ["N", 48])],
             [ints("zero", 0), ints("axes0", [0]), ints("minus1", [-1])])
    g = gonnx.import_model(m)
    assert [n.op for n in g.nodes] == ["reshape"]
    assert g.outputs[0].type.shape == (sym("N"), 48)
    x = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(graphc.compile(g)(x), x.reshape(5, 48))


def test_float_shape_arithmetic_folds_through_the_reference_ops():
    """Shape -> Cast(float) -> Div -> Cast(int) -> Reshape: folded by evaluating the ops."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=F),
             helper.make_node("Div", ["sf", "two"], ["half"]),
             helper.make_node("Cast", ["half"], ["hi"], to=I64),
             helper.make_node("Concat", ["hi", "two_i"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    m = make(nodes, [("x", F, [8])], [("y", F, [4, 2])],
             [("two", np.array([2.0], np.float32)), ints("two_i", [2])])
    g = gonnx.import_model(m)
    assert [n.op for n in g.nodes] == ["reshape"]


def test_symbolic_constant_of_shape_expand_and_range():
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["ones"],
                              value=numpy_helper.from_array(np.array([1.5], np.float32))),
             helper.make_node("Expand", ["b", "s"], ["bb"]),
             helper.make_node("Add", ["ones", "bb"], ["y"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Range", ["zero", "n", "one"], ["r"])]
    m = make(nodes, [("x", F, ["N", 3]), ("b", F, [1, 3])],
             [("y", F, ["N", 3]), ("r", I64, ["N"])], [ints("zero", 0), ints("one", 1)])
    feeds = {"x": np.zeros((4, 3), np.float32),
             "b": np.arange(3, dtype=np.float32).reshape(1, 3)}
    y, r = against_ort(m, feeds)
    np.testing.assert_array_equal(r, np.arange(4))


# -- shape operands fed as inputs --------------------------------------------------------------
def _reshape_model():
    return make([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                [("x", F, [2, 6]), ("shape", I64, [2])], [("y", F, [None, None])])


def test_a_data_dependent_shape_names_the_input_and_the_remedy():
    with pytest.raises(DataDependentError) as err:
        gonnx.import_model(_reshape_model())
    e = err.value
    assert e.inputs == ("shape",)
    for part in ("Reshape", "opset 17", "input 1 (the target shape)", "graph input(s) shape",
                 "constants="):
        assert part in str(e)
    g = gonnx.import_model(_reshape_model(), constants={"shape": np.array([3, 4])})
    assert [v.name for v in g.inputs] == ["x"] and g.outputs[0].type.shape == (3, 4)


def test_backend_specialises_on_shape_inputs_once_per_value():
    rep = backend.prepare(_reshape_model())
    assert rep.specialise_on == ("shape",)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    for shape in ([3, 4], [4, 3], [3, 4]):
        (y,) = rep.run([x, np.array(shape, np.int64)])
        np.testing.assert_array_equal(y, x.reshape(shape))
    assert len(rep._runners) == 2


def test_backend_interface():
    m = make([helper.make_node("Relu", ["x"], ["y"])], [("x", F, ["N", 2])],
             [("y", F, ["N", 2])])
    x = np.array([[-1, 2], [3, -4]], np.float32)
    for engine in ("native", "interpreter"):
        out = backend.run_model(m, [x], engine=engine)
        np.testing.assert_array_equal(out["y"], np.maximum(x, 0))
        np.testing.assert_array_equal(out[0], np.maximum(x, 0))
    (y,) = backend.run_node(helper.make_node("Neg", ["a"], ["b"]), [x])
    np.testing.assert_array_equal(y, -x)
    assert backend.supports_device("CPU") and not backend.supports_device("CUDA")
    with pytest.raises(OnnxError, match="takes 1 input"):
        backend.prepare(m).run([x, x])


# -- errors ------------------------------------------------------------------------------------
def test_unsupported_op_names_op_opset_and_node():
    m = make([helper.make_node("Hardmax", ["x"], ["y"], name="head/hardmax")],
             [("x", F, [2, 3])], [("y", F, None)], opset=15)
    with pytest.raises(UnsupportedOnnxError) as err:
        gonnx.import_model(m)
    msg = str(err.value)
    assert "Hardmax" in msg and "opset 15" in msg and "'head/hardmax'" in msg
    assert "supported:" in msg and "Conv" in msg


def test_unsupported_attribute_value_and_unknown_attribute():
    m = make([helper.make_node("Pad", ["x", "pads"], ["y"], mode="mirror")],
             [("x", F, [2, 3])], [("y", F, None)], [ints("pads", [0, 1, 0, 1])])
    with pytest.raises(UnsupportedOnnxError, match="Pad .* mode='mirror'"):
        gonnx.import_model(m)
    m = make([helper.make_node("Relu", ["x"], ["y"], flavour=3)],
             [("x", F, [2])], [("y", F, None)])
    with pytest.raises(UnsupportedOnnxError, match="Relu .* attribute\\(s\\) flavour"):
        gonnx.import_model(m)


def test_op_versions_outside_the_implemented_ones_and_foreign_domains():
    m = make([helper.make_node("Split", ["x"], ["a", "b"])], [("x", F, [4])],
             [("a", F, None), ("b", F, None)], opset=1)
    with pytest.raises(UnsupportedOnnxError, match="versions 2, 11, 13, 18 of Split, and opset "
                                                   "1 uses version 1"):
        gonnx.import_model(m)
    m = make([helper.make_node("Foo", ["x"], ["y"], domain="com.example")],
             [("x", F, [4])], [("y", F, None)])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOnnxError, match="domain 'com.example'"):
        gonnx.import_model(m)


def test_unsupported_dtypes_and_4d_convolution():
    m = make([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT16)],
             [("x", F, [2])], [("y", TensorProto.FLOAT16, None)])
    with pytest.raises(UnsupportedOnnxError, match="FLOAT16"):
        gonnx.import_model(m)
    m = make([helper.make_node("Conv", ["x", "w"], ["y"], name="c4")],
             [("x", F, [1, 1, 3, 3, 3, 3]), ("w", F, [1, 1, 2, 2, 2, 2])], [("y", F, None)])
    with pytest.raises(UnsupportedOnnxError, match="'c4': 4-D convolution"):
        gonnx.import_model(m)


def test_shape_errors_carry_the_node_and_model_location():
    m = make([helper.make_node("Add", ["a", "b"], ["c"], name="bad_add")],
             [("a", F, [2, 3]), ("b", F, [4])], [("c", F, None)])
    with pytest.raises(ShapeError) as err:
        gonnx.import_model(m)
    assert "ONNX Add (opset 17" in str(err.value) and "'bad_add'" in str(err.value)
    assert err.value.loc.path == "onnx/bad_add"


def test_bad_arguments():
    with pytest.raises(OnnxError, match="does not exist"):
        gonnx.import_model("/no/such/model.onnx")
    with pytest.raises(OnnxError, match="expects a path"):
        gonnx.import_model(42)
    with pytest.raises(OnnxError, match="not inputs of the model"):
        gonnx.import_model(_reshape_model(), constants={"nope": np.zeros(1)})
    with pytest.raises(OnnxError, match="dtype int32"):
        gonnx.import_model(_reshape_model(), constants={"shape": np.array([3, 4], np.int32)})


# -- op forms beyond ONNX's node tests, against onnxruntime ------------------------------------
@pytest.mark.parametrize("equation,shapes", [
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("bij->bji", [(2, 3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ij,ij->", [(3, 2), (3, 2)]),
    ("abc,cd,bd->ad", [(2, 3, 4), (4, 5), (3, 5)]),
])
def test_einsum_forms(equation, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in zip(names, shapes)}
    out_shape = list(np.einsum(equation, *feeds.values()).shape)
    m = make([helper.make_node("Einsum", names, ["y"], equation=equation)],
             [(n, F, list(s)) for n, s in zip(names, shapes)], [("y", F, out_shape)], opset=12)
    (y,) = backend.run_model(m, feeds, opt_level=1)
    np.testing.assert_allclose(y, np.einsum(equation, *feeds.values()), rtol=1e-5, atol=1e-5)


def _rnn_model(op, gates, hidden, n_in, seq, batch, direction="forward", extra=None, **attrs):
    dirs = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(1)
    inits = [("W", rng.uniform(-.5, .5, (dirs, gates * hidden, n_in)).astype(np.float32)),
             ("R", rng.uniform(-.5, .5, (dirs, gates * hidden, hidden)).astype(np.float32)),
             ("B", rng.uniform(-.5, .5, (dirs, 2 * gates * hidden)).astype(np.float32))]
    inputs = [("X", F, [seq, "N", n_in])] + list(extra or [])
    names = ["X", "W", "R", "B"] + [i[0] for i in extra or []]
    n_out = 3 if op == "LSTM" else 2
    outs = ["Y", "Y_h", "Y_c"][:n_out]
    node = helper.make_node(op, names, outs, hidden_size=hidden, direction=direction, **attrs)
    return make([node], inputs, [(o, F, None) for o in outs], inits, opset=14)


@pytest.mark.parametrize("op,gates,attrs", [
    ("GRU", 3, {"linear_before_reset": 1}),
    ("GRU", 3, {"direction": "bidirectional"}),
    ("RNN", 1, {"activations": ["Relu"]}),
    ("LSTM", 4, {"direction": "bidirectional", "clip": 0.7}),
    ("LSTM", 4, {"activations": ["HardSigmoid", "Tanh", "Softsign"],
                 "activation_alpha": [0.3], "activation_beta": [0.4]}),
])
def test_recurrent_variants(op, gates, attrs):
    m = _rnn_model(op, gates, 5, 3, seq=4, batch=2, **attrs)
    x = np.random.default_rng(2).standard_normal((4, 2, 3)).astype(np.float32)
    against_ort(m, {"X": x})


def test_lstm_sequence_lens_masks_finished_sequences():
    m = _rnn_model("LSTM", 4, 3, 2, seq=5, batch=3, extra=[("L", TensorProto.INT32, ["N"])])
    x = np.random.default_rng(3).standard_normal((5, 3, 2)).astype(np.float32)
    y, y_h, y_c = against_ort(m, {"X": x, "L": np.array([5, 2, 3], np.int32)})
    assert not y[2:, :, 1].any()


@pytest.mark.parametrize("op,attrs,shape", [
    ("MaxPool", {"kernel_shape": [2, 2, 2], "strides": [1, 2, 1], "pads": [0, 1, 1, 1, 0, 0]},
     (1, 2, 4, 5, 3)),
    ("AveragePool", {"kernel_shape": [2, 3, 2], "pads": [1, 0, 1, 0, 1, 1],
                     "count_include_pad": 1}, (2, 1, 3, 4, 4)),
    ("AveragePool", {"kernel_shape": [3, 3], "dilations": [2, 1], "pads": [1, 1, 1, 1],
                     "ceil_mode": 1, "strides": [2, 2]}, (1, 2, 7, 6)),
    ("MaxPool", {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, (2, 3, 9)),
])
def test_pooling_forms(op, attrs, shape):
    m = make([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", F, list(shape))],
             [("y", F, None)], opset=19)
    against_ort(m, {"x": np.random.default_rng(4).standard_normal(shape).astype(np.float32)})


@pytest.mark.parametrize("op,attrs,x_shape,w_shape", [
    ("Conv", {"strides": [2, 1, 1], "pads": [1, 0, 1, 1, 1, 0], "dilations": [1, 2, 1]},
     (2, 4, 7, 6, 5), (3, 4, 3, 2, 2)),
    ("Conv", {"group": 2, "auto_pad": "SAME_UPPER"}, (1, 4, 5, 4, 4), (6, 2, 2, 3, 3)),
    ("ConvTranspose", {"strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1],
                       "output_padding": [1, 0, 1]}, (2, 3, 3, 4, 3), (3, 2, 3, 2, 2)),
    ("ConvTranspose", {"dilations": [2, 1, 1], "group": 3}, (1, 3, 4, 3, 3), (3, 1, 2, 2, 3)),
])
def test_3d_convolutions(op, attrs, x_shape, w_shape):
    rng = np.random.default_rng(5)
    out_channels = w_shape[0] if op == "Conv" else w_shape[1] * attrs.get("group", 1)
    m = make([helper.make_node(op, ["x", "w", "b"], ["y"], **attrs)],
             [("x", F, ["N", *x_shape[1:]])], [("y", F, None)],
             [("w", rng.standard_normal(w_shape).astype(np.float32)),
              ("b", rng.standard_normal(out_channels).astype(np.float32))])
    against_ort(m, {"x": rng.standard_normal(x_shape).astype(np.float32)}, atol=1e-5)


def test_slice_with_symbolic_dims_and_int_max_ends():
    nodes = [helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])]
    m = make(nodes, [("x", F, ["N", 6])], [("y", F, None)],
             [ints("starts", [1, -4]), ints("ends", [2 ** 63 - 1, -1]), ints("axes", [0, 1])])
    g = gonnx.import_model(m)
    assert g.outputs[0].type.shape == (sym("N") - 1, 3)
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    np.testing.assert_array_equal(graphc.compile(g)(x), x[1:, -4:-1])


def test_supported_ops_lists_the_issue_ops():
    import onnx_backend_cases
    ops = gonnx.supported_ops()
    assert onnx_backend_cases.ISSUE_OPS <= set(ops)
    assert ops["Conv"] == (1, 11, 22)


def test_every_issue_op_is_imported_at_every_opset_from_13():
    """The op versions in force at opsets 13-21 (and newer ones onnx knows) all have an
    importer: the float32 forms of the issue's ops are covered whichever opset a model uses."""
    import onnx_backend_cases
    from onnx import defs
    ops = gonnx.supported_ops()
    missing = []
    for op in sorted(onnx_backend_cases.ISSUE_OPS):
        for opset in range(13, defs.onnx_opset_version() + 1):
            try:
                version = defs.get_schema(op, opset).since_version
            except Exception:      # Gelu (20) and LayerNormalization (17) are newer than 13
                continue
            if version not in ops[op]:
                missing.append((op, opset, version))
    assert not missing


def test_import_of_graphc_does_not_import_onnx():
    import subprocess
    import sys
    code = "import sys, graphc; graphc.onnx; print('onnx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
