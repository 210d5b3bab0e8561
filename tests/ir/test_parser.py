"""Parser: accepted syntax, and every kind of error with file:line:col, the line and a caret."""
import numpy as np
import pytest

from ir import (AttrError, DTypeError, GraphcError, Loc, ParseError, ShapeError, UnknownOpError,
                sym)
from ir.location import FusedLoc
from ir.parser import parse, tokenize
from ir.printer import dump

GOOD = """graph @mlp(%x: f32[N,4], %w: f32[4,3] param) {
  %0 = matmul(%x, %w) {transpose_a=false, transpose_b=false} : f32[N,3] loc("mlp.py":12 "net/dense1/matmul")
  %1 = relu(%0) : f32[N,3]
  return %1 as "logits"
}
"""


def error_of(text, cls=ParseError, weights=None, filename="mlp.gir"):
    with pytest.raises(cls) as info:
        parse(text, weights, filename)
    return info.value


def assert_points_at(err, line, col, token):
    """The message starts with file:line:col and the caret line marks `token` in the source."""
    msg = str(err)
    head, source, caret = msg.split("\n")
    assert head.startswith(f"mlp.gir:{line}:{col}: "), msg
    assert (err.line, err.col) == (line, col)
    assert source.startswith("  ") and caret.startswith("  ")
    assert caret.index("^") == col - 1 + 2, msg
    assert source[caret.index("^"):].startswith(token), msg
    assert caret.strip() == "^" + "~" * (len(token) - 1), msg
    return head


def test_good_text_parses_with_types_roles_locs():
    g = parse(GOOD)
    assert g.name == "mlp"
    assert [(v.name, str(v.type), v.role) for v in g.inputs] == [
        ("x", "f32[N,4]", "input"), ("w", "f32[4,3]", "param")]
    assert [n.op for n in g.nodes] == ["matmul", "relu"]
    assert g.nodes[0].loc == Loc("mlp.py", 12, "net/dense1/matmul")
    assert g.output_names == ["logits"] and g.outputs[0] is g.nodes[1].output


def test_symbolic_dims_and_every_attr_kind():
    text = """graph @g(%x: f32[N,M], %c: i32[]) {
      %a = reshape(%x) {shape=[N*M]} : f32[M*N]
      %b = concat(%a, %a) {axis=0} : f32[2*M*N]
      %s = slice(%b) {starts=[1], stops=[2*M*N], steps=[1]} : f32[2*M*N-1]
      %d = dim_value() {dim=N+M, dtype=i32} : i32[]
      %r = random_uniform(%c) {shape=[N, 2], seed=7, dtype=f64} : f64[N,2]
      %p = pad(%x) {low=[0, 1], high=[2, 0], value=-inf} : f32[N+2,M+1]
      %k = constant() {value=dense<bool[2,2]>[true, false, false, true]} : bool[2,2]
      %i = constant() {value=dense<i64[3]>[-9223372036854775808, 0, 9223372036854775807]} : i64[3]
      return %s as "s", %d as "d", %r as "r", %p as "p", %k as "k", %i as "i"
    }"""
    g = parse(text)
    nodes = {n.outputs[0].name: n for n in g.nodes}
    assert nodes["d"].attrs["dim"] == sym("N") + sym("M")
    assert nodes["p"].attrs["value"] == float("-inf")
    assert nodes["r"].attrs["dtype"].name == "f64" and nodes["r"].attrs["seed"] == 7
    assert nodes["k"].attrs["value"].tolist() == [[True, False], [False, True]]
    assert nodes["i"].attrs["value"].tolist() == [-2**63, 0, 2**63 - 1]
    assert str(nodes["s"].output.type) == "f32[2*M*N-1]"


def test_fused_and_partial_locations():
    text = GOOD.replace('loc("mlp.py":12 "net/dense1/matmul")',
                        'loc(fused["a.py":1 "x/y", "only/path", "b.py":?, "c.py":3])')
    loc = parse(text).nodes[0].loc
    assert loc == FusedLoc((Loc("a.py", 1, "x/y"), Loc(None, None, "only/path"),
                            Loc("b.py", None, None), Loc("c.py", 3, None)))


def test_weight_references_resolve_in_the_sidecar_table():
    g = parse(GOOD)
    g.initializers["w"] = np.arange(12, dtype=np.float32).reshape(4, 3) + 0.5
    text, weights = dump(g, inline_limit=4)
    assert "init %w = @init_w sha256:" in text
    back = parse(text, weights)
    np.testing.assert_array_equal(back.initializers["w"], g.initializers["w"])


