"""graphc functional ops: each one traced, run with the reference interpreter and compared
with an independent numpy implementation (several shapes, size-1 dims, symbolic batch)."""
import math

import numpy as np
import pytest

import graphc as gc
import ir
from ir.errors import AttrError, DTypeError, ShapeError

BATCHES = (1, 3, 7)


def run(fn, specs, *arrays, precision="f32"):
    g = gc.trace(fn, *specs)
    names = [v.name for v in g.inputs_with_role("input")]
    out = ir.run(g, dict(zip(names, arrays)), precision=precision)
    vals = [out[n] for n in g.output_names]
    return vals[0] if len(vals) == 1 else vals


def ops_of(g):
    return [n.op for n in g.nodes]


@pytest.fixture
def arr(rng):
    def make(*shape, dtype=np.float32, lo=-3.0, hi=3.0):
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    return make


_erf = np.vectorize(math.erf)
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805


def np_elu(x, a=1.0):
    return np.where(x > 0, x, a * np.expm1(x))


UNARY = [
    ("relu", gc.relu, lambda x: np.maximum(x, 0), None),
    ("leaky_relu", lambda x: gc.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), None),
    ("elu", lambda x: gc.elu(x, 0.7), lambda x: np_elu(x, 0.7), None),
    ("selu", gc.selu, lambda x: SELU_S * np_elu(x, SELU_A), None),
    ("gelu", gc.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))), None),
    ("gelu_true", lambda x: gc.gelu(x, approximate=True),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))), None),
    ("gelu_tanh", lambda x: gc.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))), None),
    ("sigmoid", gc.sigmoid, lambda x: 1 / (1 + np.exp(-x)), None),
    ("tanh", gc.tanh, np.tanh, None),
    ("softplus", gc.softplus, lambda x: np.logaddexp(0, x), None),
    ("softsign", gc.softsign, lambda x: x / (1 + np.abs(x)), None),
    ("exp", gc.exp, np.exp, None),
    ("log", gc.log, np.log, (0.1, 5.0)),
    ("log1p", gc.log1p, np.log1p, (-0.9, 5.0)),
    ("sqrt", gc.sqrt, np.sqrt, (0.0, 5.0)),
    ("rsqrt", gc.rsqrt, lambda x: 1 / np.sqrt(x), (0.1, 5.0)),
    ("abs", gc.abs, np.abs, None),
    ("sign", gc.sign, np.sign, None),
    ("erf", gc.erf, _erf, None),
    ("reciprocal", gc.reciprocal, lambda x: 1 / x, (0.2, 5.0)),
    ("square", gc.square, np.square, None),
    ("negative", gc.negative, np.negative, None),
]


