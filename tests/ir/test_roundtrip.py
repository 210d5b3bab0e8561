"""Text round trips: parse(dump(g)) == g structurally, print(parse(print(g))) == print(g), and
.gir files with weight sidecars."""
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir import GraphcError, Graph, Loc, ParseError, TensorType, all_ops, emit, run, sym
from ir.attrs import AttrSpec
from ir.equality import structural_diff, structural_hash
from ir.location import FusedLoc
from ir.opdef import OpDef, _REGISTRY, register
from ir.parser import parse
from ir.printer import dump, print_graph
from ir.serialize import load_gir, save_gir, sidecar_path
from ir.verifier import check
from strategies import graph_and_inputs, graphs


def assert_round_trips(g: Graph) -> Graph:
    text, weights = dump(g)
    back = parse(text, weights)
    diff = structural_diff(g, back, check_names=True, check_locs=True)
    assert diff is None, f"{diff}\n{text}"
    assert dump(back)[0] == text
    assert structural_hash(back) == structural_hash(g)
    return back


@given(graphs(max_nodes=10))
def test_generated_graphs_round_trip_exactly(g):
    assert check(g) == []
    back = assert_round_trips(g)
    assert check(back) == []


@given(graph_and_inputs(max_nodes=8, special_values=True))
@settings(max_examples=30)
def test_parsed_graph_computes_bit_identical_results(gi):
    g, inputs = gi
    text, weights = dump(g)
    want = run(g, inputs)
    got = run(parse(text, weights), inputs)
    assert list(want) == list(got)
    for name in want:
        assert want[name].dtype == got[name].dtype
        assert want[name].tobytes() == got[name].tobytes(), name


@pytest.mark.parametrize("op", sorted(all_ops()))
def test_every_op_is_generated_and_round_trips(op):
    seen = []

    @given(graphs(max_nodes=2, ops=[op]))
    @settings(max_examples=6)
    def check_op(g):
        assert any(n.op == op for n in g.nodes)
        assert check(g) == []
        assert_round_trips(g)
        seen.append(g)

    check_op()
    assert seen


@given(st.lists(st.floats(width=32, allow_nan=True), min_size=1, max_size=40),
       st.sampled_from(["float32", "float64"]))
def test_float_literals_read_back_to_the_same_bits(values, dtype):
    g = Graph("floats")
    arr = np.array(values, dtype)
    g.add_output(emit(g, "constant", [], {"value": arr}), "c")
    back = parse(*dump(g, inline_limit=64))
    assert back.nodes[0].attrs["value"].tobytes() == arr.tobytes()


def test_float_bit_patterns_including_subnormals_and_nan_payload_free_values():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    arr = bits.view(np.float32)
    arr = arr[~np.isnan(arr)]            # NaN prints as the canonical 'nan'
    arr = np.concatenate([arr, np.array([1e-45, -1e-45, 3.4028235e38, -0.0], np.float32)])
    g = Graph("bits")
    g.add_output(emit(g, "constant", [], {"value": arr}), "c")
    back = parse(*dump(g, inline_limit=10**6))
    assert back.nodes[0].attrs["value"].tobytes() == arr.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_sign_and_payload_survive_in_literals_and_float_attrs(dtype):
    width = np.dtype(dtype).itemsize * 8
    udt = np.uint32 if width == 32 else np.uint64
    quiet = 0x7FC00000 if width == 32 else 0x7FF8000000000000
    sign = 1 << (width - 1)
    bits = np.array([quiet, quiet | sign, quiet | 1, quiet | sign | 5], udt)
    g = Graph("nans")
    c = emit(g, "constant", [], {"value": bits.view(dtype)})
    payload = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000123))[0]
    g.add_output(emit(g, "pad", [c], {"low": (1,), "high": (0,), "value": payload}), "p")
    text, weights = dump(g)
    assert f"nan(0x{int(bits[1]):0{width // 4}x})" in text and "nan(0xfff8000000000123)" in text
    back = assert_round_trips(g)
    assert back.nodes[0].attrs["value"].view(udt).tolist() == bits.tolist()


