"""graphc.losses: every loss against its formula written independently in numpy (float64),
with the reference interpreter (several batch sizes through one symbolic-batch graph) and
once through compiled native code; the numpy target checks and their error messages."""
import numpy as np
import pytest

import graphc as gc
import ir
from graphc import losses as L
from ir.errors import AttrError, DataError, ShapeError
from ir.types import TensorType

BATCHES = (1, 5)


def evaluate(loss, pred, target, precision="f64"):
    """Trace loss(pred, target) on a symbolic batch and run it with the interpreter."""
    p_shape = ("N",) + pred.shape[1:]
    t_shape = ("N",) + target.shape[1:]
    t_dtype = "i64" if target.dtype.kind in "iu" else "f32"
    g = gc.trace(lambda p, t: loss(p, t), gc.spec(p_shape), gc.spec(t_shape, t_dtype))
    out = ir.run(g, {"p": pred, "t": target}, precision=precision)
    return float(out["out"])


def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_softmax_ce(logits, onehot, T=1.0, w=None):
    logp = np_log_softmax(logits.astype(np.float64) / T)
    w = np.ones(logits.shape[1]) if w is None else np.asarray(w, np.float64)
    return -(logp * onehot * w).sum() / len(logits)


@pytest.fixture
def data(rng):
    def make(n, *rest, lo=-3, hi=3):
        return rng.uniform(lo, hi, size=(n,) + rest).astype(np.float32)
    return make


@pytest.mark.parametrize("n", BATCHES)
def test_regression_losses_match_formulas(data, n):
    p, y = data(n, 3), data(n, 3)
    e = p.astype(np.float64) - y
    assert evaluate(L.MSE(), p, y) == pytest.approx(0.5 * (e ** 2).sum() / n, rel=1e-6)
    assert evaluate(L.MAE(), p, y) == pytest.approx(np.abs(e).sum() / n, rel=1e-6)
    for delta in (0.5, 1.0, 10.0):
        a = np.abs(e)
        want = np.where(a < delta, 0.5 * e ** 2, delta * a - 0.5 * delta ** 2).sum() / n
        assert evaluate(L.Huber(delta), p, y) == pytest.approx(want, rel=1e-6), delta


def test_losses_are_batch_means_of_per_example_sums(data):
    """tinynn's convention: doubling the batch with a copy of itself keeps the loss."""
    p, y = data(3, 4), data(3, 4)
    for loss in (L.MSE(), L.MAE(), L.Huber(), L.SigmoidCrossEntropy()):
        yy = (y > 0).astype(np.float32) if isinstance(loss, L.SigmoidCrossEntropy) else y
        one = evaluate(loss, p, yy)
        two = evaluate(loss, np.concatenate([p, p]), np.concatenate([yy, yy]))
        assert two == pytest.approx(one, rel=1e-9)
    # MSE of a rank-3 prediction sums every non-batch axis
    p3, y3 = data(2, 2, 3), data(2, 2, 3)
    want = 0.5 * ((p3.astype(np.float64) - y3) ** 2).sum() / 2
    assert evaluate(L.MSE(), p3, y3) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("T", [1.0, 0.5, 3.0])
def test_softmax_cross_entropy_index_and_one_hot_labels(data, rng, n, T):
    logits = data(n, 4, lo=-10, hi=10)
    labels = rng.integers(0, 4, n)
    onehot = np.eye(4)[labels]
    want = np_softmax_ce(logits, onehot, T)
    loss = L.SoftmaxCrossEntropy(T=T)
    assert evaluate(loss, logits, labels) == pytest.approx(want, rel=1e-6)
    assert evaluate(loss, logits, onehot.astype(np.float32)) == pytest.approx(want, rel=1e-6)


def test_softmax_cross_entropy_class_weights_and_soft_labels(data, rng):
    logits = data(6, 3)
    labels = rng.integers(0, 3, 6)
    w = [0.5, 2.0, 1.0]
    loss = L.SoftmaxCrossEntropy(weight=w)
    want = np_softmax_ce(logits, np.eye(3)[labels], w=w)
    # each example is weighted by its class's weight; the sum is divided by N (tinynn)
    per_example = -np_log_softmax(logits.astype(np.float64))[np.arange(6), labels]
    assert want == pytest.approx((per_example * np.take(w, labels)).sum() / 6)
    assert evaluate(loss, logits, labels) == pytest.approx(want, rel=1e-6)
    soft = rng.dirichlet(np.ones(3), size=6).astype(np.float32)
    assert evaluate(loss, logits, soft) == pytest.approx(np_softmax_ce(logits, soft, w=w),
                                                         rel=1e-6)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 0.0]], np.float32)
    labels = np.array([1, 1])
    got = evaluate(L.SoftmaxCrossEntropy(), logits, labels, precision="f32")
    assert np.isfinite(got) and got == pytest.approx(1000.0, rel=1e-6)