@pytest.mark.parametrize("name,fn,ref,domain", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_match_numpy_on_a_symbolic_batch(name, fn, ref, domain, arr):
    lo, hi = domain or (-4.0, 4.0)
    g = gc.trace(fn, gc.spec(("N", 5)))
    for n in BATCHES:
        a = arr(n, 5, lo=lo, hi=hi)
        got = ir.run(g, {"x": a})["out"]
        assert got.shape == (n, 5) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref(a.astype(np.float64)), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("fn", [gc.softplus, gc.sigmoid, gc.elu, gc.selu, gc.gelu,
                                gc.softsign, gc.log_softmax, gc.softmax])
def test_activations_are_finite_on_extreme_inputs(fn):
    a = np.array([[-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4]], np.float32)
    got = run(fn, [gc.spec((1, 7))], a)
    assert np.all(np.isfinite(got)), got


def test_softplus_stable_tails():
    a = np.array([-100.0, -30.0, 0.0, 30.0, 100.0], np.float32)
    got = run(gc.softplus, [gc.spec((5,))], a, precision="f64")
    np.testing.assert_allclose(got, np.logaddexp(0, a.astype(np.float64)), rtol=1e-12,
                               atol=1e-300)


def test_activation_argument_errors():
    with pytest.raises(AttrError, match="approximate"):
        gc.trace(lambda x: gc.gelu(x, approximate="erf"), gc.spec((2,)))
    with pytest.raises(DTypeError, match="float"):
        gc.trace(gc.softplus, gc.spec((2,), "i32"))


BINARY = [
    ("add", gc.add, np.add), ("subtract", gc.subtract, np.subtract),
    ("multiply", gc.multiply, np.multiply), ("divide", gc.divide, np.divide),
    ("power", gc.power, np.power), ("maximum", gc.maximum, np.maximum),
    ("minimum", gc.minimum, np.minimum), ("less", gc.less, np.less),
    ("greater_equal", gc.greater_equal, np.greater_equal), ("equal", gc.equal, np.equal),
]


@pytest.mark.parametrize("name,fn,ref", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("sa,sb", [(("N", 4), (4,)), (("N", 1), (1, 4)), (("N", 4), ("N", 4)),
                                   ((1,), ("N", 1, 3)), ((), ("N", 2))])
def test_binary_ops_broadcast_on_a_symbolic_batch(name, fn, ref, sa, sb, arr):
    g = gc.trace(fn, gc.spec(sa), gc.spec(sb))
    for n in BATCHES:
        sh_a = tuple(n if d == "N" else d for d in sa)
        sh_b = tuple(n if d == "N" else d for d in sb)
        a, b = arr(*sh_a, lo=0.5, hi=2.0), arr(*sh_b, lo=0.5, hi=2.0)
        if name in ("equal", "less", "greater_equal"):   # small ints: ties happen
            a, b = np.round(a), np.round(b)
        got = ir.run(g, dict(a=a, b=b))["out"]
        np.testing.assert_allclose(got, ref(a, b), rtol=2e-6)


def test_maximum_minimum_propagate_nan():
    a = np.array([np.nan, 1.0, 2.0], np.float32)
    b = np.array([0.0, np.nan, 1.0], np.float32)
    mx, mn = run(lambda x, y: (gc.maximum(x, y), gc.minimum(x, y)),
                 [gc.spec((3,)), gc.spec((3,))], a, b)
    np.testing.assert_array_equal(mx, np.maximum(a, b))
    np.testing.assert_array_equal(mn, np.minimum(a, b))


def test_clip(arr):
    a = arr(4, 5)
    a[0, 0] = np.nan
    lo = arr(5)
    c1, c2, c3 = run(lambda x, l: (gc.clip(x, -1.0, 1.0), gc.clip(x, l, None),
                                   gc.clip(x, hi=0.5)), [gc.spec((4, 5)), gc.spec((5,))], a, lo)
    np.testing.assert_array_equal(c1, np.clip(a, -1, 1))
    np.testing.assert_array_equal(c2, np.maximum(a, lo))
    np.testing.assert_array_equal(c3, np.minimum(a, 0.5))


def test_where_broadcasts_all_three_operands(arr):
    c = np.array([[True], [False], [True]])
    a, b = arr(3, 4), arr(4)
    w1, w2, w3 = run(lambda cond, x, y: (gc.where(cond, x, y), gc.where(cond, x, 0.0),
                                         gc.where(x > 0, 1.0, -1.0)),
                     [gc.spec((3, 1), "bool"), gc.spec((3, 4)), gc.spec((4,))], c, a, b)
    np.testing.assert_array_equal(w1, np.where(c, a, b))
    np.testing.assert_array_equal(w2, np.where(c, a, 0.0))
    np.testing.assert_array_equal(w3, np.where(a > 0, 1.0, -1.0))
    with pytest.raises(DTypeError, match="condition must be a bool"):
        gc.trace(lambda x: gc.where(x, x, x), gc.spec((2,)))


def test_cast_and_is_finite():
    a = np.array([1.9, -1.9, np.nan, np.inf, -np.inf, 3e10], np.float32)
    i, f, b = run(lambda x: (gc.cast(x, "i32"), gc.is_finite(x), gc.cast(x, "bool")),
                  [gc.spec((6,))], a)
    np.testing.assert_array_equal(i, [1, -1, 0, 2 ** 31 - 1, -2 ** 31, 2 ** 31 - 1])
    np.testing.assert_array_equal(f, np.isfinite(a))
    np.testing.assert_array_equal(b, a != 0)


# -- reductions and normalisers -----------------------------------------------------------------
@pytest.mark.parametrize("axis,keep", [(None, False), (1, False), ((0, 2), True), (-1, False)])
def test_reductions_var_std_on_symbolic_batch(axis, keep, arr):
    fns = lambda x: (gc.sum(x, axis, keep), gc.mean(x, axis, keep), gc.max(x, axis, keep),  # noqa
                     gc.min(x, axis, keep), gc.var(x, axis, keep), gc.std(x, axis, keep))
    g = gc.trace(fns, gc.spec(("N", 4, 5)))
    for n in BATCHES:
        a = arr(n, 4, 5) + 100.0   # an offset that the naive E[x^2]-E[x]^2 form would ruin
        got = [ir.run(g, {"x": a})[k] for k in g.output_names]
        a64 = a.astype(np.float64)
        want = [a64.sum(axis, keepdims=keep), a64.mean(axis, keepdims=keep),
                a64.max(axis, keepdims=keep), a64.min(axis, keepdims=keep),
                a64.var(axis, keepdims=keep), a64.std(axis, keepdims=keep)]
        for name, g_, w in zip(["sum", "mean", "max", "min", "var", "std"], got, want):
            np.testing.assert_allclose(g_, w, rtol=1e-4, atol=1e-4, err_msg=name)


def test_argmax_functional(arr):
    a = arr(3, 4, 5)
    r = run(lambda x: (gc.argmax(x, 1), gc.argmax(x, -1, keepdims=True),
                       gc.argmax(x, keepdims=True)), [gc.spec((3, 4, 5))], a)
    np.testing.assert_array_equal(r[0], a.argmax(1))
    np.testing.assert_array_equal(r[1], a.argmax(-1, keepdims=True))
    np.testing.assert_array_equal(r[2], a.argmax(keepdims=True))
    assert r[0].dtype == np.int64


def test_mean_of_int_tensor_is_refused():
    with pytest.raises(DTypeError, match="mean needs a float tensor"):
        gc.trace(lambda x: gc.mean(x), gc.spec((3,), "i32"))


def test_reduction_axis_errors():
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        gc.trace(lambda x: gc.sum(x, 2), gc.spec((3, 4)))
    with pytest.raises(ShapeError, match="repeats"):
        gc.trace(lambda x: gc.sum(x, (0, -2)), gc.spec((3, 4)))


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_log_softmax_logsumexp(axis, arr):
    g = gc.trace(lambda x: (gc.softmax(x, axis), gc.log_softmax(x, axis),
                            gc.logsumexp(x, axis), gc.logsumexp(x, axis, keepdims=True)),
                 gc.spec(("N", 6)))
    for n in BATCHES:
        a = arr(n, 6) * 10 + 500.0    # large values: an unshifted exp would overflow
        out = ir.run(g, {"x": a})
        a64 = a.astype(np.float64)
        sm = np_softmax(a64, axis)
        lse = np.log(np.exp(a64 - a64.max(axis, keepdims=True)).sum(axis, keepdims=True)) + \
            a64.max(axis, keepdims=True)
        np.testing.assert_allclose(out["out0"], sm, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out["out1"], np.log(sm), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out["out2"], lse.squeeze(axis), rtol=1e-6)
        np.testing.assert_allclose(out["out3"], lse, rtol=1e-6)


def test_logsumexp_of_all_minus_inf_is_minus_inf():
    a = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], np.float32)
    got = run(lambda x: gc.logsumexp(x, 1), [gc.spec((2, 2))], a)
    np.testing.assert_array_equal(got, [-np.inf, 0.0])


