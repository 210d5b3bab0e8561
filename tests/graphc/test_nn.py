"""graphc.nn: layers against numpy (run with the reference interpreter, symbolic batch),
parameter registration and naming, lazy shape inference, seeded initialisation, train/eval
mode and Dropout's step counter, and the errors users can hit."""
import math

import numpy as np
import pytest

import graphc as gc
import ir
from graphc import init
from graphc.nn import (ELU, GELU, AvgPool2D, Conv2D, Dense, Dropout, Flatten, LeakyReLU,
                       MaxPool2D, Module, Net, ReLU, Reshape, Sigmoid, Softplus, Tanh,
                       step_counter)
from ir.errors import AttrError, GraphcError, ShapeError
from graphc.tensor import TraceError


def run_layer(layer, x, precision="f64", **extra):
    """Trace layer(x) with a symbolic batch and run it; returns (output, graph)."""
    spec = gc.spec(("N",) + x.shape[1:])
    g = gc.trace(lambda x: layer(x), spec)
    out = ir.run(g, {"x": x, **extra}, precision=precision)
    return out["out"], g


@pytest.fixture
def x(rng):
    return rng.uniform(-3, 3, size=(5, 6)).astype(np.float32)


# -- Dense -------------------------------------------------------------------------------------
def test_dense_infers_in_features_and_computes_x_w_plus_b(rng, x):
    layer = Dense(4, w_init=init.Normal(), b_init=init.Uniform(-1, 1))
    out, g = run_layer(layer, x)
    w, b = layer._values["w"], layer._values["b"]
    assert w.shape == (6, 4) and b.shape == (4,) and w.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float64) @ w + b, rtol=1e-12)
    assert [v.name for v in g.inputs_with_role("param")] == ["dense.w", "dense.b"]
    # a second batch size through the same graph
    x2 = rng.normal(size=(1, 6)).astype(np.float32)
    out2 = ir.run(g, {"x": x2}, precision="f64")["out"]
    np.testing.assert_allclose(out2, x2.astype(np.float64) @ w + b, rtol=1e-12)


def test_dense_default_init_is_xavier_uniform_and_zero_bias(x):
    layer = Dense(50)
    run_layer(layer, np.ones((2, 200), np.float32))
    bound = math.sqrt(6 / (200 + 50))
    w = layer._values["w"]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not layer._values["b"].any()


def test_dense_without_bias_and_reuse_with_other_width_is_an_error(x):
    layer = Dense(3, use_bias=False)
    run_layer(layer, x)
    assert list(layer._values) == ["w"]
    with pytest.raises(ShapeError, match=r"'w' has shape \(6, 3\) but this input needs \[7,3\]"):
        run_layer(layer, np.ones((2, 7), np.float32))
    with pytest.raises(AttrError, match="num_out must be a positive int"):
        Dense(0)


# -- activations -------------------------------------------------------------------------------
_erf = np.vectorize(math.erf)


@pytest.mark.parametrize("layer, ref", [
    (ReLU(), lambda v: np.maximum(v, 0)),
    (LeakyReLU(), lambda v: np.where(v > 0, v, 0.2 * v)),
    (LeakyReLU(0.05), lambda v: np.where(v > 0, v, 0.05 * v)),
    (Sigmoid(), lambda v: 1 / (1 + np.exp(-v))),
    (Tanh(), np.tanh),
    (Softplus(), lambda v: np.logaddexp(0, v)),
    (GELU(), lambda v: 0.5 * v * (1 + _erf(v / math.sqrt(2)))),
    (GELU(approximate="tanh"),
     lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))),
    (ELU(), lambda v: np.where(v > 0, v, np.expm1(v))),
    (ELU(0.3), lambda v: np.where(v > 0, v, 0.3 * np.expm1(v))),
], ids=lambda p: repr(p) if isinstance(p, Module) else "")
def test_activations_match_numpy(layer, ref, x):
    out, g = run_layer(layer, x)
    # constants (0.2, sqrt(2)...) are f32 literals in the graph: f32-level agreement
    np.testing.assert_allclose(out, ref(x.astype(np.float64)), rtol=1e-7, atol=1e-9)
    assert not g.inputs_with_role("param")


