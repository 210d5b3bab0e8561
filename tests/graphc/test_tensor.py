"""graphc.Tensor: operators, broadcasting, constants, indexing, dtype and shape errors.

Every numeric check traces a function, runs it with the reference interpreter and compares
with numpy on the same arrays."""
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphc as gc
import ir
from ir.errors import DTypeError, ShapeError
from ir.symbolic import sym

N = sym("N")


def run(fn, specs, *arrays):
    """Trace fn on specs, run on arrays; returns the single output (or the tuple)."""
    g = gc.trace(fn, *specs)
    names = [v.name for v in g.inputs_with_role("input")]
    out = ir.run(g, dict(zip(names, arrays)))
    vals = [out[n] for n in g.output_names]
    return vals[0] if len(vals) == 1 else vals


def ops_of(g):
    return [n.op for n in g.nodes]


def this_line():
    return sys._getframe(1).f_lineno


@pytest.fixture
def arr(rng):
    def make(*shape, dtype=np.float32, lo=-2.0, hi=2.0):
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    return make


# -- properties ---------------------------------------------------------------------------------
def test_shape_dtype_ndim_and_repr():
    seen = {}

    def f(x):
        seen["x"] = x
        return x
    gc.trace(f, gc.spec(("N", 784), "f32"))
    x = seen["x"]
    assert x.shape == (N, 784) and x.ndim == 2 and x.dtype is ir.f32
    assert isinstance(x.shape[0], ir.SymDim)
    assert "f32[N,784]" in repr(x)


def test_identity_equality_and_hash():
    def f(x):
        y = x + 1.0
        table = {x: "x", y: "y"}
        assert table[x] == "x" and table[y] == "y"
        assert (x == x) is True and (x == y) is False and (x != y) is True
        return x.eq(y), x.ne(y)
    a = np.array([1.0, 2.0], np.float32)
    eq, ne = run(f, [gc.spec((2,))], a)
    np.testing.assert_array_equal(eq, [False, False])
    np.testing.assert_array_equal(ne, [True, True])


# -- arithmetic operators -----------------------------------------------------------------------
@pytest.mark.parametrize("op,ref", [
    (lambda a, b: a + b, np.add), (lambda a, b: a - b, np.subtract),
    (lambda a, b: a * b, np.multiply), (lambda a, b: a / b, np.divide),
    (lambda a, b: a < b, np.less), (lambda a, b: a <= b, np.less_equal),
    (lambda a, b: a > b, np.greater), (lambda a, b: a >= b, np.greater_equal),
    (lambda a, b: a.eq(b), np.equal), (lambda a, b: a.ne(b), np.not_equal),
])
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)),
                                   ((2, 1, 4), (3, 1)), ((), (3, 4)), ((1,), (2, 3))])
def test_binary_operators_broadcast_like_numpy(op, ref, sa, sb, arr):
    a, b = arr(*sa), arr(*sb)
    b[b == 0] = 0.5
    got = run(op, [gc.spec(sa), gc.spec(sb)], a, b)
    np.testing.assert_allclose(got, ref(a, b), rtol=1e-6)


def test_broadcast_nodes_only_on_the_operand_that_needs_it():
    g = gc.trace(lambda a, b: a + b, gc.spec(("N", 4)), gc.spec((4,)))
    assert ops_of(g) == ["broadcast", "add"]
    bnode = g.nodes[0]
    assert bnode.inputs[0].name == "b" and bnode.attrs["dims"] == (1,)
    assert ops_of(gc.trace(lambda a, b: a * b, gc.spec(("N", 4)), gc.spec(("N", 4)))) == ["mul"]
    assert ops_of(gc.trace(lambda a, b: a - b, gc.spec(("N", 1)), gc.spec((1, 5)))) == \
        ["broadcast", "broadcast", "sub"]


@pytest.mark.parametrize("n", [1, 3, 7])
def test_symbolic_broadcasting(n, arr):
    def f(a, b, c):
        return a + b, a * c
    a, b, c = arr(n, 4), arr(4), arr(n, 1)
    s, p = run(f, [gc.spec(("N", 4)), gc.spec((4,)), gc.spec(("N", 1))], a, b, c)
    np.testing.assert_allclose(s, a + b, rtol=1e-6)
    np.testing.assert_allclose(p, a * c, rtol=1e-6)