def test_tokenizer_positions_and_kinds():
    toks = tokenize('%"a b" = @w sha256:00ff 2*N-1 nan(0x7fc00001) # comment\n"s"')
    assert [(t.kind, t.text) for t in toks[:6]] == [
        ("VALUE", "a b"), ("PUNCT", "="), ("SYMBOL", "w"), ("HASH", "00ff"), ("NUMBER", "2"),
        ("PUNCT", "*")]
    text = '%"a b" = @w sha256:00ff 2*N-1 nan(0x7fc00001) # comment\n"s"'
    assert toks[-2].kind == "STRING" and text[toks[-2].pos:] == '"s"'
    assert toks[-1].kind == "EOF"


# -- errors -----------------------------------------------------------------------------------
def test_unknown_op_suggests_the_close_name():
    err = error_of(GOOD.replace("matmul(", "matmull("), UnknownOpError)
    assert isinstance(err, ParseError)
    head = assert_points_at(err, 2, 8, "matmull")
    assert "unknown op 'matmull'; did you mean matmul" in head


def test_unknown_attribute_name():
    err = error_of(GOOD.replace("transpose_b=false", "transpose_c=false"), AttrError)
    head = assert_points_at(err, 2, 43, "transpose_c")
    assert "has no attribute 'transpose_c'" in head and "transpose_b" in head


def test_attribute_of_the_wrong_kind():
    err = error_of(GOOD.replace("transpose_a=false", "transpose_a=3"))
    head = assert_points_at(err, 2, 36, "3")
    assert "expected true or false for attribute 'transpose_a' of matmul" in head


def test_missing_required_attribute_points_at_the_op():
    text = GOOD.replace("%1 = relu(%0) : f32[N,3]", "%1 = reduce_sum(%0) : f32[N,3]")
    err = error_of(text, AttrError)
    assert "missing required attribute 'axes'" in assert_points_at(err, 3, 8, "reduce_sum")


def test_duplicate_attribute():
    err = error_of(GOOD.replace("transpose_b=false", "transpose_a=true"), AttrError)
    assert "given twice" in assert_points_at(err, 2, 43, "transpose_a")


def test_undefined_value_with_suggestion():
    err = error_of(GOOD.replace("relu(%0)", "relu(%xx)"))
    head = assert_points_at(err, 3, 13, "%xx")
    assert "undefined value %xx; did you mean x?" in head


def test_value_used_before_its_definition_is_undefined():
    text = GOOD.replace("matmul(%x, %w)", "matmul(%x, %1)")
    assert "undefined value %1" in assert_points_at(error_of(text), 2, 19, "%1")


def test_redefined_value():
    text = GOOD.replace("%1 = relu(%0)", "%0 = relu(%0)")
    head = assert_points_at(error_of(text), 3, 3, "%0")
    assert "defined twice" in head


def test_parameter_redefined_by_a_node():
    text = GOOD.replace("%1 = relu(%0)", "%w = relu(%0)").replace("return %1", "return %w")
    assert "defined twice" in assert_points_at(error_of(text), 3, 3, "%w")


@pytest.mark.parametrize("bad, col, token, fragment", [
    ("f32[N*,4]", 22, ",", "expected a dim"),
    ("f32[1.5,4]", 20, "1.5", "expected a dim"),
    ("f32[N,-4]", 22, "-", "non-negative"),
    ("f32(N,4)", 19, "(", "expected '['"),
    ("f33[N,4]", 16, "f33", "unknown dtype 'f33'; did you mean f32"),
])
def test_bad_types_and_dims(bad, col, token, fragment):
    err = error_of(GOOD.replace("%x: f32[N,4]", f"%x: {bad}"))
    assert fragment in assert_points_at(err, 1, col, token)


def test_unknown_dtype_is_also_a_dtype_error():
    assert isinstance(error_of(GOOD.replace("f32[4,3]", "f16[4,3]"), DTypeError), ParseError)


def test_declared_type_differs_from_inferred():
    err = error_of(GOOD.replace(": f32[N,3] loc", ": f32[N,5] loc"), ShapeError)
    assert isinstance(err, ParseError)
    head = assert_points_at(err, 2, 64, "f32")
    assert "declared type f32[N,5] of %0" in head and "infers" in head and "f32[N,3]" in head


def test_shape_rule_rejects_operands():
    text = GOOD.replace("%w: f32[4,3]", "%w: f32[5,3]")
    err = error_of(text, ShapeError)
    head = assert_points_at(err, 2, 8, "matmul")
    assert "contracted dims" in head and "f32[N,4]" in head and "f32[5,3]" in head


