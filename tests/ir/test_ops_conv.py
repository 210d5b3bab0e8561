"""conv2d and its two gradient forms against the loop-nest definitions in tests/ir/naive.py,
and against each other: the adjoint identity <conv(x,w), dy> == <x, grad_input(dy,w)> ==
<w, grad_filter(x,dy)> and central finite differences, in float64.

Attributes cover stride, asymmetric padding, dilation and groups (depthwise included).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ir  # noqa: E402
from ir import TensorType, sym  # noqa: E402
from tests.ir import naive  # noqa: E402
from tests.ir.op_harness import check_op, rand, run_op  # noqa: E402

N = sym("N")


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


@st.composite
def conv_configs(draw, max_hw=6):
    """(x shape, w shape, attrs) of a valid convolution."""
    groups = draw(st.integers(1, 3))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    assume(h + padding[0] + padding[2] >= dilation[0] * (kh - 1) + 1)
    assume(w + padding[1] + padding[3] >= dilation[1] * (kw - 1) + 1)
    n = draw(st.integers(1, 2))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return (n, cg * groups, h, w), (og * groups, cg, kh, kw), attrs


def out_shape(x_shape, w_shape, attrs):
    s, p, d = attrs["stride"], attrs["padding"], attrs["dilation"]
    return (x_shape[0], w_shape[0],
            naive.conv_out(x_shape[2], w_shape[2], s[0], p[0], p[2], d[0]),
            naive.conv_out(x_shape[3], w_shape[3], s[1], p[1], p[3], d[1]))


def run64(op, arrays, attrs):
    (y,), _ = run_op(op, [a.astype(np.float64) for a in arrays], attrs, precision="f64")
    return y


@settings(max_examples=30)
@given(cfg=conv_configs(), seed=st.integers(0, 2 ** 32 - 1))
def test_conv2d_and_gradients_match_the_loop_nest(cfg, seed):
    x_shape, w_shape, attrs = cfg
    rng = np.random.default_rng(seed)
    x, w = rand(rng, x_shape, low=-1, high=1), rand(rng, w_shape, low=-1, high=1)
    dy = rand(rng, out_shape(x_shape, w_shape, attrs), low=-1, high=1)
    check_op("conv2d", [x, w], naive.conv2d(x, w, **attrs), attrs, atol32=1e-5)
    gi = dict(attrs, input_hw=x_shape[2:])
    check_op("conv2d_grad_input", [dy, w], naive.conv2d_grad_input(dy, w, x_shape[2:], **attrs),
             gi, atol32=1e-5)
    gf = dict(attrs, kernel_hw=w_shape[2:])
    check_op("conv2d_grad_filter", [x, dy],
             naive.conv2d_grad_filter(x, dy, w_shape[2:], **attrs), gf, atol32=1e-5)


@settings(max_examples=30)
@given(cfg=conv_configs(max_hw=8), seed=st.integers(0, 2 ** 32 - 1))
def test_adjoint_identity(cfg, seed):
    """The gradient forms are the adjoints of conv2d in each argument: exact up to rounding."""
    x_shape, w_shape, attrs = cfg
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, attrs))
    y = run64("conv2d", [x, w], attrs)
    dx = run64("conv2d_grad_input", [dy, w], dict(attrs, input_hw=x_shape[2:]))
    dw = run64("conv2d_grad_filter", [x, dy], dict(attrs, kernel_hw=w_shape[2:]))
    lhs = np.vdot(y, dy)
    scale = np.vdot(np.abs(y), np.abs(dy)) + 1e-30
    assert abs(lhs - np.vdot(x, dx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, dw)) <= 1e-12 * scale


@pytest.mark.parametrize("attrs", [
    {"stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1), "groups": 1},
    {"stride": (2, 3), "padding": (1, 0, 2, 1), "dilation": (1, 2), "groups": 2},
    {"stride": (1, 2), "padding": (2, 2, 0, 1), "dilation": (2, 1), "groups": 4},   # depthwise
])
def test_gradients_match_finite_differences(attrs):
    """L(x, w) = <conv(x, w), dy>; central differences of L against both gradient forms."""
    rng = np.random.default_rng(5)
    g = attrs["groups"]
    x_shape, w_shape = (2, 4, 6, 5), (4 if g == 4 else 6, 4 // g, 3, 2)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    dy = rng.standard_normal(out_shape(x_shape, w_shape, attrs))

    def loss(xv, wv):
        return float(np.vdot(run64("conv2d", [xv, wv], attrs), dy))

    dx = run64("conv2d_grad_input", [dy, w], dict(attrs, input_hw=x_shape[2:]))
    dw = run64("conv2d_grad_filter", [x, dy], dict(attrs, kernel_hw=w_shape[2:]))
    eps = 1e-3
    for arr, grad, which in ((x, dx, "x"), (w, dw, "w")):
        for flat in rng.choice(arr.size, size=12, replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = (plus, w) if which == "x" else (x, plus)
            args_m = (minus, w) if which == "x" else (x, minus)
            fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
            assert abs(fd - grad[idx]) <= 1e-7 * (1 + abs(fd)), (which, idx, fd, grad[idx])


def test_grad_input_leaves_uncovered_rows_at_zero():
    """stride 3 with a 2-row window never reads rows 2 and 5: their gradient is exactly 0."""
    attrs = {"stride": (3, 1), "input_hw": (6, 2)}
    dy, w = np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 2, 1), np.float32)
    want = naive.conv2d_grad_input(dy, w, (6, 2), stride=(3, 1))
    assert want[0, 0, :, 0].tolist() == [1, 1, 0, 1, 1, 0]
    check_op("conv2d_grad_input", [dy, w], want, attrs)


def test_depthwise_convolution():
    rng = np.random.default_rng(2)
    x, w = rand(rng, (2, 5, 7, 6), low=-1, high=1), rand(rng, (10, 1, 3, 3), low=-1, high=1)
    attrs = {"padding": (1, 1, 1, 1), "groups": 5, "stride": (2, 2)}
    check_op("conv2d", [x, w], naive.conv2d(x, w, **attrs), attrs, atol32=1e-5)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_conv_family_with_symbolic_batch(n):
    rng = np.random.default_rng(n)
    attrs = {"stride": (1, 2), "padding": (0, 1, 1, 0), "dilation": (2, 1), "groups": 1}
    x, w = rand(rng, (n, 3, 5, 5), low=-1, high=1), rand(rng, (2, 3, 2, 3), low=-1, high=1)
    y_shape = out_shape(x.shape, w.shape, attrs)
    dy = rand(rng, y_shape, low=-1, high=1)
    (_,), g = run_op("conv2d", [x, w], attrs, in_types=[T(N, 3, 5, 5), T(2, 3, 2, 3)])
    assert g.outputs[0].type.shape == (N,) + y_shape[1:]
    check_op("conv2d", [x, w], naive.conv2d(x, w, **attrs), attrs,
             in_types=[T(N, 3, 5, 5), T(2, 3, 2, 3)], atol32=1e-5)
    check_op("conv2d_grad_input", [dy, w], naive.conv2d_grad_input(dy, w, (5, 5), **attrs),
             dict(attrs, input_hw=(5, 5)), in_types=[T(N, *y_shape[1:]), T(2, 3, 2, 3)],
             atol32=1e-5)
    check_op("conv2d_grad_filter", [x, dy], naive.conv2d_grad_filter(x, dy, (2, 3), **attrs),
             dict(attrs, kernel_hw=(2, 3)), in_types=[T(N, 3, 5, 5), T(N, *y_shape[1:])],
             atol32=1e-5)


def test_conv_in_f64_graphs():
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 2, 2))
    check_op("conv2d", [x, w], naive.conv2d(x, w))
    assert ir.dtype(x.dtype) is ir.f64