def test_reflected_operators_with_scalars_and_arrays(arr):
    c = np.array([1.0, -2.0, 3.0], np.float32)

    def f(x):
        return 2 + x, 1 - x, 3 * x, 1 / x, 2.0 ** x, c + x, c * x, c @ x, -x, +x, abs(x), x ** 2
    a = arr(3)
    a[a == 0] = 1
    got = run(f, [gc.spec((3,))], a)
    want = [2 + a, 1 - a, 3 * a, 1 / a, 2.0 ** a, c + a, c * a, c @ a, -a, a, np.abs(a), a * a]
    for g_, w in zip(got, want):
        np.testing.assert_allclose(g_, w, rtol=1e-5)


def test_power_by_two_is_a_multiply_and_works_for_ints():
    g = gc.trace(lambda x: x ** 2, gc.spec((3,), "i32"))
    assert ops_of(g) == ["mul"]
    out = ir.run(g, {"x": np.array([-3, 4, 5], np.int32)})["out"]
    np.testing.assert_array_equal(out, [9, 16, 25])


def test_int_division_truncates():
    got = run(lambda a, b: a / b, [gc.spec((4,), "i32"), gc.spec((4,), "i32")],
              np.array([7, -7, 7, 5], np.int32), np.array([2, 2, -2, 0], np.int32))
    np.testing.assert_array_equal(got, [3, -3, -3, 0])


def test_logical_operators():
    a = np.array([True, True, False, False])
    b = np.array([True, False, True, False])
    x, y, z = run(lambda p, q: (p & q, p | q, ~p), [gc.spec((4,), "bool"), gc.spec((4,), "bool")],
                  a, b)
    np.testing.assert_array_equal(x, a & b)
    np.testing.assert_array_equal(y, a | b)
    np.testing.assert_array_equal(z, ~a)


# -- constants and dtypes -----------------------------------------------------------------------
def test_python_scalar_takes_the_tensor_dtype():
    for dt_name, np_dt in [("f32", np.float32), ("f64", np.float64), ("i32", np.int32),
                           ("i64", np.int64)]:
        g = gc.trace(lambda x: x + 1, gc.spec((2,), dt_name))
        const = g.nodes[0]
        assert const.op == "constant" and const.attrs["value"].dtype == np_dt
        assert g.outputs[0].type.dtype.name == dt_name


def test_float_scalar_with_int_tensor_is_an_error_that_says_so():
    with pytest.raises(DTypeError, match=r"float value 0\.5.*i32"):
        gc.trace(lambda x: x * 0.5, gc.spec((2,), "i32"))


def test_int_scalar_too_big_for_i32():
    with pytest.raises(DTypeError, match="does not fit in i32"):
        gc.trace(lambda x: x + 2 ** 40, gc.spec((2,), "i32"))


def test_mismatched_tensor_dtypes_name_both():
    line = None

    def f(a, b):
        nonlocal line
        line = this_line() + 1
        return a + b
    with pytest.raises(DTypeError) as info:
        gc.trace(f, gc.spec(("N", 3), "f32"), gc.spec((3,), "f64"))
    msg = str(info.value)
    assert "f32[N,3]" in msg and "f64[3]" in msg and "add" in msg
    assert info.value.loc.line == line and info.value.loc.file.endswith("test_tensor.py")


def test_numpy_array_keeps_its_dtype():
    with pytest.raises(DTypeError, match="f64"):
        gc.trace(lambda x: x + np.ones(3), gc.spec((3,)))
    got = run(lambda x: x + np.ones(3, np.float32), [gc.spec((3,))], np.zeros(3, np.float32))
    np.testing.assert_array_equal(got, np.ones(3))


def test_numpy_scalar_and_list_take_the_tensor_dtype():
    got = run(lambda x: x * np.float64(2.0) + [1, 2, 3], [gc.spec((3,))],
              np.ones(3, np.float32))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [3, 4, 5])


def test_constant_defaults():
    def f(x):
        return gc.constant(0.5), gc.constant(3), gc.constant(True), gc.constant(
            np.arange(3, dtype=np.int32)), gc.constant([1, 2], dtype="f64")
    outs = run(f, [gc.spec((1,))], np.zeros(1, np.float32))
    assert [o.dtype for o in outs] == [np.float32, np.int64, np.bool_, np.int32, np.float64]


def test_astype_casts_and_is_free_for_the_same_dtype():
    g = gc.trace(lambda x: (x.astype("i32"), x.astype(ir.f32)), gc.spec((3,)))
    assert ops_of(g) == ["cast"] and g.outputs[1] is g.inputs[0]
    out = ir.run(g, {"x": np.array([1.7, -1.7, 3.0], np.float32)})
    np.testing.assert_array_equal(out["out0"], [1, -1, 3])


