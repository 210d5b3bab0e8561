"""Data-movement ops (constant, iota, dim_value, broadcast, reshape, transpose, slice, pad,
concat, gather) against the index loops of tests/ir/naive.py, with static and symbolic shapes."""
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

N, M = sym("N"), sym("M")
SEEDS = st.integers(0, 2 ** 32 - 1)
DTYPES = ["f32", "f64", "i32", "i64", "bool"]


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


# -- constant, iota, dim_value -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_returns_its_value_in_both_precisions(dtype):
    value = rand(np.random.default_rng(0), (2, 3), dtype, specials=0.4)
    check_op("constant", [], value, {"value": value})
    scalar = value.reshape(-1)[:1].reshape(())
    check_op("constant", [], scalar, {"value": scalar})


@settings(max_examples=30)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
       data=st.data(), dtype=st.sampled_from(["f32", "f64", "i32", "i64"]))
def test_iota(shape, data, dtype):
    axis = data.draw(st.integers(0, len(shape) - 1))
    want = naive.iota(shape, axis, np.dtype(ir.dtype(dtype).np_dtype))
    check_op("iota", [], want, {"shape": shape, "axis": axis, "dtype": dtype})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_iota_with_symbolic_shape(n):
    want = naive.iota((2, n, 3), 1, np.int64)
    check_op("iota", [], want, {"shape": (2, N, 3), "axis": 1}, env={"N": n})


@pytest.mark.parametrize("n,m", [(1, 1), (3, 2), (7, 5)])
def test_dim_value_evaluates_symbolic_dims(n, m):
    check_op("dim_value", [], np.array(5, np.int64), {"dim": 5})
    dim = 3 * N * M + 2
    check_op("dim_value", [], np.array(3 * n * m + 2, np.int64), {"dim": dim},
             env={"N": n, "M": m})
    check_op("dim_value", [], np.array(n, np.float64), {"dim": N, "dtype": "f32"},
             env={"N": n})
    check_op("dim_value", [], np.array(n, np.int32), {"dim": N, "dtype": "i32"}, env={"N": n})


# -- broadcast ---------------------------------------------------------------------------------
@settings(max_examples=40)
@given(target=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), data=st.data(),
       seed=SEEDS)
def test_broadcast(target, data, seed):
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, max(len(target) - 1, 0)),
                                          max_size=len(target)))))
    shape = tuple(data.draw(st.sampled_from([1, target[d]])) for d in dims)
    x = rand(np.random.default_rng(seed), shape, data.draw(st.sampled_from(DTYPES)))
    check_op("broadcast", [x], naive.broadcast(x, target, dims),
             {"shape": target, "dims": dims})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_broadcast_symbolic(n):
    x = rand(np.random.default_rng(n), (n, 1))
    check_op("broadcast", [x], naive.broadcast(x, (2, n, 3), (1, 2)),
             {"shape": (2, N, 3), "dims": (1, 2)}, in_types=[T(N, 1)])
    b = rand(np.random.default_rng(n), (3,))        # a bias row stretched over the batch
    check_op("broadcast", [b], naive.broadcast(b, (n, 3), (1,)), {"shape": (N, 3), "dims": (1,)},
             env={"N": n})


# -- reshape, transpose ------------------------------------------------------------------------
@settings(max_examples=40)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), data=st.data(),
       seed=SEEDS)
def test_reshape(shape, data, seed):
    x = rand(np.random.default_rng(seed), shape, data.draw(st.sampled_from(DTYPES)))
    flat = [d for d in data.draw(st.permutations(shape))]
    # a new shape with the same element count: merge random neighbours, maybe add 1s
    target = []
    for d in flat:
        if target and data.draw(st.booleans()):
            target[-1] *= d
        else:
            target.append(d)
    if data.draw(st.booleans()):
        target.insert(data.draw(st.integers(0, len(target))), 1)
    check_op("reshape", [x], naive.reshape(x, tuple(target)), {"shape": tuple(target)})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_reshape_symbolic(n):
    x = rand(np.random.default_rng(n), (n, 6))
    check_op("reshape", [x], naive.reshape(x, (2 * n, 3)), {"shape": (2 * N, 3)},
             in_types=[T(N, 6)])
    check_op("reshape", [x], naive.reshape(x, (6 * n,)), {"shape": (6 * N,)}, in_types=[T(N, 6)])


@settings(max_examples=40)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4), data=st.data(),
       seed=SEEDS)
def test_transpose(shape, data, seed):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    x = rand(np.random.default_rng(seed), shape, data.draw(st.sampled_from(DTYPES)))
    check_op("transpose", [x], naive.transpose(x, perm), {"perm": perm})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_transpose_symbolic(n):
    x = rand(np.random.default_rng(n), (n, 2, 3))
    check_op("transpose", [x], naive.transpose(x, (1, 2, 0)), {"perm": (1, 2, 0)},
             in_types=[T(N, 2, 3)])


# -- slice -------------------------------------------------------------------------------------
@settings(max_examples=50)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=7), data=st.data(),
       seed=SEEDS)