# -- shapes ------------------------------------------------------------------------------------
def test_flatten_and_reshape(rng):
    x4 = rng.normal(size=(3, 2, 4, 5)).astype(np.float32)
    out, g = run_layer(Flatten(), x4)
    np.testing.assert_array_equal(out, x4.reshape(3, 40))
    assert str(g.outputs[0].type) == "f32[N,40]"
    flat = rng.normal(size=(3, 784)).astype(np.float32)
    out, g = run_layer(Reshape(1, 28, 28), flat)
    np.testing.assert_array_equal(out, flat.reshape(3, 1, 28, 28))
    out, _ = run_layer(Reshape(-1, 4), flat)
    assert out.shape == (3, 196, 4)
    with pytest.raises(AttrError, match="positive ints"):
        Reshape(0, 3)


# -- convolution and pooling -------------------------------------------------------------------
def np_conv(x, w, b, stride, pad):
    x = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out + b[None, :, None, None]


def np_pool(x, k, stride, pad, how):
    fill = -np.inf if how == "max" else np.nan
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])),
               constant_values=fill)
    n, c, h, w = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = win.max(axis=(2, 3)) if how == "max" else np.nanmean(win, (2, 3))
    return out


@pytest.mark.parametrize("stride, padding, pads", [
    (1, 0, (0, 0, 0, 0)), (2, 1, (1, 1, 1, 1)), (1, "SAME", (1, 1, 1, 1)),
    (1, "valid", (0, 0, 0, 0))])
def test_conv2d_matches_numpy(rng, stride, padding, pads):
    x = rng.normal(size=(2, 3, 7, 7)).astype(np.float32)
    layer = Conv2D(4, 3, stride=stride, padding=padding, b_init=init.Normal())
    out, g = run_layer(layer, x)
    w, b = layer._values["w"], layer._values["b"]
    assert w.shape == (4, 3, 3, 3) and b.shape == (4,)
    np.testing.assert_allclose(out, np_conv(x.astype(np.float64), w, b, stride, pads),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer, k, s, pads, how", [
    (MaxPool2D(2), 2, 2, (0, 0, 0, 0), "max"),
    (MaxPool2D(3, 2, padding="same"), 3, 2, (1, 1, 1, 1), "max"),
    (AvgPool2D(2), 2, 2, (0, 0, 0, 0), "avg"),
    (AvgPool2D(3, 2, padding="same"), 3, 2, (1, 1, 1, 1), "avg"),
], ids=["max", "max_same", "avg", "avg_same"])
def test_pooling_matches_numpy(rng, layer, k, s, pads, how):
    x = rng.normal(size=(2, 3, 7, 7)).astype(np.float32)
    out, _ = run_layer(layer, x)
    np.testing.assert_allclose(out, np_pool(x, k, s, pads, how), rtol=1e-12)


def test_conv_layers_need_nchw_and_static_channels():
    with pytest.raises(ShapeError, match=r"needs an NCHW input .* found f32\[N,6\]"):
        run_layer(Conv2D(2, 3), np.ones((1, 6), np.float32))
    with pytest.raises(AttrError, match="kernel_size"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(AttrError, match="'same' or 'valid'"):
        MaxPool2D(2, padding="full")


# -- Net, naming, registration -----------------------------------------------------------------
def test_net_names_layers_and_parameters_and_scopes(x):
    net = Net([Dense(4), ReLU(), Dense(3), Tanh(), Dense(2)])
    out, g = run_layer(net, x)
    assert list(net.params) == ["net.dense1.w", "net.dense1.b", "net.dense2.w", "net.dense2.b",
                                "net.dense3.w", "net.dense3.b"]
    paths = {n.loc.path for n in g.nodes}
    assert {"net/dense1/matmul", "net/relu1/relu", "net/dense3/add", "net/tanh1/tanh"} <= paths
    p = net.params
    h = np.tanh(np.maximum(x @ p["net.dense1.w"] + p["net.dense1.b"], 0) @ p["net.dense2.w"]
                + p["net.dense2.b"])
    np.testing.assert_allclose(out, h @ p["net.dense3.w"] + p["net.dense3.b"], rtol=1e-5)
    assert "(dense2): Dense(4 -> 3)" in repr(net)


def test_seeded_nets_are_reproducible(x):
    a, b, c = (Net([Dense(5), Dense(2)], seed=s) for s in (7, 7, 8))
    for net in (a, b, c):
        run_layer(net, x)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["net.dense1.w"], c.params["net.dense1.w"])

    class Outer(Module):        # a seeded Net keeps its seed when nested in another module
        def __init__(self):
            super().__init__()
            self.net = Net([Dense(5), Dense(2)], seed=7)

        def forward(self, x):
            return self.net(x)

    outer = Outer()
    run_layer(outer, x)
    np.testing.assert_array_equal(outer.params["outer.net.dense1.w"], a.params["net.dense1.w"])