# -- shape errors point at the user's line ------------------------------------------------------
def test_broadcast_error_names_op_shapes_and_line():
    line = None

    def f(a, b):
        nonlocal line
        line = this_line() + 1
        return a * b
    with pytest.raises(ShapeError) as info:
        gc.trace(f, gc.spec(("N", 3)), gc.spec(("N", 4)))
    err = info.value
    assert "mul" in err.message and "f32[N,3]" in err.message and "f32[N,4]" in err.message
    assert err.loc.line == line and err.loc.file.endswith("test_tensor.py")
    assert f"test_tensor.py:{line}" in str(err)


def test_unequal_symbols_do_not_broadcast():
    with pytest.raises(ShapeError, match=r"sizes N and M"):
        gc.trace(lambda a, b: a + b, gc.spec(("N", 3)), gc.spec(("M", 3)))


def test_matmul_shape_error_at_user_line():
    line = None

    def f(a, b):
        nonlocal line
        line = this_line() + 1
        return a @ b
    with pytest.raises(ShapeError) as info:
        gc.trace(f, gc.spec(("N", 784)), gc.spec((100, 10)))
    assert info.value.loc.line == line
    assert "f32[N,784]" in info.value.message and "f32[100,10]" in info.value.message


def test_primitive_shape_errors_also_carry_the_user_line():
    line = None

    def f(x):
        nonlocal line
        line = this_line() + 1
        return gc.concat([x, x.T], axis=0)
    with pytest.raises(ShapeError) as info:
        gc.trace(f, gc.spec((2, 3)))
    assert info.value.loc.line == line and info.value.loc.path == "concat"


# -- reshape, transpose, flatten ----------------------------------------------------------------
def test_reshape_with_minus_one_and_symbolic_dims(arr):
    g = gc.trace(lambda x: x.reshape(-1, 784), gc.spec(("N", 28, 28)))
    assert g.outputs[0].type.shape == (N, 784)
    g = gc.trace(lambda x: x.reshape((2, -1)), gc.spec(("N", 6)))
    assert g.outputs[0].type.shape == (2, 3 * N)
    for n in (1, 3):
        a = arr(n, 28, 28)
        np.testing.assert_array_equal(
            run(lambda x: x.reshape(-1, 784), [gc.spec(("N", 28, 28))], a), a.reshape(-1, 784))


def test_reshape_errors():
    with pytest.raises(ShapeError, match="not a multiple"):
        gc.trace(lambda x: x.reshape(-1, 5), gc.spec((3, 4)))
    with pytest.raises(ShapeError, match="only one dim may be -1"):
        gc.trace(lambda x: x.reshape(-1, -1), gc.spec((3, 4)))
    with pytest.raises(ShapeError):
        gc.trace(lambda x: x.reshape(5, 3), gc.spec((3, 4)))


def test_transpose_T_flatten(arr):
    a = arr(2, 3, 4)
    t, tt, p, fl, fl0 = run(lambda x: (x.T, x.transpose(), x.transpose(1, 0, 2), x.flatten(),
                                       x.flatten(0)), [gc.spec((2, 3, 4))], a)
    np.testing.assert_array_equal(t, a.T)
    np.testing.assert_array_equal(tt, a.T)
    np.testing.assert_array_equal(p, a.transpose(1, 0, 2))
    np.testing.assert_array_equal(fl, a.reshape(2, 12))
    np.testing.assert_array_equal(fl0, a.reshape(24))
    g = gc.trace(lambda x: x.flatten(), gc.spec(("N", 3, 4, 5)))
    assert g.outputs[0].type.shape == (N, 60)


# -- indexing -----------------------------------------------------------------------------------
INDEXES = [
    1, -1, slice(None), slice(1, 3), slice(-3, None), slice(None, -1), slice(None, None, 2),
    slice(1, None, 3), slice(5, 2), slice(-100, 100), (1, 2), (slice(None), 0),
    (Ellipsis, 1), (Ellipsis, None), (None, 0), (0, None, slice(1, 3)), (Ellipsis,),
    (slice(None), None, slice(None, None, 2), -2), (1, Ellipsis, 2), (-1, -1, -1),
]


@pytest.mark.parametrize("index", INDEXES, ids=[repr(i) for i in INDEXES])
def test_basic_indexing_matches_numpy(index, arr):
    a = arr(4, 5, 6)
    got = run(lambda x: x[index], [gc.spec((4, 5, 6))], a)
    np.testing.assert_array_equal(got, a[index])