def test_names_and_locations_that_need_quoting():
    g = Graph("odd graph")
    x = g.add_input("x y", TensorType((sym("N"), 3), "f32"))
    p = g.add_input('p"q', TensorType((3,), "f32"), "state", np.arange(3, dtype=np.float32))
    a = emit(g, "abs", [x], loc=Loc('fi"le.py', None, "a/b"))
    b = emit(g, "neg", [p], loc=Loc("f.py", None, None))
    c = emit(g, "relu", [a], loc=FusedLoc((Loc("a.py", 1, "p"), Loc(None, None, "q"))))
    a.name = "ü.1"
    g.add_output(c, "out put")
    g.add_output(b, 'new "p"', updates='p"q')
    back = assert_round_trips(g)
    assert back.name == "odd graph" and back.input('p"q').role == "state"
    assert back.nodes[0].loc == Loc('fi"le.py', None, "a/b")
    assert back.nodes[1].loc == Loc("f.py", None, None)


def test_parsed_graph_fresh_names_do_not_collide():
    g = parse("""
        graph @g(%x: f32[2]) {
          %0 = neg(%x) : f32[2]
          %7 = neg(%0) : f32[2]
          return %7 as "y"
        }""")
    v = emit(g, "abs", [g.outputs[0]])
    assert v.name not in {"x", "0", "7"}


# -- nested graphs (graph-kind attributes) ----------------------------------------------------
@pytest.fixture
def call_op():
    """A test-only op whose `body` attribute is a nested graph (as fused groups will be)."""
    def infer(ins, attrs):
        return [attrs["body"].outputs[0].type]

    def reference(ins, attrs):
        return next(iter(run(attrs["body"], list(ins)).values()))

    opdef = register(OpDef("test_call", ("args*",), {"body": AttrSpec("graph")}, infer,
                           reference, fusion="opaque"))
    yield opdef
    del _REGISTRY["test_call"]


def make_body(name="body", scale=2.0, large=False):
    body = Graph(name)
    x = body.add_input("a", TensorType((sym("N"), 4), "f32"))
    w = body.add_input("w", TensorType((4, 5) if large else (4,), "f32"), "param",
                       np.full((4, 5) if large else (4,), scale, np.float32))
    if large:
        y = emit(body, "matmul", [x, w], loc=Loc("inner.py", 3, "body/mm"))
    else:
        y = emit(body, "mul", [x, emit(body, "broadcast", [w], {"shape": (sym("N"), 4),
                                                              "dims": (1,)})])
    body.add_output(emit(body, "relu", [y]), "r")
    return body


@pytest.mark.parametrize("large", [False, True])
def test_nested_graph_attributes_round_trip(call_op, large):
    g = Graph("outer")
    x = g.add_input("x", TensorType((sym("N"), 4), "f32"))
    inner = make_body(large=large)
    y = emit(g, "test_call", [x], {"body": inner}, Loc("outer.py", 9, "net/fused0"))
    g.add_output(y, "y")
    text, weights = dump(g)
    assert "graph @body(" in text and ("init %w = @" in text if large else "init %w = dense")
    back = assert_round_trips(g)
    assert back.nodes[0].attrs["body"].initializers["w"].tobytes() == \
        inner.initializers["w"].tobytes()
    xs = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    np.testing.assert_array_equal(run(back, {"x": xs})["y"], run(g, {"x": xs})["y"])


def test_nested_graph_values_are_scoped(call_op):
    text = """
    graph @outer(%x: f32[N,4]) {
      %0 = test_call(%x) {body=graph @body(%a: f32[N,4]) {
          %r = neg(%x) : f32[N,4]
          return %r as "r"
        }} : f32[N,4]
      return %0 as "y"
    }"""
    with pytest.raises(ParseError) as e:
        parse(text)
    assert "undefined value %x" in str(e.value) and "<string>:4:20:" in str(e.value)


# -- .gir files -------------------------------------------------------------------------------
def mlp_graph(w_value=0.5):
    g = Graph("mlp")
    x = g.add_input("x", TensorType((sym("N"), 8), "f32"))
    w = g.add_input("w", TensorType((8, 6), "f32"), "param",
                    np.full((8, 6), w_value, np.float32))
    b = g.add_input("b", TensorType((6,), "f32"), "param", np.zeros(6, np.float32))
    h = emit(g, "matmul", [x, w], loc=Loc("mlp.py", 4, "dense/matmul"))
    bb = emit(g, "broadcast", [b], {"shape": (sym("N"), 6), "dims": (1,)})
    big = emit(g, "constant", [], {"value": np.linspace(-1, 1, 48, dtype=np.float32)
                                   .reshape(8, 6)})
    g.add_output(emit(g, "relu", [emit(g, "add", [h, bb])]), "y")
    g.add_output(big, "table")
    g.add_output(emit(g, "neg", [w]), "w_next", updates="w")
    return g


