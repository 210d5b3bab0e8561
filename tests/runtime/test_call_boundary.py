"""The Executable's call boundary: every bad argument raises a clear ArgumentError before
native code runs; awkward arrays are copied; params; out=; runtime errors from native code."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
from ir import ArgumentError, CompileError, Graph, GraphcError, TensorType, emit
from runtime import ExecutionError


def _t(shape, dtype="f32"):
    return TensorType(shape, dtype)


@pytest.fixture(scope="module")
def affine():
    """y = relu(x @ w + b), z = x * m (x: f32[N,4], m: f32[N,4], w param, b param)."""
    g = Graph("affine")
    x = g.add_input("x", _t(("N", 4)))
    m = g.add_input("m", _t(("N", 4)))
    w = g.add_input("w", _t((4, 3)), "param", np.arange(12, dtype=np.float32).reshape(4, 3))
    b = g.add_input("b", _t((3,)), "param", np.array([1, -2, 3], np.float32))
    h = emit(g, "matmul", [x, w])
    hb = emit(g, "add", [h, emit(g, "broadcast", [b], {"shape": ("N", 3), "dims": (1,)})])
    g.add_output(emit(g, "relu", [hb]), "y")
    g.add_output(emit(g, "mul", [x, m]), "z")
    return graphc.compile(g), g


def _ref(x, m, w, b):
    return np.maximum(x @ w + b, 0), x * m


def _inputs(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 4)).astype(np.float32),
            rng.standard_normal((n, 4)).astype(np.float32))


def test_positional_named_and_run_agree(affine):
    exe, _ = affine
    x, m = _inputs()
    w, b = exe.params["w"], exe.params["b"]
    y, z = exe(x, m)
    np.testing.assert_allclose(y, _ref(x, m, w, b)[0], rtol=1e-6)
    np.testing.assert_array_equal(z, x * m)
    y2, z2 = exe(x, m=m)
    outs = exe.run({"m": m, "x": x})
    assert list(outs) == ["y", "z"]
    for a, b_ in ((y, y2), (y, outs["y"]), (z, z2), (z, outs["z"])):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("call, message", [
    (lambda exe, x, m: exe(x), "missing input(s) m"),
    (lambda exe, x, m: exe(x, m, x), "takes 2 input(s)"),
    (lambda exe, x, m: exe(x, m, q=x), "has no input named 'q'"),
    (lambda exe, x, m: exe(x, m, x=x), "given twice"),
    (lambda exe, x, m: exe(x, m, w=x), "is a parameter"),
    (lambda exe, x, m: exe(x.astype(np.float64), m),
     "expected dtype f32 (f32[N,4]), found float64"),
    (lambda exe, x, m: exe(x, m.astype(np.int32)), "input %m: expected dtype f32"),
    (lambda exe, x, m: exe(x[0], m), "expected rank 2"),
    (lambda exe, x, m: exe(x[:, :3], m[:, :3]), "axis 1 should be 4"),
    (lambda exe, x, m: exe(x, m[:2]), "input %x has N=5 (axis 0) but input %m has N=2"),
    (lambda exe, x, m: exe([[1.0] * 4], m), "found float64"),
    (lambda exe, x, m: exe.run([x, m]), "run() takes a dict"),
])
def test_bad_arguments_raise_clear_errors(affine, call, message):
    exe, _ = affine
    x, m = _inputs()
    with pytest.raises(ArgumentError) as err:
        call(exe, x, m)
    assert message in str(err.value)


def test_noncontiguous_and_misaligned_arrays_are_copied(affine):
    exe, _ = affine
    x, m = _inputs(6)
    want = exe(x, m)
    wide = np.zeros((6, 8), np.float32)
    wide[:, ::2] = x                                   # strided view
    fortran = np.asfortranarray(m)
    raw = np.zeros(6 * 4 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(6, 4)
    raw[:] = x                                          # contiguous but 1-byte misaligned
    assert not raw.flags.aligned
    for xx, mm in ((wide[:, ::2], m), (x, fortran), (raw, m)):
        got = exe(xx, mm)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    read_only = x.copy()
    read_only.flags.writeable = False
    np.testing.assert_array_equal(exe(read_only, m)[1], want[1])


def test_every_symbolic_batch_size_and_empty_batch(affine):
    exe, _ = affine
    w, b = exe.params["w"], exe.params["b"]
    for n in (0, 1, 2, 17, 100, 3):
        x, m = _inputs(n, seed=n)
        y, z = exe(x, m)
        assert y.shape == (n, 3) and z.shape == (n, 4)
        np.testing.assert_allclose(y, _ref(x, m, w, b)[0], rtol=1e-6, atol=1e-6)


def test_expression_dims_are_checked_after_binding():
    g = Graph("expr")
    x = g.add_input("x", _t(("N", 2)))
    y = g.add_input("y", _t(("2*N",)))
    g.add_output(emit(g, "add", [emit(g, "reshape", [x], {"shape": ("2*N",)}), y]), "s")
    exe = graphc.compile(g)
    x = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(exe(x, np.ones(6, np.float32)), np.full(6, 2, np.float32))
    with pytest.raises(ArgumentError, match=r"expected shape \[2\*N\] with N=3, found \(5,\)"):
        exe(x, np.ones(5, np.float32))


def test_params_are_aligned_runtime_buffers_and_set_params_validates(affine):
    exe, g = affine
    for name, view in exe.params.items():
        assert view.ctypes.data % 64 == 0, name
        np.testing.assert_array_equal(view, g.initializers[name])
    x, m = _inputs()
    new_w = np.full((4, 3), 0.5, np.float32)
    exe.set_params({"w": new_w})
    try:
        np.testing.assert_allclose(exe(x, m)[0], _ref(x, m, new_w, exe.params["b"])[0],
                                   rtol=1e-6)
        with pytest.raises(ArgumentError, match="no param or state named 'v'"):
            exe.set_params({"v": new_w})
        with pytest.raises(ArgumentError, match="expected dtype float32"):
            exe.set_params({"w": new_w.astype(np.float64)})
        with pytest.raises(ArgumentError, match=r"expected shape \(4, 3\), found \(3, 4\)"):
            exe.set_params({"w": new_w.T.copy()})
        # a failing update changes nothing, even for the entries that were valid
        with pytest.raises(ArgumentError):
            exe.set_params({"b": np.zeros(3, np.float32), "w": np.zeros(2, np.float32)})
        np.testing.assert_array_equal(exe.params["b"], g.initializers["b"])
    finally:
        exe.set_params({"w": g.initializers["w"]})


def test_param_without_value_must_be_set_before_calling():
    g = Graph("noinit")
    x = g.add_input("x", _t(("N",)))
    s = g.add_input("s", _t(()), "param")
    g.add_output(emit(g, "mul", [x, emit(g, "broadcast", [s], {"shape": ("N",), "dims": ()})]))
    exe = graphc.compile(g)
    with pytest.raises(ArgumentError, match=r"param\(s\) s have no value"):
        exe(np.ones(3, np.float32))
    exe.set_params({"s": np.float32(3)})
    np.testing.assert_array_equal(exe(np.ones(3, np.float32)), np.full(3, 3, np.float32))


def test_out_arrays(affine):
    exe, _ = affine
    x, m = _inputs(4)
    y = np.empty((4, 3), np.float32)
    z = np.empty((4, 4), np.float32)
    got = exe(x, m, out=(y, z))
    assert got[0] is y and got[1] is z
    np.testing.assert_array_equal(z, x * m)
    assert exe.run({"x": x, "m": m}, out={"y": y, "z": z})["z"] is z
    with pytest.raises(ArgumentError, match=r"out\['z'\]: expected a float32 array of shape"):
        exe(x, m, out=(y, np.empty((4, 3), np.float32)))
    with pytest.raises(ArgumentError, match="overlaps"):
        exe(x, m, out=(y, x))
    shared = np.empty(28, np.float32)
    with pytest.raises(ArgumentError, match="overlaps"):
        exe(x, m, out=(shared[:12].reshape(4, 3), shared[8:24].reshape(4, 4)))
    with pytest.raises(ArgumentError, match="must hold 2"):
        exe(x, m, out=(y,))


def test_gather_index_out_of_range_raises_naming_the_node():
    g = Graph("lookup")
    table = g.add_input("table", _t((10, 3)), "param", np.ones((10, 3), np.float32))
    ids = g.add_input("ids", _t(("N",), "i64"))
    from ir import Loc
    from ir.builder import make_node
    node = make_node(g, "gather", [table, ids], {"axis": 0}, loc=Loc("model.py", 42, "embed"))
    g.add_output(node.output)
    exe = graphc.compile(g)
    np.testing.assert_array_equal(exe(np.array([0, 9], np.int64)), np.ones((2, 3), np.float32))
    for bad in ([0, 10], [-1], [3, 2 ** 40]):
        with pytest.raises(ExecutionError) as err:
            exe(np.array(bad, np.int64))
        text = str(err.value)
        assert "model.py:42" in text and "gather" in text and "out of range [0, 10)" in text
        assert str([b for b in bad if not 0 <= b < 10][0]) in text
    assert isinstance(err.value, GraphcError)


def test_argmax_over_an_empty_symbolic_axis_raises():
    g = Graph("am")
    x = g.add_input("x", _t((2, "N")))
    g.add_output(emit(g, "argmax", [x], {"axis": 1}))
    exe = graphc.compile(g)
    np.testing.assert_array_equal(exe(np.array([[1, 3, 2], [5, 4, 5]], np.float32)), [1, 0])
    with pytest.raises(ExecutionError, match="axis 1 is empty"):
        exe(np.zeros((2, 0), np.float32))


def test_graphs_that_cannot_be_compiled_are_rejected_clearly():
    g = Graph("symparam")
    g.add_input("x", _t(("N",)))
    p = g.add_input("p", _t(("N",)), "param")
    g.add_output(p)
    with pytest.raises(CompileError, match="shapes must be static"):
        graphc.compile(g)
    g = Graph("unbound")
    x = g.add_input("x", _t(("2*M",)))
    g.add_output(emit(g, "neg", [x]))
    with pytest.raises(CompileError, match="M are not the plain size"):
        graphc.compile(g)
    with pytest.raises(CompileError, match="expects an ir.Graph"):
        graphc.compile("not a graph")
    with pytest.raises(CompileError, match="opt_level"):
        graphc.compile(Graph("empty"), opt_level=7)