def test_wrong_operand_count():
    err = error_of(GOOD.replace("relu(%0)", "relu(%0, %x)"))
    assert "takes 1 operand(s)" in assert_points_at(err, 3, 8, "relu")


@pytest.mark.parametrize("text, line, col, token, fragment", [
    (GOOD.replace("%1 = relu", "%1 relu"), 3, 6, "relu", "expected '=' after the result"),
    (GOOD.replace("(%x, %w)", "(%x %w)"), 2, 18, "%w", "expected ')'"),
    (GOOD.replace("  return %1", "  retrun %1"), 4, 3, "retrun", "expected a node"),
    (GOOD.replace("graph @mlp", "grph @mlp"), 1, 1, "grph", "expected 'graph'"),
    (GOOD + "}\n", 6, 1, "}", "expected 'init' or the end"),
    (GOOD.replace("}\n", ""), 5, 1, "", "expected '}'"),
    (GOOD.replace('"logits"', '"logits'), 4, 16, '"', "unexpected character"),
    (GOOD.replace('"logits"', '"lo\\qgits"'), 4, 16, '"lo\\qgits"', "bad string literal"),
    (GOOD.replace("f32[4,3] param", "f32[4,3] weight"), 1, 39, "weight", "unknown input role"),
    (GOOD.replace('as "logits"', "as logits"), 4, 16, "logits", "output name in quotes"),
    (GOOD.replace('"logits"', '"logits" updates %0'), 4, 33, "%0", "must name a graph input"),
    (GOOD + "init %q = dense<f32[]>[1.0]\n", 6, 6, "%q", "undefined value %q"),
    (GOOD + "init %w = dense<f32[2]>[1.0]\n", 6, 24, "[", "holds 2 element(s)"),
    (GOOD + "init %w = dense<f32[1]>[1.0]\ninit %w = dense<f32[1]>[1.0]\n", 7, 6, "%w",
     "initialised twice"),
    (GOOD + "init %w = dense<i32[1]>[1.5]\n", 6, 25, "1.5", "expected an integer"),
    (GOOD + "init %w = dense<f32[1]>[nan(0x7f800000)]\n", 6, 29, "0x7f800000",
     "not the bit pattern of a 32-bit NaN"),
    (GOOD.replace('loc("mlp.py":12', 'loc("mlp.py":x'), 2, 86, "x", "expected an integer"),
])
def test_malformed_text(text, line, col, token, fragment):
    err = error_of(text)
    head = str(err).split("\n")[0]
    assert head.startswith(f"mlp.gir:{line}:{col}: ") and fragment in head, str(err)
    if token:
        assert_points_at(err, line, col, token)


def weighted_text():
    g = parse(GOOD)
    g.initializers["w"] = np.ones((4, 3), np.float32)
    return dump(g, inline_limit=4)


def test_missing_weight():
    text, weights = weighted_text()
    err = error_of(text, weights={"other": weights["init_w"]})
    assert "weight @init_w is missing from the weights table" in \
        assert_points_at(err, 6, 11, "@init_w")


def test_no_weights_given():
    text, _ = weighted_text()
    assert "no weights were given" in assert_points_at(error_of(text), 6, 11, "@init_w")


def test_weight_with_the_wrong_hash():
    text, weights = weighted_text()
    err = error_of(text, weights={"init_w": np.zeros((4, 3), np.float32)})
    head = str(err).split("\n")[0]
    assert "has hash sha256:" in head and "expects sha256:" in head
    assert err.line == 6 and str(err).split("\n")[2].strip().startswith("^")


def test_errors_are_graphc_errors_and_name_the_file():
    err = error_of(GOOD.replace("relu", "relux"), GraphcError, filename="model.gir")
    assert str(err).startswith("model.gir:3:8: ")


# -- robustness -------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from strategies import graphs  # noqa: E402

_JUNK = ["", "%", "@", "[", "]", "(", ")", "{", "}", ",", "-", "1", "N", "nan(", "0x7", '"', "*",
         "?", ":", "\n", "graph", "dense<", "f32[", "loc(", "#", "init %x = ", "\\"]


@given(graphs(max_nodes=5), st.data())
@settings(max_examples=150)
def test_mangled_text_fails_only_with_graphc_errors(g, data):
    text, weights = dump(g)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 8)))
        text = text[:i] + data.draw(st.sampled_from(_JUNK)) + text[j:]
    try:
        parse(text, weights)
    except GraphcError as e:          # anything else (IndexError, ValueError...) is a bug
        if isinstance(e, ParseError) and "\n" in str(e):
            assert str(e).split("\n")[2].lstrip().startswith("^")
