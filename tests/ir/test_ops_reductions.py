"""reduce_sum / reduce_max / reduce_min / argmax and matmul against tests/ir/naive.py.

Reductions: any subset of axes (negative spellings too) with and without keepdims, empty
extents (the identity), NaN propagation, symbolic dims. argmax: ties go to the first index, a
NaN counts as the maximum. matmul: every transpose flag combination, batched forms, K = 0,
symbolic batch and contraction dims; the naive version is einsum with the transposes written
into its subscripts.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ir  # noqa: E402
from ir import TensorType, sym  # noqa: E402
from tests.ir import naive  # noqa: E402
from tests.ir.op_harness import check_op, one_node_graph, rand, run_op  # noqa: E402

N, K = sym("N"), sym("K")
SEEDS = st.integers(0, 2 ** 32 - 1)
REDUCTIONS = ("reduce_sum", "reduce_max", "reduce_min")


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


# -- reductions --------------------------------------------------------------------------------
@pytest.mark.parametrize("op", REDUCTIONS)
@settings(max_examples=30)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), data=st.data(),
       keepdims=st.booleans(), seed=SEEDS, dtype=st.sampled_from(["f32", "f64", "i32", "i64"]))
def test_reduction_over_any_axes(op, shape, data, keepdims, seed, dtype):
    rank = len(shape)
    axes = sorted(data.draw(st.sets(st.integers(0, rank - 1), max_size=rank))) if rank else []
    spelled = tuple(a - rank if data.draw(st.booleans()) else a for a in axes)
    x = rand(np.random.default_rng(seed), shape, dtype, -50, 50, specials=0.1)
    want = getattr(naive, op)(x, axes, keepdims)
    check_op(op, [x], want, {"axes": spelled, "keepdims": keepdims}, atol32=1e-5)


@pytest.mark.parametrize("dtype,identities", [
    ("f32", (0.0, -np.inf, np.inf)), ("f64", (0.0, -np.inf, np.inf)),
    ("i32", (0, np.iinfo(np.int32).min, np.iinfo(np.int32).max)),
    ("i64", (0, np.iinfo(np.int64).min, np.iinfo(np.int64).max))])
def test_reducing_an_empty_extent_gives_the_identity(dtype, identities):
    x = rand(np.random.default_rng(0), (3, 0, 2), dtype)
    for op, identity in zip(REDUCTIONS, identities):
        want = getattr(naive, op)(x, (1,), False)
        assert want.shape == (3, 2) and np.all(want == identity)
        check_op(op, [x], want, {"axes": (1,)})
        check_op(op, [x], getattr(naive, op)(x, (0, 1, 2), True), {"axes": (0, 1, 2),
                                                                    "keepdims": True})


def test_nan_propagates_through_every_float_reduction():
    x = np.array([[1.0, np.nan, 3.0], [np.inf, -np.inf, 2.0], [np.inf, 1.0, np.inf]], np.float32)
    for op in REDUCTIONS:
        (row,), _ = run_op(op, [x], {"axes": (1,)})
        assert np.isnan(row[0]), op
    (s,), _ = run_op("reduce_sum", [x], {"axes": (1,)})
    assert np.isnan(s[1]) and s[2] == np.inf        # inf + -inf is NaN; inf + inf stays inf
    for op in REDUCTIONS:
        check_op(op, [x], getattr(naive, op)(x, (0,), False), {"axes": (0,)})


@pytest.mark.parametrize("op", REDUCTIONS)
@pytest.mark.parametrize("n", [1, 3, 7])
def test_reduction_with_symbolic_batch(op, n):
    x = rand(np.random.default_rng(n), (n, 4, 2))
    for axes, keep, shape in (((0,), False, (4, 2)), ((1, 2), True, (N, 1, 1)),
                              ((), False, (N, 4, 2)), ((0, 1, 2), False, ())):
        (_,), g = run_op(op, [x], {"axes": axes, "keepdims": keep}, in_types=[T(N, 4, 2)])
        assert g.outputs[0].type.shape == shape
        check_op(op, [x], getattr(naive, op)(x, axes, keep), {"axes": axes, "keepdims": keep},
                 in_types=[T(N, 4, 2)], atol32=1e-5)


# -- argmax ------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5), data=st.data(),
       keepdims=st.booleans(), seed=SEEDS, dtype=st.sampled_from(["f32", "f64", "i32", "i64"]))
def test_argmax(shape, data, keepdims, seed, dtype):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    # few distinct values: many ties
    x = rand(np.random.default_rng(seed), shape, dtype, -2, 2)
    if dtype.startswith("f"):
        x = np.round(x)
        x[np.random.default_rng(seed).random(shape) < 0.1] = np.nan
    check_op("argmax", [x], naive.argmax(x, axis, keepdims), {"axis": axis,
                                                                "keepdims": keepdims})


def test_argmax_ties_and_nan():
    x = np.array([[1, 3, 3, 2], [1, np.nan, 5, np.nan], [-np.inf, -np.inf, -np.inf, -np.inf],
                  [np.inf, 2, np.nan, np.inf], [0.0, -0.0, 0.0, -1]], np.float32)
    want = np.array([1, 1, 0, 2, 0], np.int64)
    assert np.array_equal(naive.argmax(x, 1, False), want)
    check_op("argmax", [x], want, {"axis": 1})
    check_op("argmax", [x], want.reshape(5, 1), {"axis": -1, "keepdims": True})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_argmax_symbolic_batch(n):
    x = rand(np.random.default_rng(n), (n, 6))
    check_op("argmax", [x], naive.argmax(x, 1, False), {"axis": 1}, in_types=[T(N, 6)])
    check_op("argmax", [x], naive.argmax(x, 0, True), {"axis": 0, "keepdims": True},
             in_types=[T(N, 6)])


def test_argmax_of_an_empty_axis_is_an_error():
    with pytest.raises(ir.ShapeError, match=r"argmax: axis 1 of f32\[3,0\] is empty"):
        one_node_graph("argmax", [T(3, 0)], {"axis": 1})
    g = one_node_graph("argmax", [T(2, N)], {"axis": 1})
    with pytest.raises(ir.InterpreterError, match="empty"):
        ir.run(g, [np.zeros((2, 0), np.float32)])
    # an empty non-reduced axis is fine: an empty result
    check_op("argmax", [np.zeros((0, 3), np.float32)], np.zeros((0,), np.int64), {"axis": 1})


# -- matmul ------------------------------------------------------------------------------------
@settings(max_examples=60)
@given(batch=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3),
       mkn=st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)),
       ta=st.booleans(), tb=st.booleans(), seed=SEEDS,
       dtype=st.sampled_from(["f32", "f64", "i32", "i64"]))
def test_matmul(batch, mkn, ta, tb, seed, dtype):
    m, k, n = mkn
    rng = np.random.default_rng(seed)
    a = rand(rng, batch + ((k, m) if ta else (m, k)), dtype, -3, 3)
    b = rand(rng, batch + ((n, k) if tb else (k, n)), dtype, -3, 3)
    want = naive.matmul(a, b, ta, tb)
    assert want.shape == batch + (m, n)
    check_op("matmul", [a, b], want, {"transpose_a": ta, "transpose_b": tb}, atol32=2e-6)


def test_matmul_with_empty_contraction_is_zero():
    a, b = np.ones((3, 0), np.float32), np.ones((0, 4), np.float32)
    check_op("matmul", [a, b], np.zeros((3, 4)))


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("n", [1, 3, 7])
def test_matmul_symbolic_dims(ta, tb, n):
    rng = np.random.default_rng(n)
    attrs = {"transpose_a": ta, "transpose_b": tb}
    # a symbolic row count (the batch of a dense layer)
    a, b = rand(rng, (4, n) if ta else (n, 4)), rand(rng, (3, 4) if tb else (4, 3))
    types = [T(4, N) if ta else T(N, 4), T(*b.shape)]
    check_op("matmul", [a, b], naive.matmul(a, b, ta, tb), attrs, in_types=types, atol32=1e-5)
    # a symbolic contraction dim (a weight gradient: x^T @ dy over the batch)
    types = [T(*([N, 4] if ta else [4, N])), T(*([2, N] if tb else [N, 2]))]
    x = rand(rng, (n, 4)) if ta else rand(rng, (4, n))
    dy = rand(rng, (2, n)) if tb else rand(rng, (n, 2))
    (_,), g = run_op("matmul", [x, dy], attrs, in_types=types)
    assert g.outputs[0].type.shape == (4, 2)
    check_op("matmul", [x, dy], naive.matmul(x, dy, ta, tb), attrs, in_types=types,
             atol32=1e-5)
    # batched with a symbolic batch axis
    p, q = rand(rng, (n, 3, 2) if ta else (n, 2, 3)), rand(rng, (n, 4, 3) if tb else (n, 3, 4))
    types = [T(N, *p.shape[1:]), T(N, *q.shape[1:])]
    check_op("matmul", [p, q], naive.matmul(p, q, ta, tb), attrs, in_types=types, atol32=1e-5)