def test_custom_module_with_children_and_weight_sharing(x):
    class Twice(Module):
        def __init__(self):
            super().__init__()
            self.inner = Dense(6, b_init=init.Normal())
            self.head = Dense(1)

        def forward(self, x):
            return self.head(self.inner(self.inner(x)))      # inner used twice: shared

    m = Twice()
    out, g = run_layer(m, x)
    names = [v.name for v in g.inputs_with_role("param")]
    assert names == ["twice.inner.w", "twice.inner.b", "twice.head.w", "twice.head.b"]
    v = m.named_values()
    h = x.astype(np.float64) @ v["twice.inner.w"] + v["twice.inner.b"]
    h = h @ v["twice.inner.w"] + v["twice.inner.b"]
    np.testing.assert_allclose(out, h @ v["twice.head.w"] + v["twice.head.b"], rtol=1e-10)


def test_two_modules_with_one_name_in_one_graph_is_an_error(x):
    a, b = Net([Dense(3)]), Net([Dense(3)])
    with pytest.raises(TraceError, match="two modules are both named 'net.dense1'"):
        gc.trace(lambda x: a(x) + b(x), gc.spec(("N", 6)))
    c = Net([Dense(3)], name="other")
    g = gc.trace(lambda x: a(x) + c(x), gc.spec(("N", 6)))
    assert "other.dense1.w" in [v.name for v in g.inputs]


def test_module_errors():
    with pytest.raises(GraphcError, match="letters, digits and underscores"):
        Net([Dense(2)], name="my net")
    with pytest.raises(GraphcError, match="layer 1 must be a graphc.nn Module"):
        Net([Dense(2), "relu"])
    d = Dense(2)
    Net([d])
    with pytest.raises(GraphcError, match="already belongs to"):
        Net([d])


def test_set_and_bind_values(x):
    net = Net([Dense(2)])
    run_layer(net, x)
    net.set_values({"net.dense1.b": [1.0, 2.0]})
    np.testing.assert_array_equal(net.params["net.dense1.b"], [1, 2])
    buffers = {k: np.zeros_like(v) for k, v in net.named_values().items()}
    net.bind_values(buffers)
    buffers["net.dense1.b"][:] = 5
    assert net.params["net.dense1.b"] is buffers["net.dense1.b"]
    with pytest.raises(GraphcError, match="no parameter named 'net.dense9.w'"):
        net.set_values({"net.dense9.w": [1]})


# -- Dropout and modes -------------------------------------------------------------------------
def _dropout_graph(net):
    def f(x, step):
        with step_counter(step):
            return net(x)
    return gc.trace(f, gc.spec(("N", 400)), gc.spec((), "i64"))


def test_dropout_masks_scale_and_step_counter():
    net = Net([Dropout(0.25)])
    g = _dropout_graph(net)
    x = np.ones((50, 400), np.float32)
    a = ir.run(g, {"x": x, "step": np.array(1)})["out"]
    b = ir.run(g, {"x": x, "step": np.array(1)})["out"]
    c = ir.run(g, {"x": x, "step": np.array(2)})["out"]
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(a, b)            # same step: same mask
    assert (a != c).mean() > 0.2                   # next step: a fresh mask
    net.eval()
    g_eval = _dropout_graph(net)
    assert not any(n.op == "random_uniform" for n in g_eval.nodes)
    np.testing.assert_array_equal(ir.run(g_eval, {"x": x, "step": np.array(1)})["out"], x)
    assert net.train() is net and net[0].training
    with pytest.raises(AttrError, match=r"rate must be a number in \[0, 1\)"):
        Dropout(1.0)
