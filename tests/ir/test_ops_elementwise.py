"""Elementwise ops (unary, binary, compare, logical, select, cast) against tests/ir/naive.py.

Shapes come from hypothesis (scalars, size-0 and size-1 dims, odd sizes); float operands
include NaN, +-inf and +-0 so the documented edge semantics are exercised, and the integer
edge cases (truncating division, x/0 = 0, INT_MIN, saturating casts) have explicit tables.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import TensorType, sym  # noqa: E402
from ir.ops import elementwise  # noqa: E402
from tests.ir import naive  # noqa: E402
from tests.ir.op_harness import check_op, rand, run_op  # noqa: E402

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
SEEDS = st.integers(0, 2 ** 32 - 1)
FLOAT_UNARY = sorted(naive.UNARY_FLOAT)
NUMERIC_UNARY = sorted(naive.UNARY_NUMERIC)
I32_MIN, I32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max
I64_MIN, I64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def test_naive_tables_cover_every_elementwise_op():
    assert set(naive.UNARY_FLOAT) | set(naive.UNARY_NUMERIC) == set(elementwise.UNARY)
    assert set(naive.BINARY_FLOAT) == set(elementwise.BINARY)
    assert set(naive.COMPARE) == set(elementwise.COMPARE)
    assert set(naive.LOGICAL) == set(elementwise.LOGICAL)


# -- unary -------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", FLOAT_UNARY + NUMERIC_UNARY)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@settings(max_examples=12)
@given(shape=SHAPES, seed=SEEDS)
def test_unary_float(op, dtype, shape, seed):
    x = rand(np.random.default_rng(seed), shape, dtype, -6, 6, specials=0.25)
    check_op(op, [x], naive.unary(op, x))


@pytest.mark.parametrize("op", FLOAT_UNARY)
def test_unary_float_edge_values(op):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e-45, 88.0, 89.0, -88.0,
                  -104.0, 710.0, -745.0, 1.0, -1.0, 0.5, 3e38], np.float32)
    check_op(op, [x], naive.unary(op, x), rtol32=2e-6, atol32=1e-30)
    x64 = x.astype(np.float64)
    check_op(op, [x64], naive.unary(op, x64), atol64=1e-300)


@pytest.mark.parametrize("op", NUMERIC_UNARY)
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_unary_integer_wraps(op, dtype):
    info = np.iinfo(dtype)
    x = np.array([0, 1, -1, 7, -7, info.max, info.min, info.min + 1], dtype)
    check_op(op, [x], naive.unary(op, x))


def test_sigmoid_is_stable_on_both_tails():
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0], np.float64)
    (y,), _ = run_op("sigmoid", [x])
    assert np.all(np.isfinite(y)) and y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5
    assert 0 < y[1] < 1e-43     # exp(-100): a tiny positive number, not 0 from 1/(1+inf)


# -- binary ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", sorted(naive.BINARY_FLOAT) + sorted(naive.COMPARE))
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@settings(max_examples=12)
@given(shape=SHAPES, seed=SEEDS)
def test_binary_float(op, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    a = rand(rng, shape, dtype, -4, 4, specials=0.25)
    b = rand(rng, shape, dtype, -4, 4, specials=0.25)
    if a.size:
        b.flat[::2] = a.flat[::2]       # equal pairs matter for comparisons and max/min
    if op == "pow":
        a = np.abs(a)                  # a real power of a negative base is NaN: covered below
    check_op(op, [a, b], naive.binary(op, a, b))


def test_pow_edge_values():
    a = np.array([-2.0, -2.0, 0.0, 0.0, np.nan, 1.0, 2.0, -8.0, 10.0, 10.0], np.float64)
    b = np.array([3.0, 0.5, -1.0, 2.0, 0.0, np.nan, -np.inf, 1 / 3, 400.0, -400.0], np.float64)
    want = naive.binary("pow", a, b)
    assert want[0] == -8 and np.isnan(want[1]) and want[2] == np.inf and want[4] == 1
    check_op("pow", [a, b], want)


@pytest.mark.parametrize("op", sorted(naive.BINARY_INT) + sorted(naive.COMPARE))
@pytest.mark.parametrize("dtype", ["i32", "i64"])
@settings(max_examples=12)
@given(shape=SHAPES, seed=SEEDS)
def test_binary_integer(op, dtype, shape, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, shape, dtype, -9, 9), rand(rng, shape, dtype, -3, 3)   # b has zeros
    check_op(op, [a, b], naive.binary(op, a, b))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_division_truncates_and_zero_divisor_gives_zero(dtype):
    info = np.iinfo(dtype)
    a = np.array([7, -7, 7, -7, 6, 0, 5, -5, info.min, info.min, info.min, info.max, info.min],
                 dtype)
    b = np.array([2, 2, -2, -2, 3, 0, 0, 0, 2, -1, 1, -1, 3], dtype)
    want = np.array([3, -3, -3, 3, 2, 0, 0, 0, info.min // 2, info.min, info.min, -info.max,
                     -(-info.min // 3)], dtype)
    assert np.array_equal(naive.binary("div", a, b), want)
    check_op("div", [a, b], want)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_add_mul_wrap(dtype):
    info = np.iinfo(dtype)
    a = np.array([info.max, info.min, info.max, 3], dtype)
    b = np.array([1, -1, 2, -4], dtype)
    for op in ("add", "sub", "mul", "maximum", "minimum"):
        check_op(op, [a, b], naive.binary(op, a, b))


def test_comparisons_with_nan_are_false_except_not_equal():
    a = np.array([np.nan, np.nan, 1.0, np.inf], np.float32)
    b = np.array([np.nan, 1.0, np.nan, np.inf], np.float32)
    for op in naive.COMPARE:
        (got,), _ = run_op(op, [a, b])
        if op == "not_equal":
            assert got.tolist() == [True, True, True, False]
        elif op in ("equal", "less_equal", "greater_equal"):
            assert got.tolist() == [False, False, False, True], op
        else:
            assert got.tolist() == [False, False, False, False], op


def test_maximum_minimum_propagate_nan_in_either_position():
    a = np.array([np.nan, 1.0, -np.inf, -0.0], np.float32)
    b = np.array([1.0, np.nan, np.nan, 0.0], np.float32)
    for op in ("maximum", "minimum"):
        (got,), _ = run_op(op, [a, b])
        assert np.isnan(got[:3]).all() and got[3] == 0.0, op


def test_equality_on_bools():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    for op in ("equal", "not_equal"):
        check_op(op, [a, b], naive.binary(op, a, b))


# -- logical, select ---------------------------------------------------------------------------
@settings(max_examples=20)
@given(shape=SHAPES, seed=SEEDS)
def test_logical_ops(shape, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, shape, "bool"), rand(rng, shape, "bool")
    for op in naive.LOGICAL:
        check_op(op, [a, b], naive.binary(op, a, b))
    check_op("logical_not", [a], naive.logical_not(a))


@pytest.mark.parametrize("dtype", ["f32", "f64", "i32", "i64", "bool"])
@settings(max_examples=10)
@given(shape=SHAPES, seed=SEEDS)
def test_select(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    c = rand(rng, shape, "bool")
    a, b = rand(rng, shape, dtype, specials=0.3), rand(rng, shape, dtype, specials=0.3)
    check_op("select", [c, a, b], naive.select(c, a, b))


def test_select_symbolic_batch():
    t = [TensorType((sym("N"), 2), d) for d in ("bool", "f32", "f32")]
    for n in (1, 3, 7):
        rng = np.random.default_rng(n)
        c, a, b = rand(rng, (n, 2), "bool"), rand(rng, (n, 2)), rand(rng, (n, 2))
        check_op("select", [c, a, b], naive.select(c, a, b), in_types=t)


# -- cast --------------------------------------------------------------------------------------
def test_float_to_int_cast_saturates_and_maps_nan_to_zero():
    x = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 2.7, -2.7, -0.0, 2147483520.0,
                  -2147483648.0, 0.999], np.float32)
    want = np.array([0, I32_MAX, I32_MIN, I32_MAX, I32_MIN, 2, -2, 0, 2147483520, I32_MIN, 0],
                    np.int32)
    assert np.array_equal(naive.cast(x, np.int32), want)
    check_op("cast", [x], want, {"dtype": "i32"})


def test_f64_to_i64_cast_saturates_near_the_int64_limits():
    x = np.array([2.0 ** 63, -2.0 ** 63, 2.0 ** 63 - 1024, -2.0 ** 63 + 1024, 1e300, -1e300,
                  np.nan], np.float64)
    want = np.array([I64_MAX, I64_MIN, 2 ** 63 - 1024, -2 ** 63 + 1024, I64_MAX, I64_MIN, 0],
                    np.int64)
    assert np.array_equal(naive.cast(x, np.int64), want)
    check_op("cast", [x], want, {"dtype": "i64"})


def test_cast_to_bool_is_nonzero_and_nan_is_true():
    x = np.array([0.0, -0.0, np.nan, 1e-45, -3.0, np.inf], np.float32)
    check_op("cast", [x], np.array([False, False, True, True, True, True]), {"dtype": "bool"})


def test_integer_narrowing_cast_wraps():
    x = np.array([2 ** 31, -2 ** 31 - 1, 2 ** 40 + 5, -1, 7], np.int64)
    want = np.array([I32_MIN, I32_MAX, 5, -1, 7], np.int32)
    assert np.array_equal(naive.cast(x, np.int32), want)
    check_op("cast", [x], want, {"dtype": "i32"})


DTYPES = ["f32", "f64", "i32", "i64", "bool"]


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
@settings(max_examples=8)
@given(shape=SHAPES, seed=SEEDS)
def test_cast_between_every_pair_of_dtypes(src, dst, shape, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, src, -5e9, 5e9, specials=0.3) if src.startswith("f") else \
        rand(rng, shape, src, -2 ** 40 if src == "i64" else -2 ** 31, 2 ** 31 - 1)
    if src == "f64" and dst == "f32":
        x = rand(rng, shape, src, -1e6, 1e6, specials=0.3)   # in range: f64 mode keeps f64
    check_op("cast", [x], naive.cast(x, ir_np(dst)), {"dtype": dst}, rtol32=1e-6)


def ir_np(name):
    return {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
            "bool": np.bool_}[name]
