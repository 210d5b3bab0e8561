"""max_pool2d / avg_pool2d and their gradients against explicit window loops following
PyTorch's rules (output size, ceil_mode's dropped last window, count_include_pad divisor),
plus finite differences of the pooling references and the max-gradient tie rule."""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import TensorType, sym  # noqa: E402
from tests.ir import naive  # noqa: E402
from tests.ir.op_harness import check_op, rand, run_op  # noqa: E402

N, C = sym("N"), sym("C")


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


@st.composite
def pool_configs(draw):
    """(x shape, attrs, count_include_pad) with PyTorch's constraint pad <= kernel / 2, so no
    window lies wholly in the padding."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)),
               draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    h, w = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    assume(h + padding[0] + padding[2] >= kernel[0] and w + padding[1] + padding[3] >= kernel[1])
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    attrs = {"kernel": kernel, "stride": stride, "padding": padding,
             "ceil_mode": draw(st.booleans())}
    return shape, attrs, draw(st.booleans())


def run64(op, arrays, attrs):
    (y,), _ = run_op(op, [a.astype(np.float64) for a in arrays], attrs, precision="f64")
    return y


@settings(max_examples=50)
@given(cfg=pool_configs(), seed=st.integers(0, 2 ** 32 - 1), ties=st.booleans())
def test_pooling_and_gradients_match_window_loops(cfg, seed, ties):
    shape, attrs, cip = cfg
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, low=-3, high=3)
    if ties:
        x = np.round(x)        # many equal maxima: the gradient's first-max rule decides
    out_hw = naive.pool_out_hw(shape, attrs["kernel"], attrs["stride"], attrs["padding"],
                               attrs["ceil_mode"])
    dy = rand(rng, shape[:2] + out_hw)
    check_op("max_pool2d", [x], naive.max_pool2d(x, **attrs), attrs)
    check_op("max_pool2d_grad", [x, dy], naive.max_pool2d_grad(x, dy, **attrs), attrs)
    avg = dict(attrs, count_include_pad=cip)
    check_op("avg_pool2d", [x], naive.avg_pool2d(x, count_include_pad=cip, **attrs), avg)
    check_op("avg_pool2d_grad", [dy],
             naive.avg_pool2d_grad(dy, shape[2:], count_include_pad=cip, **attrs),
             dict(avg, input_hw=shape[2:]))


@pytest.mark.parametrize("size,k,s,lo,hi,ceil,want", [
    (5, 2, 2, 0, 0, False, 2), (5, 2, 2, 0, 0, True, 3),      # ceil keeps the partial window
    (4, 2, 2, 1, 1, True, 3), (6, 3, 2, 1, 1, True, 4), (6, 3, 2, 1, 1, False, 3),
    (2, 1, 2, 1, 1, True, 2),     # ceil's last window would start in the bottom padding: drop
    (7, 3, 3, 0, 0, True, 3), (1, 1, 1, 0, 0, False, 1), (3, 3, 1, 0, 0, True, 1),
])
def test_output_size_follows_pytorch(size, k, s, lo, hi, ceil, want):
    assert naive.pool_out(size, k, s, lo, hi, ceil) == want
    attrs = {"kernel": (k, 1), "stride": (s, 1), "padding": (lo, 0, hi, 0), "ceil_mode": ceil}
    x = np.arange(size, dtype=np.float32).reshape(1, 1, size, 1)
    for op, extra in (("max_pool2d", {}), ("avg_pool2d", {"count_include_pad": False})):
        (y,), g = run_op(op, [x], dict(attrs, **extra))
        assert y.shape == (1, 1, want, 1)


def test_avg_divisor_rules_with_asymmetric_padding_and_ceil_mode():
    """Window areas: clipped to the padded input (count_include_pad) or to the real input."""
    x = np.ones((1, 1, 4, 5), np.float32)
    attrs = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 0, 0, 1), "ceil_mode": True}
    for cip in (True, False):
        want = naive.avg_pool2d(x, count_include_pad=cip, **attrs)
        if not cip:
            assert np.all(want == 1.0)     # the mean of ones over real elements only
        else:
            assert want.min() < 1.0        # padding counts as zeros in some windows
        check_op("avg_pool2d", [x], want, dict(attrs, count_include_pad=cip))


@pytest.mark.parametrize("attrs", [
    {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0), "ceil_mode": False},
    {"kernel": (3, 2), "stride": (1, 2), "padding": (1, 1, 1, 0), "ceil_mode": True},
    {"kernel": (3, 3), "stride": (2, 1), "padding": (0, 1, 1, 1), "ceil_mode": True},
])
def test_gradients_match_finite_differences(attrs):
    rng = np.random.default_rng(3)
    shape = (2, 2, 5, 6)
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1
    out_hw = naive.pool_out_hw(shape, attrs["kernel"], attrs["stride"], attrs["padding"],
                               attrs["ceil_mode"])
    dy = rng.standard_normal(shape[:2] + out_hw)
    avg = dict(attrs, count_include_pad=False)
    grads = {"max_pool2d": run64("max_pool2d_grad", [x, dy], attrs),
             "avg_pool2d": run64("avg_pool2d_grad", [dy], dict(avg, input_hw=shape[2:]))}
    eps = 1e-3    # distinct values 0.1 apart: the argmax of every window is stable under eps
    for op, grad in grads.items():
        op_attrs = attrs if op == "max_pool2d" else avg
        for flat in rng.choice(x.size, size=20, replace=False):
            idx = np.unravel_index(flat, shape)
            plus, minus = x.copy(), x.copy()
            plus[idx] += eps
            minus[idx] -= eps
            fd = (np.vdot(run64(op, [plus], op_attrs), dy) -
                  np.vdot(run64(op, [minus], op_attrs), dy)) / (2 * eps)
            assert abs(fd - grad[idx]) <= 1e-8 * (1 + abs(fd)), (op, idx, fd, grad[idx])


def test_max_gradient_goes_to_the_first_maximum_of_each_window():
    x = np.array([[5, 5, 1],
                  [5, 2, 5],
                  [0, 5, 5]], np.float32).reshape(1, 1, 3, 3)
    attrs = {"kernel": (2, 2), "stride": (1, 1)}
    dy = np.array([[1, 10], [100, 1000]], np.float32).reshape(1, 1, 2, 2)
    # windows scan row by row: each window's first 5 is its top-left-most one
    want = np.zeros((3, 3))
    want[0, 0] = 1          # window (0,0): 5 at (0,0)
    want[0, 1] = 10         # window (0,1): 5 at (0,1)
    want[1, 0] = 100        # window (1,0): 5 at (1,0)
    want[1, 2] = 1000       # window (1,1): first 5 in scan order of rows 1-2, cols 1-2 is (1,2)
    assert np.array_equal(naive.max_pool2d_grad(x, dy, **attrs)[0, 0], want)
    check_op("max_pool2d_grad", [x, dy], want.reshape(1, 1, 3, 3), attrs)


def test_max_gradient_nan_counts_as_the_maximum():
    x = np.array([1, np.nan, 7, np.nan], np.float32).reshape(1, 1, 1, 4)
    dy = np.array([3.0], np.float32).reshape(1, 1, 1, 1)
    attrs = {"kernel": (1, 4)}
    check_op("max_pool2d", [x], np.full((1, 1, 1, 1), np.nan), attrs)
    check_op("max_pool2d_grad", [x, dy], np.array([0, 3, 0, 0.0]).reshape(1, 1, 1, 4), attrs)


def test_max_gradient_of_an_all_minus_inf_window_stays_in_the_input():
    """A padded window of -inf values: the gradient goes to its first real element, never to
    the padding (where it would be lost)."""
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    dy = np.ones((1, 1, 2, 2), np.float32)
    attrs = {"kernel": (2, 2), "padding": (1, 1, 0, 0)}
    want = naive.max_pool2d_grad(x, dy, **attrs)
    assert want.sum() == 4
    check_op("max_pool2d", [x], naive.max_pool2d(x, **attrs), attrs)
    check_op("max_pool2d_grad", [x, dy], want, attrs)


@pytest.mark.parametrize("n,c", [(1, 1), (3, 2), (7, 3)])
def test_pooling_with_symbolic_batch_and_channels(n, c):
    rng = np.random.default_rng(n)
    attrs = {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 0, 1, 1), "ceil_mode": True}
    x = rand(rng, (n, c, 5, 4))
    out_hw = naive.pool_out_hw(x.shape, (3, 2), (2, 1), (1, 0, 1, 1), True)
    dy = rand(rng, (n, c) + out_hw)
    tx, tdy = T(N, C, 5, 4), T(N, C, *out_hw)
    (_,), g = run_op("max_pool2d", [x], attrs, in_types=[tx])
    assert g.outputs[0].type.shape == (N, C) + out_hw
    check_op("max_pool2d", [x], naive.max_pool2d(x, **attrs), attrs, in_types=[tx])
    check_op("max_pool2d_grad", [x, dy], naive.max_pool2d_grad(x, dy, **attrs), attrs,
             in_types=[tx, tdy])
    avg = dict(attrs, count_include_pad=True)
    check_op("avg_pool2d", [x], naive.avg_pool2d(x, count_include_pad=True, **attrs), avg,
             in_types=[tx])
    check_op("avg_pool2d_grad", [dy], naive.avg_pool2d_grad(dy, (5, 4), **attrs),
             dict(avg, input_hw=(5, 4)), in_types=[tdy])