# -- matmul and linear --------------------------------------------------------------------------
MATMUL_SHAPES = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
                 ((3, 4), (2, 4, 5)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)), ((1, 3, 4), (6, 4, 2))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul_matches_numpy(sa, sb, arr):
    a, b = arr(*sa), arr(*sb)
    got = run(lambda x, y: x @ y, [gc.spec(sa), gc.spec(sb)], a, b)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_folds_batch_axes_into_rows_for_a_2d_weight():
    g = gc.trace(lambda x, w: gc.matmul(x, w), gc.spec(("N", "T", 4)), gc.spec((4, 5)))
    assert ops_of(g) == ["reshape", "matmul", "reshape"]
    assert "broadcast" not in ops_of(g)


@pytest.mark.parametrize("n", BATCHES)
def test_symbolic_batched_matmul(n, arr):
    g = gc.trace(lambda x, y, w: (x @ y, x @ w), gc.spec(("N", 3, 4)), gc.spec(("N", 4, 2)),
                 gc.spec((4, 6)))
    a, b, w = arr(n, 3, 4), arr(n, 4, 2), arr(4, 6)
    out = ir.run(g, dict(x=a, y=b, w=w))
    np.testing.assert_allclose(out["out0"], a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["out1"], a @ w, rtol=1e-5, atol=1e-5)