@pytest.mark.parametrize("n", [2, 5])
def test_indexing_a_symbolic_axis(n, arr):
    a = arr(n, 6)
    r1, r2, r3 = run(lambda x: (x[:, 1:4], x[-1], x[1:, ::2]), [gc.spec(("N", 6))], a)
    np.testing.assert_array_equal(r1, a[:, 1:4])
    np.testing.assert_array_equal(r2, a[-1])
    np.testing.assert_array_equal(r3, a[1:, ::2])


def test_full_slice_makes_no_node_and_bad_indexes_raise():
    g = gc.trace(lambda x: x[:, ...], gc.spec((2, 3)))
    assert g.nodes == []
    with pytest.raises(ShapeError, match="out of range"):
        gc.trace(lambda x: x[2], gc.spec((2, 3)))
    with pytest.raises(ShapeError, match="positive steps"):
        gc.trace(lambda x: x[::-1], gc.spec((2, 3)))
    with pytest.raises(ShapeError, match="too many indices"):
        gc.trace(lambda x: x[0, 0, 0], gc.spec((2, 3)))
    with pytest.raises(gc.TraceError, match="take"):
        gc.trace(lambda x: x[[0, 1]], gc.spec((2, 3)))
    with pytest.raises(ShapeError, match="counted from the end"):
        gc.trace(lambda x: x[0], gc.spec(("N", 3)))


def test_iteration_over_a_static_axis(arr):
    a = arr(3, 2)
    rows = run(lambda x: tuple(r * 2.0 for r in x), [gc.spec((3, 2))], a)
    for i, r in enumerate(rows):
        np.testing.assert_allclose(r, a[i] * 2)
    with pytest.raises(gc.TraceError, match="symbolic"):
        gc.trace(lambda x: list(x), gc.spec(("N", 2)))


# -- reductions as methods ----------------------------------------------------------------------
@pytest.mark.parametrize("axis,keep", [(None, False), (0, False), (1, True), ((0, 2), False),
                                       (-1, True), ((), False)])
def test_reduction_methods(axis, keep, arr):
    a = arr(3, 4, 5)
    s, m, mx, mn = run(lambda x: (x.sum(axis, keep), x.mean(axis, keep), x.max(axis, keep),
                                  x.min(axis, keep)), [gc.spec((3, 4, 5))], a)
    np_axis = axis if axis != () else ()
    np.testing.assert_allclose(s, a.sum(np_axis, keepdims=keep), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m, a.mean(np_axis, keepdims=keep), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(mx, a.max(np_axis, keepdims=keep))
    np.testing.assert_array_equal(mn, a.min(np_axis, keepdims=keep))


def test_argmax_method(arr):
    a = arr(3, 4)
    r0, r1, rn = run(lambda x: (x.argmax(0), x.argmax(-1, keepdims=True), x.argmax()),
                     [gc.spec((3, 4))], a)
    np.testing.assert_array_equal(r0, a.argmax(0))
    np.testing.assert_array_equal(r1, a.argmax(-1, keepdims=True))
    np.testing.assert_array_equal(rn, a.argmax())


def test_mean_over_symbolic_axis_uses_dim_value(arr):
    g = gc.trace(lambda x: x.mean(), gc.spec(("N", 4)))
    assert "dim_value" in ops_of(g) and "cast" in ops_of(g)
    dv = next(n for n in g.nodes if n.op == "dim_value")
    assert dv.attrs["dim"] == 4 * N
    for n in (1, 3, 8):
        a = arr(n, 4)
        np.testing.assert_allclose(ir.run(g, {"x": a})["out"], a.mean(), rtol=1e-5)


# -- things a symbolic tensor refuses -----------------------------------------------------------
def test_truth_value_and_numpy_conversion_are_errors():
    def branch(x):
        if x > 0:
            return x
        return -x
    with pytest.raises(gc.TraceError, match="graphc.where"):
        gc.trace(branch, gc.spec((2,)))
    with pytest.raises(gc.TraceError, match="no values"):
        gc.trace(lambda x: np.asarray(x), gc.spec((2,)))


# -- property: broadcasting agrees with numpy ----------------------------------------------------
small_shape = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@given(small_shape, small_shape)
def test_broadcasting_property(sa, sb):
    a = np.arange(int(np.prod(sa)), dtype=np.float32).reshape(sa)
    b = np.arange(int(np.prod(sb)), dtype=np.float32).reshape(sb) + 1
    try:
        want = a * b
    except ValueError:
        with pytest.raises(ShapeError, match="cannot broadcast"):
            gc.trace(lambda x, y: x * y, gc.spec(sa), gc.spec(sb))
        return
    got = run(lambda x, y: x * y, [gc.spec(sa), gc.spec(sb)], a, b)
    np.testing.assert_array_equal(got, want)