@pytest.mark.parametrize("n", BATCHES)
def test_sigmoid_cross_entropy(data, rng, n):
    a = data(n, 3, lo=-30, hi=30)
    y = rng.uniform(0, 1, size=(n, 3)).astype(np.float32)
    a64 = a.astype(np.float64)
    naive = -(y * np.log(1 / (1 + np.exp(-a64))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-a64))))
    assert evaluate(L.SigmoidCrossEntropy(), a, y) == pytest.approx(naive.sum() / n, rel=1e-5)
    w = np.array([1.0, 0.5, 3.0])
    got = evaluate(L.SigmoidCrossEntropy(weight=w), a, y)
    assert got == pytest.approx((naive * w).sum() / n, rel=1e-5)


def test_compiled_losses_match_the_formulas(data, rng):
    """All five losses in one compiled graph (one native compile), two batch sizes."""
    losses = {"mse": L.MSE(), "mae": L.MAE(), "huber": L.Huber(0.7),
              "sigmoid": L.SigmoidCrossEntropy()}

    def all_losses(p, t, labels):
        out = {k: loss(p, t) for k, loss in losses.items()}
        out["softmax"] = L.SoftmaxCrossEntropy(T=2.0)(p, labels)
        return out

    exe = gc.compile(gc.trace(all_losses, gc.spec(("N", 4)), gc.spec(("N", 4)),
                              gc.spec(("N",), "i64")))
    for n in (3, 64):
        p, t = data(n, 4), rng.uniform(0, 1, (n, 4)).astype(np.float32)
        labels = rng.integers(0, 4, n)
        got = exe.run({"p": p, "t": t, "labels": labels})
        e = p.astype(np.float64) - t
        a = np.abs(e)
        want = {"mse": 0.5 * (e ** 2).sum() / n, "mae": a.sum() / n,
                "huber": np.where(a < 0.7, 0.5 * e ** 2, 0.7 * a - 0.245).sum() / n,
                "sigmoid": (np.logaddexp(0, p.astype(np.float64)) - p * t).sum() / n,
                "softmax": np_softmax_ce(p, np.eye(4)[labels], T=2.0)}
        for k, v in want.items():
            assert float(got[k]) == pytest.approx(v, rel=2e-5, abs=1e-6), (k, n)


# -- numpy targets at the Python boundary ----------------------------------------------------
PRED = TensorType((ir.sym("N"), 10), ir.f32)


def test_prepare_targets_accepts_indices_and_one_hot():
    sce = L.SoftmaxCrossEntropy()
    idx = sce.prepare_targets(np.array([0, 9, 3], np.uint8), PRED)
    assert idx.dtype == np.int64 and idx.tolist() == [0, 9, 3]
    assert str(sce.target_type(idx, PRED)) == "i64[N]"
    oh = sce.prepare_targets(np.eye(10)[[1, 2]], PRED)
    assert oh.dtype == np.float32 and str(sce.target_type(oh, PRED)) == "f32[N,10]"
    reg = L.MSE().prepare_targets(np.arange(20, dtype=np.float64).reshape(2, 10), PRED)
    assert reg.dtype == np.float32
    col = L.MSE().prepare_targets(np.ones(4), TensorType((ir.sym("N"), 1), ir.f32))
    assert col.shape == (4, 1)


@pytest.mark.parametrize("labels, fragment", [
    (np.array([1, 2, 10, 3]), "found label 10 at index 2"),
    (np.array([1, -1, 0]), "found label -1 at index 1"),
    (np.array([[1], [2]]), "found int64 labels of shape (2, 1)"),
    (np.array([1.0, 2.0]), "found float64 labels of shape (2,)"),
    (np.ones((2, 9), np.float32), "one-hot rows of shape (N, 10)"),
])
def test_bad_class_labels_are_data_errors(labels, fragment):
    with pytest.raises(DataError) as e:
        L.SoftmaxCrossEntropy().prepare_targets(labels, PRED)
    assert fragment in str(e.value)


def test_bad_regression_targets_are_data_errors():
    with pytest.raises(DataError, match=r"expected targets of shape \[N,10\].*found \(3, 4\)"):
        L.MSE().prepare_targets(np.ones((3, 4)), PRED)
    with pytest.raises(DataError, match="must be numbers"):
        L.MSE().prepare_targets(np.array([["a"] * 10]), PRED)


def test_bad_loss_arguments():
    with pytest.raises(AttrError, match="temperature"):
        L.SoftmaxCrossEntropy(T=0)
    with pytest.raises(AttrError, match="delta"):
        L.Huber(-1)
    with pytest.raises(AttrError, match="weight"):
        L.SoftmaxCrossEntropy(weight=[[1, 2]])
    with pytest.raises(ShapeError, match="3 entries but the logits have 4 classes"):
        gc.trace(lambda p, t: L.SoftmaxCrossEntropy(weight=[1, 1, 1])(p, t),
                 gc.spec(("N", 4)), gc.spec(("N",), "i64"))
    with pytest.raises(ShapeError, match="integer labels must be"):
        gc.trace(lambda p, t: L.SoftmaxCrossEntropy()(p, t),
                 gc.spec(("N", 4)), gc.spec(("N", 1), "i64"))
    assert isinstance(L.get("mse"), L.MSE) and isinstance(L.get(L.Huber), L.Huber)
    with pytest.raises(AttrError, match="unknown loss"):
        L.get("hinge")