def test_save_and_load_gir_with_sidecar(tmp_path):
    g = mlp_graph()
    path = tmp_path / "mlp.gir"
    save_gir(g, path)
    side = sidecar_path(path)
    assert os.path.exists(side) and side.endswith("mlp.gir.weights.npz")
    with np.load(side, allow_pickle=False) as npz:      # plain arrays, no pickle
        assert sorted(npz.files) == ["c_2", "init_w"]
    text = path.read_text()
    assert text.startswith("# weights: mlp.gir.weights.npz\n") and "@init_w sha256:" in text
    back = load_gir(path)
    assert structural_diff(g, back, check_names=True, check_locs=True) is None


def test_save_without_large_arrays_writes_no_sidecar_and_removes_a_stale_one(tmp_path):
    path = tmp_path / "small.gir"
    save_gir(mlp_graph(), path)
    assert os.path.exists(sidecar_path(path))
    g = Graph("small")
    x = g.add_input("x", TensorType((2,), "f32"))
    g.add_output(emit(g, "exp", [x]), "y")
    save_gir(g, path)
    assert not os.path.exists(sidecar_path(path))
    assert structural_diff(g, load_gir(path), check_names=True) is None


def test_missing_sidecar_is_a_clear_error(tmp_path):
    path = tmp_path / "mlp.gir"
    save_gir(mlp_graph(), path)
    os.remove(sidecar_path(path))
    with pytest.raises(ParseError) as e:
        load_gir(path)
    msg = str(e.value)
    assert "mlp.gir.weights.npz does not exist" in msg and "mlp.gir:" in msg and "^" in msg


def test_sidecar_from_another_graph_is_rejected_by_hash(tmp_path):
    path, other = tmp_path / "a.gir", tmp_path / "b.gir"
    save_gir(mlp_graph(0.5), path)
    save_gir(mlp_graph(0.25), other)
    os.replace(sidecar_path(other), sidecar_path(path))
    with pytest.raises(ParseError) as e:
        load_gir(path)
    assert "has hash sha256:" in str(e.value) and "does not belong" in str(e.value)


def test_missing_gir_file_and_corrupt_sidecar(tmp_path):
    with pytest.raises(ParseError, match="cannot read IR file"):
        load_gir(tmp_path / "nope.gir")
    path = tmp_path / "m.gir"
    save_gir(mlp_graph(), path)
    with open(sidecar_path(path), "wb") as f:
        f.write(b"not a zip file")
    with pytest.raises(ParseError, match="cannot read the weights sidecar"):
        load_gir(path)


def test_comments_blank_lines_and_free_layout_parse():
    text = """# an MLP layer, written by hand
    graph @layer(%x: f32[N,3],   # batch of rows
                 %w: f32[3,2] param) {
      %h = matmul(%x, %w) {transpose_a=false,
                           transpose_b=false} : f32[N,2]   # no loc
      %s = reshape(%h) {shape=[2*N]} : f32[2*N]
      %t = slice(%s) {starts=[1], stops=[2*N], steps=[1]} : f32[2*N-1]
      return %t as "t", %w as "w2" updates %w
    }
    # initial values
    init %w = dense<f32[3,2]>[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    """
    g = parse(text)
    assert [n.op for n in g.nodes] == ["matmul", "reshape", "slice"]
    assert str(g.nodes[-1].output.type) == "f32[2*N-1]"
    assert g.aliases == {"w2": "w"}
    np.testing.assert_array_equal(g.initializers["w"], np.arange(1, 7).reshape(3, 2))
    assert_round_trips(g)


def test_error_in_nested_graph_points_into_it(call_op):
    text = "graph @o(%x: f32[2]) {\n  %0 = test_call(%x) {body=graph @b(%a: f32[2]) {\n" \
           "    %r = nope(%a) : f32[2]\n    return %r as \"r\"\n  }} : f32[2]\n" \
           "  return %0 as \"y\"\n}\n"
    with pytest.raises(GraphcError) as e:
        parse(text)
    assert "<string>:3:10: unknown op 'nope'" in str(e.value)