def test_matmul_batch_mismatch_names_shapes():
    with pytest.raises(ShapeError, match=r"f32\[2,3,4\].*f32\[3,4,5\]"):
        gc.trace(lambda x, y: x @ y, gc.spec((2, 3, 4)), gc.spec((3, 4, 5)))


def test_linear(arr):
    x, w, b = arr(5, 3), arr(3, 2), arr(2)
    y1, y2 = run(lambda x, w, b: (gc.linear(x, w, b), gc.linear(x, w)),
                 [gc.spec(("N", 3)), gc.spec((3, 2)), gc.spec((2,))], x, w, b)
    np.testing.assert_allclose(y1, x @ w + b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y2, x @ w, rtol=1e-5, atol=1e-6)


# -- convolution and pooling --------------------------------------------------------------------
def naive_conv2d(x, w, stride, pad, dil, groups):
    """Direct loops over every output element (independent of ir's einsum reference)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    oh = (h + pad[0] + pad[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pad[1] + pad[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                rows = i * stride[0] + dil[0] * np.arange(kh)
                cols = j * stride[1] + dil[1] * np.arange(kw)
                patch = xp[:, g * cg:(g + 1) * cg][:, :, rows][:, :, :, cols]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return out


CONV_CASES = [  # (x shape, w shape, kwargs, normalised (stride, pad4, dilation, groups))
    ((2, 3, 7, 7), (4, 3, 3, 3), {}, ((1, 1), (0, 0, 0, 0), (1, 1), 1)),
    ((2, 3, 7, 7), (4, 3, 3, 3), dict(padding=1), ((1, 1), (1, 1, 1, 1), (1, 1), 1)),
    ((1, 2, 8, 6), (2, 2, 3, 2), dict(stride=2, padding=(1, 0)), ((2, 2), (1, 0, 1, 0),
                                                                  (1, 1), 1)),
    ((1, 4, 9, 9), (6, 2, 3, 3), dict(groups=2, dilation=2, padding=(0, 1, 2, 3)),
     ((1, 1), (0, 1, 2, 3), (2, 2), 2)),
    ((1, 2, 5, 5), (3, 2, 4, 4), dict(padding="same"), ((1, 1), (1, 1, 2, 2), (1, 1), 1)),
    ((1, 2, 7, 7), (3, 2, 3, 3), dict(padding="same", stride=2), ((2, 2), (1, 1, 1, 1),
                                                                   (1, 1), 1)),
    ((1, 2, 6, 6), (3, 2, 3, 3), dict(padding="valid", stride=(2, 1)),
     ((2, 1), (0, 0, 0, 0), (1, 1), 1)),
]


@pytest.mark.parametrize("xs,ws,kwargs,norm", CONV_CASES)
def test_conv2d_matches_naive_loops(xs, ws, kwargs, norm, arr):
    x, w, b = arr(*xs), arr(*ws), arr(ws[0])
    y, yb = run(lambda x, w, b: (gc.conv2d(x, w, **kwargs), gc.conv2d(x, w, b, **kwargs)),
                [gc.spec(xs), gc.spec(ws), gc.spec((ws[0],))], x, w, b)
    want = naive_conv2d(x.astype(np.float64), w.astype(np.float64), *norm)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(yb, want + b[None, :, None, None], rtol=1e-4, atol=1e-4)


def test_same_padding_keeps_spatial_size_at_stride_one():
    g = gc.trace(lambda x, w: gc.conv2d(x, w, padding="same"), gc.spec(("N", 3, 28, 28)),
                 gc.spec((8, 3, 5, 5)))
    assert g.outputs[0].type.shape[1:] == (8, 28, 28)


def test_conv2d_argument_errors():
    with pytest.raises(AttrError, match="padding"):
        gc.trace(lambda x, w: gc.conv2d(x, w, padding="full"), gc.spec((1, 1, 4, 4)),
                 gc.spec((1, 1, 3, 3)))
    with pytest.raises(ShapeError, match="bias"):
        gc.trace(lambda x, w, b: gc.conv2d(x, w, b), gc.spec((1, 1, 4, 4)),
                 gc.spec((2, 1, 3, 3)), gc.spec((3,)))
    with pytest.raises(ShapeError, match="rank-4"):
        gc.trace(lambda x, w: gc.conv2d(x, w), gc.spec((1, 4, 4)), gc.spec((1, 1, 3, 3)))


def naive_conv_transpose2d(x, w, stride, pad, out_pad, dil, groups):
    """Scatter every input element through the filter (PyTorch's definition)."""
    n, cin, h, wd = x.shape
    _, cog, kh, kw = w.shape
    cout = cog * groups
    full_h = (h - 1) * stride[0] + dil[0] * (kh - 1) + 1 + out_pad[0]
    full_w = (wd - 1) * stride[1] + dil[1] * (kw - 1) + 1 + out_pad[1]
    out = np.zeros((n, cout, full_h, full_w))
    cig = cin // groups
    for ci in range(cin):
        g = ci // cig
        for i in range(h):
            for j in range(wd):
                for a in range(kh):
                    for b in range(kw):
                        out[:, g * cog:(g + 1) * cog, i * stride[0] + a * dil[0],
                            j * stride[1] + b * dil[1]] += x[:, ci, i, j, None] * w[ci, :, a, b]
    return out[:, :, pad[0]:full_h - pad[2], pad[1]:full_w - pad[3]]


@pytest.mark.parametrize("kwargs,norm", [
    ({}, ((1, 1), (0, 0, 0, 0), (0, 0), (1, 1), 1)),
    (dict(stride=2, padding=1, output_padding=1), ((2, 2), (1, 1, 1, 1), (1, 1), (1, 1), 1)),
    (dict(stride=(2, 3), padding=(0, 1), groups=2, dilation=2),
     ((2, 3), (0, 1, 0, 1), (0, 0), (2, 2), 2)),
])
def test_conv_transpose2d(kwargs, norm, arr):
    x, w, b = arr(2, 4, 3, 4), arr(4, 3, 3, 2), arr(3 * norm[4])
    y, yb = run(lambda x, w, b: (gc.conv_transpose2d(x, w, **kwargs),
                                 gc.conv_transpose2d(x, w, b, **kwargs)),
                [gc.spec((2, 4, 3, 4)), gc.spec((4, 3, 3, 2)), gc.spec((3 * norm[4],))], x, w, b)
    want = naive_conv_transpose2d(x.astype(np.float64), w.astype(np.float64), *norm)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(yb, want + b[None, :, None, None], rtol=1e-4, atol=1e-4)


def test_conv_transpose2d_matches_torch(arr):
    torch = pytest.importorskip("torch")
    x, w = arr(2, 4, 5, 5), arr(4, 2, 3, 3)
    y = run(lambda x, w: gc.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1,
                                             groups=2),
            [gc.spec((2, 4, 5, 5)), gc.spec((4, 2, 3, 3))], x, w)
    want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w),
                                                stride=2, padding=1, output_padding=1, groups=2)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-4, atol=1e-4)


