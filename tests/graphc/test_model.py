"""graphc.grad and graphc.Model: gradients of the compiled steps against float64 finite
differences (MLP and CNN), the fused step against the three-call split step, shared
parameter buffers, predict/evaluate/fit, checkpoints, modes, and every bad-input error."""
import math

import numpy as np
import pytest

import graphc as gc
import ir
from graphc import optim
from graphc.losses import MSE, SoftmaxCrossEntropy
from graphc.nn import (AvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, Net, ReLU, Tanh)
from graphc.tensor import TraceError
from ir.errors import DataError, GradientError, ShapeError, TrainingError

FEATURES, CLASSES = 5, 3


def mlp(seed=0, dropout=False):
    layers = [Dense(8), ReLU()] + ([Dropout(0.3)] if dropout else []) + [Dense(CLASSES)]
    return Net(layers, seed=seed)


def make_model(seed=0, optimizer=None, dropout=False):
    return gc.Model(mlp(seed, dropout), SoftmaxCrossEntropy(),
                    optimizer if optimizer is not None else optim.Adam(lr=0.01))


@pytest.fixture
def batch(rng):
    x = rng.normal(size=(6, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, 6)
    return x, y


def np_forward(params, x):
    h = np.maximum(x @ params["net.dense1.w"] + params["net.dense1.b"], 0)
    return h @ params["net.dense2.w"] + params["net.dense2.b"]


# -- graphc.grad ---------------------------------------------------------------------------------
def test_grad_wrt_a_param_and_a_graph_input(rng):
    w0 = rng.normal(size=(4, 3)).astype(np.float32)

    def f(x):
        w = gc.param("w", w0)
        y = x @ w
        loss = gc.sum(y * y)
        gw, gx = gc.grad(loss, wrt=[w, x])
        return {"loss": loss, "gw": gw, "gx": gx, "gw_only": gc.grad(loss, w)}

    g = gc.trace(f, gc.spec(("N", 4)))
    x = rng.normal(size=(5, 4)).astype(np.float32)
    out = ir.run(g, {"x": x}, precision="f64")
    x64, w64 = x.astype(np.float64), w0.astype(np.float64)
    np.testing.assert_allclose(out["gw"], 2 * x64.T @ (x64 @ w64), rtol=1e-10)
    np.testing.assert_allclose(out["gx"], 2 * (x64 @ w64) @ w64.T, rtol=1e-10)
    np.testing.assert_allclose(out["gw_only"], out["gw"], rtol=1e-12)


def test_grad_with_a_seed_and_an_unrelated_input(rng):
    def f(x, z):
        y = gc.tanh(x)
        gx, gz = gc.grad(y, [x, z], seed=gc.ones_like(y) * 3.0)
        return gx, gz

    g = gc.trace(f, gc.spec((3,)), gc.spec((2,)))
    x = rng.normal(size=3).astype(np.float32)
    gx, gz = (ir.run(g, {"x": x, "z": np.ones(2, np.float32)}, precision="f64")[k]
              for k in ("out0", "out1"))
    np.testing.assert_allclose(gx, 3 * (1 - np.tanh(x.astype(np.float64)) ** 2), rtol=1e-7)
    np.testing.assert_array_equal(gz, 0)


def test_grad_errors():
    with pytest.raises(GradientError, match="must be a float scalar"):
        gc.trace(lambda x: gc.grad(x * 2.0, x), gc.spec((3,)))
    other = {}
    gc.trace(lambda x: other.setdefault("t", x), gc.spec((3,)))
    with pytest.raises(TraceError, match="belongs to graph"):
        gc.trace(lambda x: gc.grad(gc.sum(x), other["t"]), gc.spec((3,)))
    with pytest.raises(TraceError, match="wrt must be a Tensor or a list"):
        gc.trace(lambda x: gc.grad(gc.sum(x), "x"), gc.spec((3,)))


# -- gradients of the compiled steps vs finite differences -------------------------------------
def finite_difference_check(model, x, y, rng, samples=5):
    """The compiled grads entry point (f32) against central differences of the same graph's
    loss evaluated in float64 by the interpreter, on a few entries of every parameter."""
    _, grads = model.backward(model.forward(x), y)
    graph = model.executable("grads", y=y).graph
    feeds = {"x": x, "y": model._prepare_y(y, len(x)), "loss_scale": np.float32(1),
             "step": np.int64(model.step_count + 1)}
    params = {k: v.copy() for k, v in model.params.items()}

    def loss(values):
        return float(ir.run(graph, {**feeds, **values}, precision="f64")["loss"])

    # params are f32 inputs (computed in f64 by the interpreter): step by an f32-representable
    # eps and divide by the step actually taken
    eps = np.float32(1e-3)
    checked = 0
    for name, value in params.items():
        for flat in rng.choice(value.size, size=min(samples, value.size), replace=False):
            idx = np.unravel_index(flat, value.shape)
            plus, minus = value.copy(), value.copy()
            plus[idx] += eps
            minus[idx] -= eps
            step = float(plus[idx]) - float(minus[idx])
            fd = (loss({**params, name: plus}) - loss({**params, name: minus})) / step
            assert grads[name][idx] == pytest.approx(fd, rel=2e-3, abs=2e-5), (name, idx)
            checked += 1
    return grads, checked


def fused_step_gradients(model, x, y):
    """With SGD(lr=1), one fused train step moves every parameter by minus its gradient."""
    before = {k: v.copy() for k, v in model.params.items()}
    model.train_step(x, y)
    return {k: before[k] - model.params[k] for k in before}


@pytest.mark.parametrize("loss_kind", ["index", "one_hot"])
def test_mlp_step_gradients_match_finite_differences(rng, loss_kind):
    net = Net([Dense(6), Tanh(), Dense(5), ReLU(), Dense(CLASSES)], seed=4)
    model = gc.Model(net, SoftmaxCrossEntropy(T=1.5), optim.SGD(lr=1.0))
    x = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.integers(0, CLASSES, 7)
    if loss_kind == "one_hot":
        y = np.eye(CLASSES, dtype=np.float32)[y]
    grads, checked = finite_difference_check(model, x, y, rng)
    assert checked == 5 * 5 + 3
    moved = fused_step_gradients(model, x, y)
    for k in grads:
        np.testing.assert_allclose(moved[k], grads[k], rtol=1e-4, atol=1e-6)


def test_cnn_step_gradients_match_finite_differences(rng):
    net = Net([Conv2D(3, 3, padding=1), ReLU(), MaxPool2D(2), Conv2D(4, 3), Tanh(),
               AvgPool2D(2), Flatten(), Dense(CLASSES)], seed=5)
    model = gc.Model(net, SoftmaxCrossEntropy(), optim.SGD(lr=1.0))
    x = rng.normal(size=(2, 2, 10, 10)).astype(np.float32)
    y = np.array([2, 0])
    grads, checked = finite_difference_check(model, x, y, rng)
    assert checked == 5 + 3 + 5 + 4 + 5 + 3 and grads["net.conv2d1.w"].shape == (3, 2, 3, 3)
    moved = fused_step_gradients(model, x, y)
    for k in grads:
        np.testing.assert_allclose(moved[k], grads[k], rtol=1e-4, atol=1e-6)


def test_loss_scale_scales_the_gradients_not_the_loss(batch):
    x, y = batch
    model = make_model()
    loss1, g1 = model.backward(model.forward(x), y)
    flat1 = g1.flat.copy()
    loss2, g2 = model.backward(model.forward(x), y, loss_scale=0.25)
    assert loss1 == loss2
    np.testing.assert_allclose(g2.flat, 0.25 * flat1, rtol=1e-6)


# -- the two-entry-point layout ----------------------------------------------------------------
def test_step_graphs_signatures_and_flat_gradient_layout(batch):
    x, y = batch
    model = make_model()
    model.train_step(x, y)
    step = model.executable("train_step", y=y).graph
    assert [(v.name, v.role) for v in step.inputs_with_role("input")] == \
        [("x", "input"), ("y", "input"), ("lr", "input"), ("step", "input"),
         ("loss_scale", "input")]
    assert str(step.input("x").type) == "f32[N,5]" and str(step.input("y").type) == "i64[N]"
    assert step.output_names[0] == "loss"
    params = list(model.params)
    slots = [f"opt.{s}.{p}" for p in params for s in ("m", "v")]
    assert set(step.aliases.values()) == set(params) | set(slots)
    assert all(step.aliases[f"new.{n}"] == n for n in step.aliases.values())
    assert model.executable("train_step", y=y).output_names == ["loss"]

    _, grads = model.backward(model.forward(x), y)
    layout = model.grad_layout
    assert layout.names == params and layout.size == 5 * 8 + 8 + 8 * 3 + 3
    assert [off for _, off, _ in layout.entries] == [0, 40, 48, 72]
    assert grads.flat.shape == (layout.size,) and grads.flat.flags.c_contiguous
    for name, off, shape in layout.entries:
        assert np.shares_memory(grads[name], grads.flat) and grads[name].shape == shape
    gg = model.executable("grads", y=y).graph
    assert [v.name for v in gg.inputs_with_role("input")] == ["x", "y", "loss_scale", "step"]
    assert gg.output_names == ["loss", "grads"] and str(gg.outputs[1].type) == "f32[75]"
    model.apply_grads(grads)
    ag = model.executable("apply").graph
    assert [v.name for v in ag.inputs_with_role("input")] == ["grads", "lr", "step"]
    assert set(ag.aliases.values()) == set(params) | set(slots) and not \
        model.executable("apply").output_names


def test_three_call_style_equals_the_fused_step(rng):
    """Same seed, same data, Dropout on: forward/backward/apply_grads reproduces train_step
    (same masks from the same step counter, same Adam state)."""
    fused, split = make_model(seed=2, dropout=True), make_model(seed=2, dropout=True)
    for step in range(3):
        x = rng.normal(size=(8, FEATURES)).astype(np.float32)
        y = rng.integers(0, CLASSES, 8)
        loss_fused = fused.train_step(x, y)
        pred = split.forward(x)
        loss_split, grads = split.backward(pred, y)
        split.apply_grads(grads)
        assert loss_split == pytest.approx(loss_fused, rel=1e-6)
        for k in fused.params:
            np.testing.assert_allclose(split.params[k], fused.params[k], rtol=1e-5, atol=1e-7)
    assert fused.step_count == split.step_count == 3
    for k in fused.optimizer.state:
        np.testing.assert_allclose(split.optimizer.state[k], fused.optimizer.state[k],
                                   rtol=1e-5, atol=1e-9)
    # grads can also come back as a dict or a flat buffer (e.g. after an allreduce)
    x = rng.normal(size=(8, FEATURES)).astype(np.float32)
    _, grads = split.backward(split.forward(x), rng.integers(0, CLASSES, 8))
    split.apply_grads(dict(grads))
    split.apply_grads(grads.flat.copy())
    assert split.step_count == 5


def test_flat_gradient_order_is_the_nets_not_the_call_order(rng):
    """A module whose children are registered in another order than they run: the grads and
    apply entry points still agree (the layout follows net.params)."""
    class Swapped(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = Dense(CLASSES)
            self.body = Dense(4)

        def forward(self, x):
            return self.head(gc.relu(self.body(x)))

    fused = gc.Model(Swapped().set_seed(1), SoftmaxCrossEntropy(), optim.SGD(lr=0.1))
    split = gc.Model(Swapped().set_seed(1), SoftmaxCrossEntropy(), optim.SGD(lr=0.1))
    split.build((FEATURES,))
    split.apply_grads({k: np.zeros_like(v) for k, v in split.params.items()})   # apply first
    assert split.grad_layout.names == ["swapped.head.w", "swapped.head.b", "swapped.body.w",
                                       "swapped.body.b"]
    x = rng.normal(size=(6, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, 6)
    fused.build((FEATURES,))
    fused.step_count = 1
    fused.train_step(x, y)
    _, grads = split.backward(split.forward(x), y)
    split.apply_grads(grads)
    for k in fused.params:
        np.testing.assert_allclose(split.params[k], fused.params[k], rtol=1e-6, atol=1e-7)


# -- shared buffers, predict, evaluate ---------------------------------------------------------
def test_predict_any_batch_size_and_sees_train_step_updates(rng, batch):
    x, y = batch
    model = make_model()
    for n in (1, 7, 130):
        xs = rng.normal(size=(n, FEATURES)).astype(np.float32)
        np.testing.assert_allclose(model.predict(xs, batch_size=64), np_forward(model.params, xs),
                                   rtol=1e-5, atol=1e-6)
    before = model.predict(x)
    model.train_step(x, y)
    after = model.predict(x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, np_forward(model.params, x), rtol=1e-5, atol=1e-6)
    exe_params = model.executable("predict").params
    for k, v in model.params.items():     # the module's arrays ARE the runtime buffers
        assert np.shares_memory(exe_params[k], v)
    assert set(model.optimizer.state) <= set(exe_params)


def test_evaluate_and_float64_inputs(rng):
    model = make_model()
    x = rng.normal(size=(50, FEATURES))             # float64: converted at the boundary
    y = rng.integers(0, CLASSES, 50)
    def macro_f1(preds, targets):
        return gc.metrics.f1(preds, targets, average="macro")

    res = model.evaluate(x, y, batch_size=16, metrics=["accuracy", macro_f1])
    logits = np_forward(model.params, x.astype(np.float32)).astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert res["loss"] == pytest.approx(-logp[np.arange(50), y].mean(), rel=1e-5)
    assert res["accuracy"] == gc.metrics.accuracy(logits, y)
    assert res["macro_f1"] == gc.metrics.f1(logits, y, average="macro")
    assert set(res) == {"loss", "accuracy", "macro_f1"}
    with pytest.raises(TrainingError, match="unknown metric 'top5'"):
        model.evaluate(x, y, metrics=["top5"])


def test_fit_history_validation_and_scheduler(rng, capsys):
    centers = rng.normal(scale=4, size=(CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, 300)
    x = (centers[y] + rng.normal(size=(300, FEATURES))).astype(np.float32)
    opt = optim.Adam(lr=0.05)
    model = make_model(optimizer=opt)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    h = model.fit(x, y, epochs=4, batch_size=32, validation_data=(x[:100], y[:100]), seed=0,
                  verbose=2, scheduler=sched)
    assert set(h) == {"loss", "time", "lr", "val_loss", "val_accuracy"}
    assert all(len(v) == 4 for v in h.values())
    assert h["lr"] == [0.05, 0.05, 0.025, 0.025]
    assert h["loss"][-1] < h["loss"][0] and h["val_accuracy"][-1] > 0.9
    assert model.step_count == 4 * 10
    assert capsys.readouterr().out.count("val_accuracy") == 4
    import threading
    before = threading.active_count()
    h1 = model.fit(x, y, epochs=1, batch_size=100, verbose=1)     # tqdm bar when installed
    assert len(h1["loss"]) == 1 and model.step_count == 43
    assert threading.active_count() == before     # no monitor thread left (it stops forking)


def test_train_and_eval_modes_switch_dropout(rng):
    model = make_model(dropout=True)
    x = rng.normal(size=(64, FEATURES)).astype(np.float32)
    train_pred = model.predict(x)
    model.eval()
    eval_pred = model.predict(x)
    np.testing.assert_allclose(eval_pred, np_forward(model.params, x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(train_pred, eval_pred)
    model.set_phase("TRAIN")
    assert model.get_phase() == "TRAIN" and model.training
    np.testing.assert_allclose(model.predict(x), train_pred)   # same step counter, same mask
    res = model.evaluate(x, np.zeros(64, np.int64))            # always eval mode
    assert model.training and np.isfinite(res["loss"])
    model.eval()
    model.fit(x, np.zeros(64, np.int64), epochs=1, batch_size=64, verbose=0)
    assert not model.training                                  # fit trained, then restored
    assert [k[:2] for k in model._entries if k[0] == "train_step"] == [("train_step", True)]


# -- checkpoints -------------------------------------------------------------------------------
def test_save_load_round_trip_restores_params_state_and_step(tmp_path, batch, rng):
    x, y = batch
    a = make_model(seed=0)
    a.train_step(x, y)
    a.train_step(x, y)
    path = tmp_path / "ckpt.bin"
    a.save(path)
    saved_pred = a.predict(x)
    assert path.exists() and not (tmp_path / "ckpt.bin.npz").exists()
    b = make_model(seed=99)
    b.load(path)                                     # not built yet: applied when it is
    np.testing.assert_array_equal(b.predict(x), a.predict(x))
    assert b.step_count == 2
    for k in a.optimizer.state:
        np.testing.assert_array_equal(b.optimizer.state[k], a.optimizer.state[k])
    a.train_step(x, y)
    b.train_step(x, y)
    for k in a.params:
        np.testing.assert_array_equal(b.params[k], a.params[k])
    a.load(path)                                     # built: copied into the live buffers
    assert a.step_count == 2
    np.testing.assert_array_equal(a.predict(x), saved_pred)
    assert not np.array_equal(b.predict(x), saved_pred)
    with np.load(path, allow_pickle=False) as f:
        assert "net.dense1.w" in f.files and "opt.m.net.dense1.w" in f.files


def test_load_names_every_difference(tmp_path, batch):
    x, y = batch
    a = make_model()
    a.train_step(x, y)
    path = tmp_path / "a.npz"
    a.save(path)
    wider = gc.Model(Net([Dense(9), ReLU(), Dense(CLASSES), Dense(2)]), SoftmaxCrossEntropy(),
                     optim.Adam())
    wider.build((FEATURES,))
    with pytest.raises(DataError) as e:
        wider.load(path)
    text = str(e.value)
    assert "missing parameters: net.dense3.w, net.dense3.b" in text
    assert "net.dense1.w has shape (5, 8) in the file but (5, 9) in the model" in text
    sgd = make_model(optimizer=optim.SGD()).build((FEATURES,))
    with pytest.raises(DataError, match="optimizer_state=False"):
        sgd.load(path)
    sgd.load(path, optimizer_state=False)
    np.testing.assert_array_equal(sgd.predict(x), a.predict(x))
    assert sgd.step_count == 0


def test_load_refuses_pickles_and_missing_files(tmp_path):
    model = make_model().build((FEATURES,))
    bad = tmp_path / "bad.npz"
    np.savez(bad, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match="cannot load without pickle"):
        model.load(bad)
    with pytest.raises(DataError, match="checkpoint not found"):
        model.load(tmp_path / "nope.npz")
    with pytest.raises(TrainingError, match="no parameters yet"):
        make_model().save(tmp_path / "x.npz")


# -- bad input -----------------------------------------------------------------------------------
def test_bad_labels_and_inputs_are_caught_before_native_code(batch):
    x, y = batch
    model = make_model()
    model.train_step(x, y)
    before = {k: v.copy() for k, v in model.params.items()}
    bad = y.copy()
    bad[3] = CLASSES
    with pytest.raises(DataError, match=r"class indices in 0..2, found label 3 at index 3"):
        model.train_step(x, bad)
    with pytest.raises(DataError, match=r"found int64 labels of shape \(6, 1\)"):
        model.train_step(x, y[:, None])
    with pytest.raises(DataError, match="x has 6 examples but y has 5"):
        model.train_step(x, y[:5])
    with pytest.raises(DataError, match=r"expected shape \[N,5\] .* found \(6, 4\)"):
        model.train_step(x[:, :4], y)
    with pytest.raises(DataError, match="non-empty batch"):
        model.predict(np.zeros((0, FEATURES), np.float32))
    with pytest.raises(DataError, match="expected numbers"):
        model.predict(np.array([["a"] * FEATURES]))
    assert model.step_count == 1
    for k in before:
        np.testing.assert_array_equal(model.params[k], before[k])


def test_nan_loss_is_reported_with_the_step_epoch_and_batch(batch):
    x, y = batch
    model = make_model()
    model.train_step(x, y)
    poisoned = x.copy()
    poisoned[2, 1] = np.nan
    with pytest.raises(TrainingError, match="loss became nan at step 2;"):
        model.train_step(poisoned, y)
    xs = np.concatenate([x, x, poisoned])
    ys = np.concatenate([y, y, y])
    model = make_model()
    with pytest.raises(TrainingError, match=r"loss became nan at step 3 \(epoch 1, batch 3\)"):
        model.fit(xs, ys, epochs=2, batch_size=6, shuffle=False, verbose=0)
    split = make_model()
    with pytest.raises(TrainingError, match="loss became nan at step 1"):
        split.backward(split.forward(poisoned), y)
    assert split.step_count == 0                      # nothing was applied


def test_misuse_errors(batch):
    x, y = batch
    model = make_model()
    with pytest.raises(TrainingError, match="call forward"):
        model.backward(np.zeros((6, CLASSES)), y)
    pred = model.forward(x)
    with pytest.raises(TrainingError, match=r"pred has shape \(5, 3\)"):
        model.backward(pred[:5], y)
    _, grads = model.backward(pred, y)
    with pytest.raises(ShapeError, match="missing"):
        model.apply_grads({"net.dense1.w": grads["net.dense1.w"]})
    with pytest.raises(DataError, match=r"must have shape \(75,\)"):
        model.apply_grads(np.zeros(74, np.float32))
    with pytest.raises(TrainingError, match="must be a graphc.nn Module"):
        gc.Model(lambda x: x, MSE(), optim.SGD())
    with pytest.raises(TrainingError, match="unknown executable kind"):
        model.executable("backward")
    with pytest.raises(TrainingError, match="positive int"):
        model.fit(x, y, epochs=0)
    assert math.isfinite(model.train_step(x, y))