def test_slice(shape, data, seed):
    starts, stops, steps = [], [], []
    for d in shape:
        lo = data.draw(st.integers(0, d))
        starts.append(lo)
        stops.append(data.draw(st.integers(lo, d)))
        steps.append(data.draw(st.integers(1, 4)))
    x = rand(np.random.default_rng(seed), shape, data.draw(st.sampled_from(DTYPES)))
    attrs = {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)}
    check_op("slice", [x], naive.slice_(x, starts, stops, steps), attrs)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_slice_with_symbolic_stop(n):
    """x[0:N-1] on a symbolic axis: the type is N-1, empty when N is 1."""
    x = rand(np.random.default_rng(n), (n, 5))
    attrs = {"starts": (0, 1), "stops": (N - 1, 5), "steps": (1, 3)}
    (y,), g = run_op("slice", [x], attrs, in_types=[T(N, 5)])
    assert g.outputs[0].type.shape == (N - 1, 2)
    check_op("slice", [x], naive.slice_(x, (0, 1), (n - 1, 5), (1, 3)), attrs,
             in_types=[T(N, 5)])
    # the last two rows: a symbolic window of static length, so a step is allowed
    if n >= 2:
        attrs = {"starts": (N - 2, 0), "stops": (N, 5), "steps": (2, 1)}
        check_op("slice", [x], naive.slice_(x, (n - 2, 0), (n, 5), (2, 1)), attrs,
                 in_types=[T(N, 5)])


# -- pad ---------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), data=st.data(),
       seed=SEEDS, value=st.sampled_from([0.0, -1.5, 2.0, float("nan"), float("inf")]))
def test_pad(shape, data, seed, value):
    low = tuple(data.draw(st.integers(0, 3)) for _ in shape)
    high = tuple(data.draw(st.integers(0, 3)) for _ in shape)
    dtype = data.draw(st.sampled_from(DTYPES if np.isfinite(value) else ["f32", "f64"]))
    x = rand(np.random.default_rng(seed), shape, dtype)
    check_op("pad", [x], naive.pad(x, low, high, value), {"low": low, "high": high,
                                                          "value": value})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_pad_symbolic(n):
    x = rand(np.random.default_rng(n), (n, 2))
    attrs = {"low": (2, 1), "high": (1, 0), "value": -3.0}
    (y,), g = run_op("pad", [x], attrs, in_types=[T(N, 2)])
    assert g.outputs[0].type.shape == (N + 3, 3)
    check_op("pad", [x], naive.pad(x, (2, 1), (1, 0), -3.0), attrs, in_types=[T(N, 2)])


# -- concat ------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(base=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), data=st.data(),
       count=st.integers(1, 4), seed=SEEDS)
def test_concat(base, data, count, seed):
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    dtype = data.draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(seed)
    xs = []
    for _ in range(count):
        shape = list(base)
        shape[axis] = data.draw(st.integers(0, 4))
        xs.append(rand(rng, tuple(shape), dtype))
    check_op("concat", xs, naive.concat(xs, axis), {"axis": axis})


@pytest.mark.parametrize("n,m", [(1, 1), (3, 2), (7, 4)])
def test_concat_on_symbolic_axes(n, m):
    rng = np.random.default_rng(n)
    a, b, c = rand(rng, (n, 2)), rand(rng, (m, 2)), rand(rng, (3, 2))
    (y,), g = run_op("concat", [a, b, c, a], {"axis": 0},
                     in_types=[T(N, 2), T(M, 2), T(3, 2), T(N, 2)])
    assert g.outputs[0].type.shape == (2 * N + M + 3, 2)
    check_op("concat", [a, b, c, a], naive.concat([a, b, c, a], 0), {"axis": 0},
             in_types=[T(N, 2), T(M, 2), T(3, 2), T(N, 2)])
    # a symbolic dim that is not the concat axis must agree, and is carried through
    d = rand(rng, (n, 1))
    check_op("concat", [a, d], naive.concat([a, d], 1), {"axis": -1},
             in_types=[T(N, 2), T(N, 1)])


# -- gather ------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
       idx_shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
       data=st.data(), seed=SEEDS)
def test_gather_on_every_axis(shape, idx_shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, data.draw(st.sampled_from(DTYPES)))
    idx = rng.integers(0, shape[axis], size=idx_shape).astype(
        data.draw(st.sampled_from([np.int32, np.int64])))
    check_op("gather", [x, idx], naive.gather(x, idx, axis), {"axis": axis})


@pytest.mark.parametrize("n", [1, 3, 7])
def test_gather_rows_of_a_symbolic_batch(n):
    rng = np.random.default_rng(n)
    x, idx = rand(rng, (n, 4)), rng.integers(0, n, size=(5,)).astype(np.int64)
    check_op("gather", [x, idx], naive.gather(x, idx, 0), {"axis": 0},
             in_types=[T(N, 4), T(5, dtype="i64")])


@pytest.mark.parametrize("bad", [3, -1, 100])
@pytest.mark.parametrize("axis", [0, 1])
def test_gather_out_of_range_index_is_an_error(bad, axis):
    x = np.zeros((3, 3), np.float32)
    idx = np.array([0, bad, 1], np.int64)
    with pytest.raises(IndexError):
        naive.gather(x, idx, axis)
    g = one_node_graph("gather", [T(3, 3), T(3, dtype="i64")], {"axis": axis},
                       loc=ir.Loc("model.py", 7, "net/embed"))
    with pytest.raises(ir.InterpreterError) as e:
        ir.run(g, [x, idx])
    msg = str(e.value)
    assert f"index {bad}" in msg and "[0, 3)" in msg and msg.startswith("model.py:7 (net/embed)")