def naive_pool(x, k, s, pad, fn, fill):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])), constant_values=fill)
    oh = (h + 2 * pad[0] - k[0]) // s[0] + 1
    ow = (w + 2 * pad[1] - k[1]) // s[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = fn(xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]],
                                 axis=(2, 3))
    return out


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 1, 1), ((3, 2), (2, 1), (1, 0))])
def test_pooling_matches_naive_loops(k, s, p, arr):
    x = arr(2, 3, 7, 6)
    mp, ap = run(lambda x: (gc.max_pool2d(x, k, s, p), gc.avg_pool2d(x, k, s, p)),
                 [gc.spec(("N", 3, 7, 6))], x)
    kk = (k, k) if isinstance(k, int) else k
    ss = kk if s is None else ((s, s) if isinstance(s, int) else s)
    pp = (p, p) if isinstance(p, int) else p
    np.testing.assert_allclose(mp, naive_pool(x, kk, ss, pp, np.max, -np.inf), rtol=1e-6)
    np.testing.assert_allclose(ap, naive_pool(x, kk, ss, pp, np.mean, 0.0), rtol=1e-5,
                               atol=1e-6)


def test_pooling_modes_match_torch(arr):
    torch = pytest.importorskip("torch")
    x = arr(1, 2, 7, 7)
    mp, ap = run(lambda x: (gc.max_pool2d(x, 3, 2, 1, ceil_mode=True),
                            gc.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
                 [gc.spec((1, 2, 7, 7))], x)
    t = torch.from_numpy(x)
    F = torch.nn.functional
    np.testing.assert_allclose(mp, F.max_pool2d(t, 3, 2, 1, ceil_mode=True).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ap, F.avg_pool2d(t, 3, 2, 1, ceil_mode=True,
                                                count_include_pad=False).numpy(), rtol=1e-5)


def test_global_avg_pool2d(arr):
    x = arr(3, 4, 5, 6)
    y, yk = run(lambda x: (gc.global_avg_pool2d(x), gc.global_avg_pool2d(x, keepdims=True)),
                [gc.spec(("N", 4, 5, 6))], x)
    np.testing.assert_allclose(y, x.mean((2, 3)), rtol=1e-5)
    np.testing.assert_allclose(yk, x.mean((2, 3), keepdims=True), rtol=1e-5)


# -- shapes and data movement -------------------------------------------------------------------
def test_reshape_transpose_flatten_functional(arr):
    a = arr(2, 3, 4)
    r, t, f, e, s = run(lambda x: (gc.reshape(x, (4, -1)), gc.transpose(x, (2, 0, 1)),
                                   gc.flatten(x, 0, 1), gc.expand_dims(x, -1),
                                   gc.squeeze(gc.expand_dims(x, 1))), [gc.spec((2, 3, 4))], a)
    np.testing.assert_array_equal(r, a.reshape(4, -1))
    np.testing.assert_array_equal(t, a.transpose(2, 0, 1))
    np.testing.assert_array_equal(f, a.reshape(6, 4))
    np.testing.assert_array_equal(e, a[..., None])
    np.testing.assert_array_equal(s, a)


def test_concat_and_stack(arr):
    a, b = arr(2, 3), arr(2, 3)
    c0, c1, s0, s2, cs = run(lambda x, y: (gc.concat([x, y]), gc.concat([x, y, x], axis=-1),
                                           gc.stack([x, y]), gc.stack([x, y], axis=2),
                                           gc.concat([x, np.ones((1, 3), np.float32)])),
                             [gc.spec((2, 3)), gc.spec((2, 3))], a, b)
    np.testing.assert_array_equal(c0, np.concatenate([a, b]))
    np.testing.assert_array_equal(c1, np.concatenate([a, b, a], -1))
    np.testing.assert_array_equal(s0, np.stack([a, b]))
    np.testing.assert_array_equal(s2, np.stack([a, b], 2))
    np.testing.assert_array_equal(cs, np.concatenate([a, np.ones((1, 3))]))


def test_concat_on_symbolic_axis(arr):
    g = gc.trace(lambda x, y: gc.concat([x, y]), gc.spec(("N", 2)), gc.spec(("M", 2)))
    assert str(g.outputs[0].type) == "f32[N+M,2]" or str(g.outputs[0].type) == "f32[M+N,2]"
    a, b = arr(3, 2), arr(5, 2)
    np.testing.assert_array_equal(ir.run(g, dict(x=a, y=b))["out"], np.concatenate([a, b]))


def test_stack_and_concat_errors():
    with pytest.raises(ShapeError, match="one shape"):
        gc.trace(lambda x, y: gc.stack([x, y]), gc.spec((2, 3)), gc.spec((3, 2)))
    with pytest.raises(DTypeError, match="f64"):
        gc.trace(lambda x, y: gc.concat([x, y]), gc.spec((2,)), gc.spec((2,), "f64"))


@pytest.mark.parametrize("width", [1, (1, 2), ((0, 1), (2, 0)), ((0, 0), (0, 0))])
def test_pad(width, arr):
    a = arr(2, 3)
    got = run(lambda x: gc.pad(x, width, value=-5.0), [gc.spec((2, 3))], a)
    np.testing.assert_array_equal(got, np.pad(a, width, constant_values=-5.0))


def test_take_gather(arr):
    a = arr(4, 5)
    idx = np.array([[3, 0], [1, 1]], np.int32)
    t0, t1, tn, tt = run(lambda x, i: (gc.take(x, [2, 0, -1]), gc.take(x, [4, 0], axis=1),
                                       gc.gather(x, -2), gc.take(x, i, 1)),
                         [gc.spec((4, 5)), gc.spec((2, 2), "i32")], a, idx)
    np.testing.assert_array_equal(t0, np.take(a, [2, 0, -1], 0))
    np.testing.assert_array_equal(t1, np.take(a, [4, 0], 1))
    np.testing.assert_array_equal(tn, np.take(a, -2, 0))
    np.testing.assert_array_equal(tt, np.take(a, idx, 1))
    with pytest.raises(ShapeError, match="out of range"):
        gc.trace(lambda x: gc.take(x, [4]), gc.spec((4, 5)))


@pytest.mark.parametrize("n", BATCHES)
def test_one_hot(n, rng):
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    g = gc.trace(lambda y: gc.one_hot(y, 10), gc.spec(("N",), "i64"))
    assert ops_of(g) == ["iota", "broadcast", "equal", "cast"]
    got = ir.run(g, {"y": labels})["out"]
    np.testing.assert_array_equal(got, np.eye(10, dtype=np.float32)[labels])
    got2 = run(lambda y: gc.one_hot(y, 3, "i32"), [gc.spec((2, 2), "i32")],
               np.array([[0, 2], [5, 1]], np.int32))
    np.testing.assert_array_equal(got2, [[[1, 0, 0], [0, 0, 1]], [[0, 0, 0], [0, 1, 0]]])
    with pytest.raises(DTypeError, match="int tensor"):
        gc.trace(lambda y: gc.one_hot(y, 3), gc.spec((2,)))


def test_filled_tensors(arr):
    a = arr(3, 2)
    z, o, f, zl, ol, bt = run(lambda x: (gc.zeros(("N", 2)), gc.ones((2,), "i32"),
                                         gc.full((2, 2), 7.5), gc.zeros_like(x), gc.ones_like(x),
                                         gc.broadcast_to(x[-1:], ("N", 2))),
                              [gc.spec(("N", 2))], a)
    np.testing.assert_array_equal(z, np.zeros((3, 2)))
    np.testing.assert_array_equal(o, np.ones(2, np.int32))
    assert o.dtype == np.int32
    np.testing.assert_array_equal(f, np.full((2, 2), 7.5))
    np.testing.assert_array_equal(zl, np.zeros((3, 2)))
    np.testing.assert_array_equal(ol, np.ones((3, 2)))
    np.testing.assert_array_equal(bt, np.broadcast_to(a[-1:], (3, 2)))
    with pytest.raises(ir.DTypeError, match="float value"):
        gc.trace(lambda x: gc.full((2,), 0.5, "i32"), gc.spec((1,)))


# -- dropout ------------------------------------------------------------------------------------
def test_dropout_identity_when_not_training_or_rate_zero():
    g = gc.trace(lambda x: (gc.dropout(x, 0.5, training=False), gc.dropout(x, 0.0)),
                 gc.spec((4,)))
    assert g.nodes == [] and g.outputs[0] is g.inputs[0]


def test_dropout_mask_scale_and_rate(arr):
    g = gc.trace(lambda x: gc.dropout(x, 0.3, training=True, seed=11), gc.spec(("N", 100)))
    assert "random_uniform" in ops_of(g) and "select" in ops_of(g)
    a = arr(100, 100, lo=1.0, hi=2.0)
    y = ir.run(g, {"x": a})["out"]
    kept = y != 0
    np.testing.assert_allclose(y[kept], a[kept] / 0.7, rtol=1e-6)
    assert 0.67 < kept.mean() < 0.73          # keep probability 1 - rate
    # the mask is the counter-based uniform stream compared with the rate
    from ir.ops.random import _ref as uniform_ref
    u = uniform_ref([], {"shape": (100, 100), "seed": 11, "dtype": ir.f32})
    np.testing.assert_array_equal(kept, u >= 0.3)


def test_dropout_seeds_and_counter(arr):
    def f(x, step):
        return (gc.dropout(x, 0.5), gc.dropout(x, 0.5), gc.dropout(x, 0.5, counter=step))
    g = gc.trace(f, gc.spec((64,)), gc.spec((), "i64"))
    a = arr(64, lo=1.0, hi=2.0)
    out0 = ir.run(g, dict(x=a, step=np.array(0)))
    out1 = ir.run(g, dict(x=a, step=np.array(1)))
    assert not np.array_equal(out0["out0"] != 0, out0["out1"] != 0)      # fresh seed per call
    assert np.array_equal(out0["out0"], out1["out0"])                     # no counter: fixed
    assert not np.array_equal(out0["out2"] != 0, out1["out2"] != 0)      # counter changes it
    with pytest.raises(AttrError, match="rate"):
        gc.trace(lambda x: gc.dropout(x, 1.0), gc.spec((2,)))
