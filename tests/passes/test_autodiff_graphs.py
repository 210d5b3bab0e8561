"""Autodiff on whole graphs: an MLP and a small CNN with cross entropy built from primitives,
double backward, symbolic batch dims, off-path zeros, the missing-rule error, locations,
leanness of the emitted IR and the pass form's contract. All numerics in float64."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from ir import GradientError, Graph, Loc, TensorType, dtype, emit, run, sym
from passes.autodiff import VJP_RULES, append_gradients, autodiff


def _load_gradcheck():
    # tests/ is not a package and putting it on sys.path would shadow `ir` with tests/ir.
    if "gradcheck" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "gradcheck", Path(__file__).resolve().parents[1] / "gradcheck.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["gradcheck"] = module
    return sys.modules["gradcheck"]


check_grads = _load_gradcheck().check_grads
N = sym("N")


class Builder:
    """Terse graph building for tests: `b.op(name, *inputs, **attrs)` emits one node."""

    def __init__(self, name="g", dtype="f64"):
        self.g = Graph(name)
        self.dtype = dtype
        self.loc = Loc("model.py", 1, None)

    def input(self, name, shape, dtype=None, role="input"):
        return self.g.add_input(name, TensorType(shape, dtype or self.dtype), role)

    def __getattr__(self, op):
        def make(*inputs, **attrs):
            return emit(self.g, op, list(inputs), attrs, self.loc)
        return make

    def const(self, value):
        return emit(self.g, "constant", [], {"value": np.array(value, dtype(self.dtype).np_dtype)},
                    self.loc)

    def sum_all(self, x):
        return self.reduce_sum(x, axes=tuple(range(x.type.rank)))

    def cross_entropy(self, logits, labels):
        """mean over the batch of -log_softmax(logits)[label], max-subtracted for stability."""
        n, k = logits.shape
        m = self.reduce_max(logits, axes=(1,), keepdims=True)
        z = self.sub(logits, self.broadcast(m, shape=(n, k), dims=(0, 1)))
        lse = self.log(self.reduce_sum(self.exp(z), axes=(1,), keepdims=True))
        logp = self.sub(z, self.broadcast(lse, shape=(n, k), dims=(0, 1)))
        hits = self.equal(self.broadcast(labels, shape=(n, k), dims=(0,)),
                          self.iota(shape=(n, k), axis=1, dtype="i64"))
        one_hot = self.cast(hits, dtype=self.dtype)
        nll = self.neg(self.sum_all(self.mul(one_hot, logp)))
        count = self.cast(self.dim_value(dim=n, dtype="i64"), dtype=self.dtype)
        return self.div(nll, count)


def mlp(dtype="f64"):
    b = Builder("mlp", dtype)
    x = b.input("x", (N, 4))
    labels = b.input("labels", (N,), "i64")
    w1 = b.input("w1", (4, 5), role="param")
    b1 = b.input("b1", (5,), role="param")
    w2 = b.input("w2", (5, 3), role="param")
    b2 = b.input("b2", (3,), role="param")
    h = b.relu(b.add(b.matmul(x, w1), b.broadcast(b1, shape=(N, 5), dims=(1,))))
    logits = b.add(b.matmul(h, w2), b.broadcast(b2, shape=(N, 3), dims=(1,)))
    b.g.add_output(b.cross_entropy(logits, labels), "loss")
    return b.g


def mlp_inputs(n, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 4)).astype(dtype),
            "labels": rng.integers(0, 3, n),
            "w1": rng.standard_normal((4, 5)).astype(dtype),
            "b1": (0.1 * rng.standard_normal(5)).astype(dtype),
            "w2": rng.standard_normal((5, 3)).astype(dtype),
            "b2": (0.1 * rng.standard_normal(3)).astype(dtype)}


# -- whole models ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 5])
def test_mlp_gradients_for_params_and_data_input_with_symbolic_batch(n):
    g = mlp()
    grads = check_grads(g, "loss", ["w1", "b1", "w2", "b2", "x"], mlp_inputs(n), directions=4)
    assert grads["x"].shape == (n, 4)


def test_mlp_in_f32_has_f32_gradients_matching_the_f64_graph():
    g32 = autodiff(mlp("f32"), "loss", ["w1", "b1", "w2", "b2", "x"])
    for name in ("w1", "b1", "w2", "b2", "x"):
        assert g32.output(f"grad_{name}").type == g32.input(name).type
    out32 = run(g32, mlp_inputs(4, dtype=np.float32), precision="f64")
    inputs64 = {k: v.astype(np.float64) if v.dtype == np.float32 else v
                for k, v in mlp_inputs(4, dtype=np.float32).items()}
    out64 = run(autodiff(mlp(), "loss", ["w1", "b1", "w2", "b2", "x"]), inputs64, "f64")
    for name in ("w1", "b1", "w2", "b2", "x"):
        np.testing.assert_allclose(out32[f"grad_{name}"], out64[f"grad_{name}"], rtol=1e-12)


def cnn():
    b = Builder("cnn")
    x = b.input("x", (N, 1, 6, 6))
    labels = b.input("labels", (N,), "i64")
    w1 = b.input("w1", (3, 1, 3, 3), role="param")
    b1 = b.input("b1", (3,), role="param")
    w2 = b.input("w2", (27, 4), role="param")
    conv = b.conv2d(x, w1, padding=(1, 1, 1, 1))
    h = b.relu(b.add(conv, b.broadcast(b1, shape=(N, 3, 6, 6), dims=(1,))))
    pooled = b.max_pool2d(h, kernel=(2, 2), stride=(2, 2))
    logits = b.matmul(b.reshape(pooled, shape=(N, 27)), w2)
    b.g.add_output(b.cross_entropy(logits, labels), "loss")
    return b.g


@pytest.mark.parametrize("n", [1, 3])
def test_cnn_gradients_for_params_and_data_input(n):
    rng = np.random.default_rng(n)
    inputs = {"x": rng.standard_normal((n, 1, 6, 6)), "labels": rng.integers(0, 4, n),
              "w1": rng.standard_normal((3, 1, 3, 3)), "b1": 0.1 * rng.standard_normal(3),
              "w2": 0.3 * rng.standard_normal((27, 4))}
    check_grads(cnn(), "loss", ["w1", "b1", "w2", "x"], inputs, directions=5)


def test_dropout_mask_is_a_constant_for_the_gradient():
    b = Builder("dropout")
    x = b.input("x", (N, 4))
    u = b.random_uniform(shape=(N, 4), seed=7, dtype="f64")
    keep = b.greater_equal(u, b.broadcast(b.const(0.3), shape=(N, 4), dims=()))
    scaled = b.mul(x, b.broadcast(b.const(1 / 0.7), shape=(N, 4), dims=()))
    y = b.select(keep, scaled, b.broadcast(b.const(0.0), shape=(N, 4), dims=()))
    b.g.add_output(b.sum_all(b.mul(y, y)), "loss")
    check_grads(b.g, "loss", ["x"], {"x": np.random.default_rng(0).standard_normal((3, 4))})


# -- double backward ---------------------------------------------------------------------------
def test_double_backward_through_matmul():
    b = Builder("dbl")
    x = b.input("x", (N, 3))
    w = b.input("w", (3, 2), role="param")
    c = b.input("c", (N, 2))
    loss1 = b.sum_all(b.mul(b.tanh(b.matmul(x, w, transpose_b=False)), c))
    gw, gx = append_gradients(b.g, loss1, [w, x])
    penalty = b.add(b.sum_all(b.mul(gw, gw)), b.sum_all(b.mul(gx, gx)))
    b.g.add_output(penalty, "penalty")
    rng = np.random.default_rng(4)
    check_grads(b.g, "penalty", ["x", "w", "c"], {"x": rng.standard_normal((3, 3)),
                                                  "w": rng.standard_normal((3, 2)),
                                                  "c": rng.standard_normal((3, 2))})


@pytest.mark.parametrize("pool", [None, "max_pool2d", "avg_pool2d"])
def test_double_backward_gradient_penalty_through_conv(pool):
    """WGAN-GP style: a penalty on the critic's gradients (sum of dD/dx^2 and dD/dw^2),
    differentiated again. Needs the VJPs of conv2d_grad_input/filter and of the pooling
    gradients."""
    b = Builder("wgan_gp")
    x = b.input("x", (N, 2, 5, 5))
    w = b.input("w", (3, 2, 3, 3), role="param")
    h = b.tanh(b.conv2d(x, w, stride=(2, 1), padding=(1, 1, 0, 1)))
    if pool == "max_pool2d":
        h = b.max_pool2d(h, kernel=(2, 2), stride=(1, 2), ceil_mode=True)
    elif pool == "avg_pool2d":
        h = b.avg_pool2d(h, kernel=(2, 2), stride=(1, 2), padding=(1, 0, 0, 1),
                         count_include_pad=False)
    v = b.input("v", h.shape)
    critic = b.sum_all(b.mul(h, v))
    gx, gw = append_gradients(b.g, critic, [x, w])
    penalty = b.add(b.sum_all(b.mul(gx, gx)), b.sum_all(b.mul(gw, gw)))
    b.g.add_output(penalty, "penalty")
    ops = {n.op for n in autodiff(b.g, "penalty", ["w", "x"]).nodes}
    assert {"conv2d_grad_input", "conv2d_grad_filter", "conv2d"} <= ops
    rng = np.random.default_rng(8)
    inputs = {"x": rng.standard_normal((2, 2, 5, 5)), "w": rng.standard_normal((3, 2, 3, 3)),
              "v": rng.standard_normal((2,) + tuple(h.shape[1:]))}
    check_grads(b.g, "penalty", ["w", "x", "v"], inputs, directions=4)


# -- what gets differentiated ------------------------------------------------------------------
def test_wrt_not_on_the_path_gets_zeros_of_its_symbolic_shape():
    b = Builder("zeros")
    x = b.input("x", (N, 3))
    unused = b.input("unused", (N, 2, 3), role="param")
    only_compared = b.input("cmp", (N, 3))
    mask = b.cast(b.greater(only_compared, x), dtype="f64")    # no gradient through greater
    b.g.add_output(b.sum_all(b.mul(b.tanh(x), mask)), "loss")
    grad_graph = autodiff(b.g, "loss", ["unused", "cmp", "x"])
    for n in (1, 5):
        rng = np.random.default_rng(n)
        out = run(grad_graph, {"x": rng.standard_normal((n, 3)),
                               "unused": rng.standard_normal((n, 2, 3)),
                               "cmp": rng.standard_normal((n, 3))}, "f64")
        np.testing.assert_array_equal(out["grad_unused"], np.zeros((n, 2, 3)))
        np.testing.assert_array_equal(out["grad_cmp"], np.zeros((n, 3)))
    backward = grad_graph.nodes[len(b.g.nodes):]
    assert not any(n.op in ("greater", "cast") for n in backward)


def test_loss_independent_of_every_wrt_gives_zeros_and_no_backward_math():
    b = Builder("const_loss")
    x = b.input("x", (2,))
    y = b.input("y", (2,))
    b.g.add_output(b.sum_all(b.exp(y)), "loss")
    grad_graph = autodiff(b.g, "loss", ["x"])
    backward = [n.op for n in grad_graph.nodes[len(b.g.nodes):]]
    assert backward == ["constant", "broadcast"]     # zeros for x; not even a seed
    out = run(grad_graph, {"x": np.ones(2), "y": np.ones(2)}, "f64")
    np.testing.assert_array_equal(out["grad_x"], [0.0, 0.0])


def test_gradient_with_respect_to_intermediate_values_and_the_loss():
    b = Builder("mid")
    x = b.input("x", (2, 3))
    w = b.input("w", (3, 2))
    h = b.matmul(x, w)
    loss = b.sum_all(b.tanh(h))
    gh, gx, gloss = append_gradients(b.g, loss, [h, x, loss])
    for v, name in ((gh, "gh"), (gx, "gx"), (gloss, "gl")):
        b.g.add_output(v, name)
    rng = np.random.default_rng(2)
    xs, ws = rng.standard_normal((2, 3)), rng.standard_normal((3, 2))
    out = run(b.g, {"x": xs, "w": ws}, "f64")
    expected_gh = 1 - np.tanh(xs @ ws) ** 2
    np.testing.assert_allclose(out["gh"], expected_gh)
    np.testing.assert_allclose(out["gx"], expected_gh @ ws.T)
    assert float(out["gl"]) == 1.0


def test_seed_gives_a_vector_jacobian_product_of_a_non_scalar_output():
    b = Builder("vjp")
    x = b.input("x", (N, 3))
    ct = b.input("ct", (N, 3))
    y = b.exp(x)
    (gx,) = append_gradients(b.g, y, [x], seed=ct)
    b.g.add_output(gx, "gx")
    xs, cts = np.random.default_rng(1).standard_normal((2, 4, 3))
    np.testing.assert_allclose(run(b.g, {"x": xs, "ct": cts}, "f64")["gx"], cts * np.exp(xs))


def test_a_value_used_several_times_sums_its_contributions_with_add():
    b = Builder("uses")
    x = b.input("x", (3,))
    y = b.add(b.mul(x, x), x)
    b.g.add_output(b.sum_all(y), "loss")
    grad_graph = autodiff(b.g, "loss", ["x"])
    backward = grad_graph.nodes[len(b.g.nodes):]
    assert [n.op for n in backward].count("add") == 2     # three contributions to x
    xs = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(run(grad_graph, {"x": xs}, "f64")["grad_x"], 2 * xs + 1)


def test_backward_graph_is_lean():
    """No adds for single-use values and no gradient nodes for values off the path: only w
    is wanted, so the matmul for d/dx is never emitted."""
    b = Builder("lean")
    x = b.input("x", (N, 3))
    w = b.input("w", (3, 2), role="param")
    b.g.add_output(b.sum_all(b.tanh(b.matmul(x, w))), "loss")
    grad_graph = autodiff(b.g, "loss", ["w"])
    backward = [n.op for n in grad_graph.nodes[len(b.g.nodes):]]
    assert backward.count("matmul") == 1
    assert "add" not in backward
    assert len(backward) <= 7, backward


def test_backward_nodes_carry_the_forward_location_with_grad_appended():
    g = Graph("locs")
    x = g.add_input("x", TensorType((2, 3), "f64"))
    w = g.add_input("w", TensorType((3, 4), "f64"))
    h = emit(g, "matmul", [x, w], loc=Loc("model.py", 12, "net/dense1/matmul"))
    t = emit(g, "tanh", [h], loc=Loc("model.py", 13, "net/dense1/tanh"))
    s = emit(g, "reduce_sum", [t], {"axes": (0, 1)}, loc=Loc("model.py", 14, None))
    g.add_output(s, "loss")
    grad_graph = autodiff(g, "loss", ["x", "w"])
    backward = grad_graph.nodes[len(g.nodes):]
    matmuls = [n for n in backward if n.op == "matmul"]
    assert [n.loc for n in matmuls] == [Loc("model.py", 12, "net/dense1/matmul/grad")] * 2
    assert any(n.loc == Loc("model.py", 13, "net/dense1/tanh/grad") for n in backward)
    assert any(n.loc == Loc("model.py", 14, "reduce_sum/grad") for n in backward)


# -- errors ------------------------------------------------------------------------------------
def test_missing_rules_are_all_listed_in_one_error(monkeypatch):
    monkeypatch.delitem(VJP_RULES, "tanh")
    monkeypatch.delitem(VJP_RULES, "exp")
    g = Graph("missing")
    x = g.add_input("x", TensorType((3,), "f64"))
    other = g.add_input("other", TensorType((3,), "f64"))
    t = emit(g, "tanh", [x], loc=Loc("net.py", 21, "net/act"))
    e = emit(g, "exp", [t], loc=Loc("net.py", 22, "net/exp"))
    emit(g, "tanh", [x], loc=Loc("net.py", 30, "net/dead"))           # not used by the loss
    off = emit(g, "exp", [other], loc=Loc("net.py", 31, "net/fixed"))  # not varying with x
    loss = emit(g, "reduce_sum", [emit(g, "mul", [e, off])], {"axes": (0,)})
    g.add_output(loss, "loss")
    before = len(g.nodes)
    with pytest.raises(GradientError) as info:
        append_gradients(g, loss, [x])
    text = str(info.value)
    assert "exp, tanh" in text and "2 node(s)" in text
    assert f"%{t.name} = tanh(%x)" in text and "net.py:21 (net/act)" in text
    assert f"%{e.name} = exp(%{t.name})" in text and "net.py:22 (net/exp)" in text
    assert "net.py:30" not in text and "net.py:31" not in text
    assert len(g.nodes) == before, "the graph must not be touched when autodiff fails"


def test_request_errors():
    b = Builder("errors")
    x = b.input("x", (N, 3))
    idx = b.input("idx", (N,), "i64")
    y = b.exp(x)
    loss = b.sum_all(y)
    with pytest.raises(GradientError, match=r"float scalar.*f64\[N,3\]"):
        append_gradients(b.g, y, [x])
    with pytest.raises(GradientError, match=r"%idx: i64\[N\] is not a float tensor"):
        append_gradients(b.g, loss, [idx])
    with pytest.raises(GradientError, match=r"seed must have the loss's type f64\[\]"):
        append_gradients(b.g, loss, [x], seed=x)
    with pytest.raises(GradientError, match="loss must be a float tensor"):
        append_gradients(b.g, b.cast(idx, dtype="i32"), [x])
    stranger = Graph("other").add_input("z", TensorType((3,), "f64"))
    with pytest.raises(GradientError, match="not a value of graph"):
        append_gradients(b.g, loss, [stranger])


def test_pass_form_does_not_mutate_its_input_and_names_outputs():
    g = mlp()
    text, count = str(g), len(g.nodes)
    out = autodiff(g, "loss", ["w1", "x"])
    assert str(g) == text and len(g.nodes) == count
    assert out.output_names == ["loss", "grad_w1", "grad_x"]
    with pytest.raises(GradientError, match="must be an output"):
        autodiff(g, "nope", ["w1"])
    with pytest.raises(GradientError, match="must be inputs"):
        autodiff(g, "loss", ["w9"])
    with pytest.raises(GradientError, match="grad_w1"):
        autodiff(out, "loss", ["w1"])


# -- the pass in pipelines and the text format -------------------------------------------------
def test_autodiff_runs_as_a_registered_pass_in_a_pipeline():
    from passes import PassManager
    g = mlp()
    result = PassManager('autodiff{loss=loss, wrt="w1,x"},dce').run(g)
    out = result.graph
    assert out.output_names == ["loss", "grad_w1", "grad_x"]
    assert result.record("autodiff").stats["gradients"] == 2
    assert result.record("autodiff").stats["backward_nodes"] > 0
    defaults = PassManager("autodiff").run(g).graph         # every param by default
    assert defaults.output_names == ["loss", "grad_w1", "grad_b1", "grad_w2", "grad_b2"]
    inputs = mlp_inputs(3)
    direct = run(autodiff(g, "loss", ["w1", "x"]), inputs, "f64")
    piped = run(out, inputs, "f64")
    for name in ("grad_w1", "grad_x"):
        np.testing.assert_array_equal(piped[name], direct[name])


def test_gradient_graphs_print_and_parse_back():
    """Backward IR is ordinary IR: it round-trips through the text format (pads with -inf,
    symbolic shapes, /grad locations included)."""
    from ir.equality import structural_equal
    from ir.parser import parse
    from ir.printer import dump
    b = Builder("rt")
    x = b.input("x", (N, 2, 5, 5))
    w = b.input("w", (3, 2, 3, 3), role="param")
    h = b.max_pool2d(b.tanh(b.conv2d(x, w, padding=(1, 1, 1, 1))), kernel=(2, 2),
                     stride=(2, 2), padding=(1, 1, 0, 0))
    (gx,) = append_gradients(b.g, b.sum_all(b.mul(h, h)), [x])
    b.g.add_output(b.sum_all(b.mul(gx, gx)), "penalty")
    graph = autodiff(b.g, "penalty", ["w"])
    assert any(n.op == "pad" and n.attrs["value"] == -np.inf for n in graph.nodes)
    text, weights = dump(graph)
    back = parse(text, weights)
    assert structural_equal(graph, back, check_locs=True), text


# -- graphs made by the front end --------------------------------------------------------------
def _front_end_cases():
    import graphc as gc
    rng = np.random.default_rng(0)
    w_group = rng.standard_normal((4, 1, 3, 3))
    w_t = rng.standard_normal((2, 3, 3, 3))
    matrix = {
        "gelu": gc.gelu, "gelu_tanh": lambda x: gc.gelu(x, approximate="tanh"),
        "elu": gc.elu, "selu": gc.selu, "softplus": gc.softplus, "softsign": gc.softsign,
        "clip": lambda x: gc.clip(x, -0.5, 0.5), "log_softmax": lambda x: gc.log_softmax(x, 0),
        "softmax": gc.softmax, "logsumexp": lambda x: gc.logsumexp(x, axis=1),
        "std": lambda x: gc.std(x, axis=1), "indexing": lambda x: x[1:, ::2] * x[-1, 1:3],
        "stack": lambda x: gc.stack([x, x * 2.0]), "where": lambda x: gc.where(x > 0.0, x, x * x),
        "take": lambda x: gc.take(x, gc.constant(np.array([0, 2, 2])), axis=1),
    }
    images = {
        "conv_same_groups": lambda x: gc.conv2d(x, gc.constant(w_group), padding="same",
                                                groups=2),
        "conv_transpose": lambda x: gc.conv_transpose2d(x, gc.constant(w_t), stride=2),
        "max_pool_ceil": lambda x: gc.max_pool2d(x, 2, ceil_mode=True),
        "avg_pool": lambda x: gc.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
        "dropout": lambda x: gc.dropout(x, 0.3, training=True, seed=3),
    }
    x = rng.standard_normal((3, 4)) + 0.05
    img = rng.standard_normal((2, 2, 5, 5))
    return [(n, f, x) for n, f in matrix.items()] + [(n, f, img) for n, f in images.items()]


@pytest.mark.parametrize("case", _front_end_cases(), ids=lambda c: c[0])
def test_graphs_traced_by_the_front_end(case):
    """Composite ops of graphc's front end (built from primitives) differentiate correctly."""
    import graphc as gc
    _, fn, arr = case

    def model(x):
        y = fn(x)
        ct = np.random.default_rng(1).standard_normal(tuple(int(d) for d in y.shape))
        return gc.sum(y * gc.constant(ct))

    g = gc.trace(model, gc.spec(arr.shape, "f64"))
    name = g.inputs[0].name
    check_grads(g, g.output_names[0], [name], {name: arr})
