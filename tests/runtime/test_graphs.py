"""Whole graphs compiled end to end: an MLP and a small CNN forward, built with ir.builder and
with the front end (graphc.function), equal to the reference interpreter at several batch
sizes."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
import ir
from ir import Graph, TensorType, emit


def _assert_close(got, want, rtol=2e-5, atol=2e-5):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def _dense(g, x, n_in, n_out, rng, name, act="relu"):
    w = g.add_input(f"{name}.w", TensorType((n_in, n_out), "f32"), "param",
                    (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32))
    b = g.add_input(f"{name}.b", TensorType((n_out,), "f32"), "param",
                    (rng.standard_normal(n_out) * 0.1).astype(np.float32))
    h = emit(g, "add", [emit(g, "matmul", [x, w]),
                        emit(g, "broadcast", [b], {"shape": ("N", n_out), "dims": (1,)})])
    return emit(g, act, [h]) if act else h


def _log_softmax(g, z, n_classes):
    m = emit(g, "reduce_max", [z], {"axes": (1,), "keepdims": True})
    shifted = emit(g, "sub", [z, emit(g, "broadcast", [m], {"shape": ("N", n_classes),
                                                           "dims": (0, 1)})])
    lse = emit(g, "log", [emit(g, "reduce_sum", [emit(g, "exp", [shifted])],
                               {"axes": (1,), "keepdims": True})])
    return emit(g, "sub", [shifted, emit(g, "broadcast", [lse], {"shape": ("N", n_classes),
                                                                "dims": (0, 1)})])


def builder_mlp() -> Graph:
    """784-400-100-10 MLP forward: log-probabilities and predicted classes."""
    rng = np.random.default_rng(0)
    g = Graph("mlp")
    x = g.add_input("x", TensorType(("N", 784), "f32"))
    h = _dense(g, x, 784, 400, rng, "fc1")
    h = _dense(g, h, 400, 100, rng, "fc2", act="sigmoid")
    z = _dense(g, h, 100, 10, rng, "fc3", act=None)
    logp = _log_softmax(g, z, 10)
    g.add_output(logp, "logp")
    g.add_output(emit(g, "argmax", [logp], {"axis": 1}), "pred")
    return g


def builder_cnn() -> Graph:
    """conv(1->6, 5x5, pad 2) relu maxpool  conv(6->16, 5x5) relu avgpool  flatten  dense."""
    rng = np.random.default_rng(1)
    g = Graph("cnn")
    x = g.add_input("x", TensorType(("N", 1, 28, 28), "f32"))
    w1 = g.add_input("w1", TensorType((6, 1, 5, 5), "f32"), "param",
                     (rng.standard_normal((6, 1, 5, 5)) * 0.2).astype(np.float32))
    w2 = g.add_input("w2", TensorType((16, 6, 5, 5), "f32"), "param",
                     (rng.standard_normal((16, 6, 5, 5)) * 0.08).astype(np.float32))
    h = emit(g, "relu", [emit(g, "conv2d", [x, w1], {"padding": (2, 2, 2, 2)})])
    h = emit(g, "max_pool2d", [h], {"kernel": (2, 2), "stride": (2, 2)})
    h = emit(g, "relu", [emit(g, "conv2d", [h, w2])])
    h = emit(g, "avg_pool2d", [h], {"kernel": (2, 2), "stride": (2, 2)})
    flat = emit(g, "reshape", [h], {"shape": ("N", 16 * 5 * 5)})
    z = _dense(g, flat, 400, 10, rng, "fc", act=None)
    g.add_output(z, "logits")
    return g


@pytest.mark.parametrize("make, shape", [(builder_mlp, (784,)), (builder_cnn, (1, 28, 28))])
def test_builder_graph_matches_interpreter(make, shape):
    g = make()
    exe = graphc.compile(g)
    for n in (1, 5, 32):
        x = np.random.default_rng(n).standard_normal((n,) + shape).astype(np.float32)
        want = ir.run(g, {"x": x})
        got = exe.run({"x": x})
        for name in g.output_names:
            if want[name].dtype.kind == "f":
                _assert_close(got[name], want[name])
            else:
                np.testing.assert_array_equal(got[name], want[name])


def test_front_end_mlp_and_cnn_match_interpreter():
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((784, 64)) * 0.05).astype(np.float32)
    w2 = (rng.standard_normal((64, 10)) * 0.1).astype(np.float32)
    k1 = (rng.standard_normal((4, 1, 3, 3)) * 0.3).astype(np.float32)

    @graphc.function(x=graphc.spec(("N", 784)))
    def mlp(x):
        h = graphc.relu(graphc.linear(x, graphc.param("w1", w1),
                                      graphc.param("b1", np.zeros(64, np.float32))))
        return graphc.log_softmax(graphc.linear(h, graphc.param("w2", w2)))

    @graphc.function(x=graphc.spec(("N", 1, 12, 12)))
    def cnn(x):
        h = graphc.relu(graphc.conv2d(x, graphc.param("k1", k1), stride=1, padding=1))
        h = graphc.max_pool2d(h, 2)
        w = graphc.param("w", np.ones((144, 3), np.float32) / 144)
        return graphc.softmax(graphc.flatten(h) @ w)

    for fn, shape in ((mlp, (784,)), (cnn, (1, 12, 12))):
        exe = graphc.compile(fn)
        for n in (1, 3, 17):
            x = np.random.default_rng(n).standard_normal((n,) + shape).astype(np.float32)
            _assert_close(exe(x), fn(x))


def test_in_place_parameter_update_step():
    """A training-step-like graph: returns the loss, writes updated params in place."""
    g = Graph("sgd")
    x = g.add_input("x", TensorType(("N", 3), "f32"))
    w = g.add_input("w", TensorType((3,), "f32"), "param", np.array([1, 2, 3], np.float32))
    count = g.add_input("count", TensorType((), "i64"), "state", np.array(0, np.int64))
    wb = emit(g, "broadcast", [w], {"shape": ("N", 3), "dims": (1,)})
    loss = emit(g, "reduce_sum", [emit(g, "mul", [x, wb])], {"axes": (0, 1)})
    grad = emit(g, "reduce_sum", [x], {"axes": (0,)})
    lr = emit(g, "constant", [], {"value": np.full(3, 0.5, np.float32)})
    g.add_output(loss, "loss")
    g.add_output(emit(g, "sub", [w, emit(g, "mul", [lr, grad])]), "w_new", updates="w")
    one = emit(g, "constant", [], {"value": np.array(1, np.int64)})
    g.add_output(emit(g, "add", [count, one]), "count_new", updates="count")
    exe = graphc.compile(g)
    assert exe.output_names == ["loss"]
    assert exe.updated_params == {"w_new": "w", "count_new": "count"}
    xs = np.ones((4, 3), np.float32)
    w_ref = np.array([1, 2, 3], np.float32)
    for step in range(3):
        loss_val = exe(xs)
        assert loss_val.shape == () and loss_val == np.float32((xs * w_ref).sum())
        w_ref = w_ref - 0.5 * xs.sum(0)
        np.testing.assert_array_equal(exe.params["w"], w_ref)
        assert exe.params["count"] == step + 1


def test_outputs_that_are_inputs_duplicates_constants_and_views():
    g = Graph("odd_outputs")
    x = g.add_input("x", TensorType(("N", 4), "f32"))
    p = g.add_input("p", TensorType((2,), "i32"), "param", np.array([7, 8], np.int32))
    y = emit(g, "neg", [x])
    c = emit(g, "constant", [], {"value": np.arange(5, dtype=np.float64)})
    r = emit(g, "reshape", [y], {"shape": ("4*N",)})
    r2 = emit(g, "reshape", [x], {"shape": ("N", 2, 2)})
    for name, v in (("x", x), ("y", y), ("y_again", y), ("c", c), ("r", r), ("p", p),
                    ("r2", r2), ("sum_r2", emit(g, "reduce_sum", [r2], {"axes": (1, 2)}))):
        g.add_output(v, name)
    exe = graphc.compile(g)
    xv = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = exe.run({"x": xv})
    want = ir.run(g, {"x": xv})
    for name in g.output_names:
        np.testing.assert_array_equal(got[name], want[name])
    assert got["x"] is not xv and not np.shares_memory(got["y"], got["y_again"])
    assert not np.shares_memory(got["p"], exe.params["p"])


def test_swapping_two_parameters_in_place():
    """Updates are applied after every read: w1 <- w2, w2 <- w1 swaps them."""
    g = Graph("swap")
    g.add_input("x", TensorType(("N",), "f32"))
    a = g.add_input("a", TensorType((3,), "f32"), "param", np.array([1, 2, 3], np.float32))
    b = g.add_input("b", TensorType((3,), "f32"), "param", np.array([4, 5, 6], np.float32))
    g.add_output(b, "a_new", updates="a")
    g.add_output(a, "b_new", updates="b")
    g.add_output(emit(g, "add", [a, b]), "s")
    exe = graphc.compile(g)
    np.testing.assert_array_equal(exe(np.zeros(2, np.float32)), [5, 7, 9])
    np.testing.assert_array_equal(exe.params["a"], [4, 5, 6])
    np.testing.assert_array_equal(exe.params["b"], [1, 2, 3])


def test_a_graph_that_only_updates_params_returns_an_empty_tuple():
    g = Graph("only_updates")
    x = g.add_input("x", TensorType(("N",), "f32"))
    acc = g.add_input("acc", TensorType((), "f32"), "state", np.array(0, np.float32))
    g.add_output(emit(g, "add", [acc, emit(g, "reduce_sum", [x], {"axes": (0,)})]), "acc_new",
                 updates="acc")
    exe = graphc.compile(g)
    assert exe(np.ones(3, np.float32)) == ()
    assert exe.run({"x": np.ones(4, np.float32)}) == {}
    assert exe.params["acc"] == 7
