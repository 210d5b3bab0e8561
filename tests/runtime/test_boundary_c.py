"""The native call boundary (runtime/_boundary.c through runtime/boundary.py) against the
Python path it replaces: the same results and the same errors on graphs with several inputs
and outputs, symbolic dims, params updated in place, int/bool/empty arrays and `out=`;
whatever the C side does not accept reaches the full checks; concurrent callers; runtime
errors; no leaked references or memory; and the Python path when the extension is off.

A native/Python pair is two Executables over one CompiledGraph, made with
`boundary.ENABLED` on and off. Tests that need the built extension are skipped without it;
the rest run either way."""
from __future__ import annotations

import gc
import inspect
import os
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import graphc
from ir import ArgumentError, Graph, Loc, TensorType, emit
from ir.builder import make_node
from runtime import Executable, ExecutionError, boundary

BUILT = boundary._boundary is not None
needs_c = pytest.mark.skipif(
    not BUILT, reason=f"C boundary not built: {boundary.unavailable_reason()}")


def _t(shape, dtype="f32"):
    return TensorType(shape, dtype)


def _executable(exe, native: bool) -> Executable:
    saved = boundary.ENABLED
    boundary.ENABLED = native
    try:
        made = Executable(exe.compiled, exe.graph)
    finally:
        boundary.ENABLED = saved
    assert (made._native is not None) == native
    return made


def _pair(exe):
    return _executable(exe, True), _executable(exe, False)


def _count_full_checks(exe) -> list:
    """Record every call that reaches the full checks (`_call`)."""
    calls = []
    real = exe._call

    def counted(*args):
        calls.append(args)
        return real(*args)
    exe._call = counted
    return calls


def _outcome(exe, args, **kw):
    try:
        return ("ok", exe(*args, **kw))
    except Exception as e:                         # compared between the two paths
        return ("error", type(e), str(e))


def _assert_same(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1:] == b[1:]
        return
    ra, rb = a[1], b[1]
    assert type(ra) is type(rb)
    for x, y in zip(ra if isinstance(ra, tuple) else (ra,), rb if isinstance(rb, tuple) else (rb,)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


# -- graphs -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed():
    """f32, i32 and bool inputs with a symbolic N; four outputs of three dtypes."""
    g = Graph("mixed")
    x = g.add_input("x", _t(("N", 3)))
    m = g.add_input("m", _t(("N", 3)))
    k = g.add_input("k", _t(("N",), "i32"))
    flag = g.add_input("flag", _t(("N",), "bool"))
    g.add_output(emit(g, "add", [emit(g, "mul", [x, m]), x]), "s")
    g.add_output(emit(g, "add", [k, k]), "kk")
    g.add_output(emit(g, "logical_not", [flag]), "nf")
    kf = emit(g, "cast", [k], {"dtype": "f32"})
    g.add_output(emit(g, "select", [flag, kf, emit(g, "neg", [kf])]), "sel")
    return graphc.compile(g)


def _mixed_args(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3)).astype(np.float32),
            rng.standard_normal((n, 3)).astype(np.float32),
            rng.integers(-50, 50, n).astype(np.int32), rng.random(n) < 0.5)


@pytest.fixture(scope="module")
def two_symbols():
    """x: f32[N,M] + b: f32[M] (broadcast) -> one output."""
    g = Graph("two_symbols")
    x = g.add_input("x", _t(("N", "M")))
    b = g.add_input("b", _t(("M",)))
    g.add_output(emit(g, "add", [x, emit(g, "broadcast", [b], {"shape": ("N", "M"),
                                                             "dims": (1,)})]), "y")
    return graphc.compile(g)


def _updating_graph():
    """y = x @ w (returned) and w <- -w (in place: not returned); a param-shaped output."""
    g = Graph("updating")
    x = g.add_input("x", _t(("N", 4)))
    w = g.add_input("w", _t((4, 2)), "param",
                    np.arange(8, dtype=np.float32).reshape(4, 2) / 8)
    g.add_output(emit(g, "matmul", [x, w]), "y")
    g.add_output(emit(g, "mul", [w, w]), "w2")
    g.add_output(emit(g, "neg", [w]), "w_next", updates="w")
    return graphc.compile(g)


def _gather_graph():
    g = Graph("lookup")
    table = g.add_input("table", _t((10, 3)), "param",
                        np.arange(30, dtype=np.float32).reshape(10, 3))
    ids = g.add_input("ids", _t(("N",), "i64"))
    node = make_node(g, "gather", [table, ids], {"axis": 0}, loc=Loc("model.py", 7, "embed"))
    g.add_output(node.output, "rows")
    return graphc.compile(g)


# -- the same results and errors on both paths ----------------------------------------------------
@needs_c
def test_mixed_dtypes_several_bindings_and_empty_arrays(mixed):
    native, python = _pair(mixed)
    for n in (5, 1, 0, 17, 5, 0, 3):
        args = _mixed_args(n, seed=n)
        _assert_same(_outcome(native, args), _outcome(python, args))
    checked = _count_full_checks(native)
    for n in (5, 1, 0, 17, 3):                      # every binding is known now: all native
        args = _mixed_args(n, seed=n + 1)
        _assert_same(_outcome(native, args), _outcome(python, args))
    assert checked == []
    assert native._native.counts()["accepted"] == 5


@needs_c
def test_two_symbols_and_many_shape_sets(two_symbols):
    native, python = _pair(two_symbols)
    rng = np.random.default_rng(1)
    shapes = [(n, m) for n in (0, 1, 3, 8) for m in (1, 2, 16)]
    for rounds in range(2):
        checked = _count_full_checks(native)
        for n, m in shapes:
            args = (rng.standard_normal((n, m)).astype(np.float32),
                    rng.standard_normal(m).astype(np.float32))
            _assert_same(_outcome(native, args), _outcome(python, args))
        assert len(checked) == (len(shapes) if rounds == 0 else 0)
        del native._call                            # unwrap
    # inconsistent bindings and wrong ranks: the full checks' errors on both paths
    bad = [(np.ones((3, 2), np.float32), np.ones(3, np.float32)),
           (np.ones(3, np.float32), np.ones(3, np.float32)),
           (np.ones((3, 2), np.float32),)]
    for args in bad:
        a, b = _outcome(native, args), _outcome(python, args)
        assert a[0] == "error" and a[1] is ArgumentError
        _assert_same(a, b)


@needs_c
def test_params_updated_in_place_and_param_shaped_outputs():
    exe = _updating_graph()
    native, python = _pair(exe)
    rng = np.random.default_rng(2)
    for n in (3, 3, 0, 6, 3):
        x = rng.standard_normal((n, 4)).astype(np.float32)
        _assert_same(_outcome(native, (x,)), _outcome(python, (x,)))
        np.testing.assert_array_equal(native.params["w"], python.params["w"])
    w0 = native.params["w"].copy()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    checked = _count_full_checks(native)
    y, w2 = native(x)
    np.testing.assert_allclose(y, x @ w0, rtol=1e-6)
    np.testing.assert_array_equal(native.params["w"], -w0)          # updated in place
    native.set_params({"w": w0})                                    # a new value is used
    np.testing.assert_array_equal(native(x)[1], w0 * w0)
    assert checked == []
    # out= that is the param buffer itself, or overlaps it: the full check refuses it
    y_out = np.empty((3, 2), np.float32)
    a = _outcome(native, (x,), out={"y": y_out, "w2": native.params["w"]})
    b = _outcome(python, (x,), out={"y": y_out, "w2": python.params["w"]})
    assert a[0] == "error" and "overlaps" in a[2]
    _assert_same(a, b)


@needs_c
def test_awkward_and_wrong_arguments_take_the_full_checks(mixed):
    native, python = _pair(mixed)
    x, m, k, flag = _mixed_args(6, seed=3)
    _assert_same(_outcome(native, (x, m, k, flag)), _outcome(python, (x, m, k, flag)))
    wide = np.zeros((6, 6), np.float32)
    wide[:, ::2] = x
    raw = np.zeros(6 * 3 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(6, 3)
    raw[:] = x
    assert not raw.flags.aligned
    big_endian = x.astype(">f4")

    class Sub(np.ndarray):
        pass
    cases = [
        (wide[:, ::2], m, k, flag),                 # strided: copied
        (np.asfortranarray(x), m, k, flag),         # Fortran order: copied
        (raw, m, k, flag),                          # misaligned: copied
        (x.view(Sub), m, k, flag),                  # a subclass: checked, then used
        (x.tolist(), m, k, flag),                   # a list: float64 -> dtype error
        (x.astype(np.float64), m, k, flag),         # wrong dtype
        (big_endian, m, k, flag),                   # same kind, other byte order
        (x, m, k.astype(np.int64), flag),           # wrong int width
        (x, m, k, flag.astype(np.uint8)),           # not bool
        (x[:4], m[:4], k, flag),                    # inconsistent N
        (x[:, :2], m[:, :2], k, flag),              # wrong static dim
        (x, m, k),                                  # missing input
        (x, m, k, flag, flag),                      # one too many
    ]
    for args in cases:
        checked = _count_full_checks(native)
        _assert_same(_outcome(native, args), _outcome(python, args))
        assert len(checked) == 1, args
    ro = x.copy()
    ro.flags.writeable = False
    checked = _count_full_checks(native)            # read-only inputs are fine natively
    _assert_same(_outcome(native, (ro, m, k, flag)), _outcome(python, (ro, m, k, flag)))
    assert checked == []


@needs_c
def test_out_variants(mixed, two_symbols):
    native, python = _pair(mixed)
    args = _mixed_args(4, seed=4)
    native(*args)
    python(*args)

    def outs(n=4):
        return {"s": np.empty((n, 3), np.float32), "kk": np.empty(n, np.int32),
                "nf": np.empty(n, np.bool_), "sel": np.empty(n, np.float32)}
    o1, o2 = outs(), outs()
    checked = _count_full_checks(native)
    got = native(*args, out=o1)
    assert checked == [] and all(g is o1[name] for g, name in zip(got, o1))
    _assert_same(("ok", got), ("ok", python(*args, out=o2)))
    before = sys.getrefcount(o1["s"])
    for _ in range(10):
        native(*args, out=o1)
    after = sys.getrefcount(o1["s"])                # (outside the assert: pytest's rewrite
    assert after == before                          # holds a reference while it runs)

    def variant(change):
        a, b = outs(), outs()
        change(a, args)
        change(b, args)
        return a, b
    changes = [
        lambda o, a: o.__setitem__("s", np.empty((4, 3), np.float64)),     # dtype
        lambda o, a: o.__setitem__("s", np.empty((3, 4), np.float32)),     # shape
        lambda o, a: o.__setitem__("s", np.empty((3, 4), np.float32).T),   # not dense
        lambda o, a: o["s"].setflags(write=False),                         # read-only
        lambda o, a: o.__setitem__("s", a[0]),                             # an input
        lambda o, a: o.__setitem__("sel", o["s"][:, 0].copy().view(np.float32)),  # ok
        lambda o, a: o.__setitem__("sel", o["s"].reshape(-1)[:4]),         # another output
        lambda o, a: o.pop("nf"),                                          # missing
        lambda o, a: o.__setitem__("extra", o.pop("nf")),                  # unknown name
        lambda o, a: o.__setitem__("extra", np.empty(4, np.float32)),      # one too many
    ]
    for change in changes:
        a, b = variant(change)
        _assert_same(_outcome(native, args, out=a), _outcome(python, args, out=b))
    tup_a, tup_b = tuple(outs().values()), tuple(outs().values())   # tuples: the full path
    _assert_same(_outcome(native, args, out=tup_a), _outcome(python, args, out=tup_b))
    # one output: a bare array, and the bare array for a four-output graph
    nat1, py1 = _pair(two_symbols)
    x, b = np.ones((3, 2), np.float32), np.arange(2, dtype=np.float32)
    nat1(x, b)
    z = np.empty((3, 2), np.float32)
    checked = _count_full_checks(nat1)
    assert nat1(x, b, out=z) is z and checked == []
    np.testing.assert_array_equal(z, x + b)
    for out in (x, np.empty((2, 3), np.float32), np.empty((3, 2), np.float32)[::-1]):
        _assert_same(_outcome(nat1, (x, b), out=out), _outcome(py1, (x, b), out=out))
    _assert_same(_outcome(native, args, out=np.empty((4, 3), np.float32)),
                 _outcome(python, args, out=np.empty((4, 3), np.float32)))


@needs_c
def test_graph_without_data_inputs():
    g = Graph("consts")
    p = g.add_input("p", _t((3,)), "param", np.array([1, 2, 3], np.float32))
    g.add_output(emit(g, "neg", [p]), "q")
    native, python = _pair(graphc.compile(g))
    _assert_same(_outcome(native, ()), _outcome(python, ()))
    checked = _count_full_checks(native)
    np.testing.assert_array_equal(native(), [-1, -2, -3])
    assert checked == []


@needs_c
def test_call_dispatcher_keywords_and_signature(two_symbols):
    native, python = _pair(two_symbols)
    x, b = np.ones((3, 2), np.float32), np.arange(2, dtype=np.float32)
    z = np.empty((3, 2), np.float32)
    calls = [((x, b), {}), ((x, b), {"out": z}), ((x,), {"b": b}), ((), {"x": x, "b": b}),
             ((x,), {"b": b, "out": z}), ((x, b), {"out": z, "bogus": 1}), ((x, b, b), {}),
             ((x, b), {"out": None}), ((), {})]
    for _ in range(2):
        for args, kw in calls:
            _assert_same(_outcome(native, args, **kw), _outcome(python, args, **kw))
    checked = _count_full_checks(native)
    assert native.__call__(x, b, out=z) is z and type(native).__call__(native, x, b) is not z
    assert checked == []
    assert str(inspect.signature(native)) == "(*args, out=None, **named)"
    assert "Executable.__call__" in repr(native.__call__)
    with pytest.raises(TypeError):
        type(native).__call__()                     # no executable


# -- runtime errors, concurrency, contexts ------------------------------------------------------
@needs_c
def test_gather_out_of_range_raises_the_same_execution_error():
    native, python = _pair(_gather_graph())
    ok = np.array([0, 9], np.int64)
    _assert_same(_outcome(native, (ok,)), _outcome(python, (ok,)))
    checked = _count_full_checks(native)
    for bad in ([0, 10], [-1, 3], [2 ** 40, 1]):
        ids = np.array(bad, np.int64)
        a, b = _outcome(native, (ids,)), _outcome(python, (ids,))
        assert a[1] is ExecutionError and "model.py:7" in a[2] and "out of range [0, 10)" in a[2]
        _assert_same(a, b)
    assert checked == []                            # raised by the C path
    np.testing.assert_array_equal(native(ok), python(ok))    # the context is usable again
    assert native._native.counts()["idle_contexts"] == 1


@needs_c
def test_four_threads_with_several_bindings(mixed):
    native = _executable(mixed, True)
    for n in range(1, 8):
        native(*_mixed_args(n))
    errors = []

    def worker(seed):
        try:
            for k in range(300):
                n = 1 + (seed + k) % 7
                x, m, kk, flag = _mixed_args(n, seed)
                s, k2, nf, sel = native(x, m, kk, flag)
                np.testing.assert_array_equal(s, x * m + x)
                np.testing.assert_array_equal(k2, kk + kk)
                np.testing.assert_array_equal(nf, ~flag)
                np.testing.assert_array_equal(sel, np.where(flag, kk, -kk).astype(np.float32))
                if k % 50 == 0:                     # the Python path shares the contexts
                    np.testing.assert_array_equal(native(x, m, kk, flag=flag)[0], x * m + x)
        except Exception as e:                      # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert 1 <= native._native.counts()["idle_contexts"] <= 4


@needs_c
def test_context_free_list_and_rebinding(two_symbols):
    native = _executable(two_symbols, True)
    state = native._native
    assert state.pop_context() is None              # no context until the first call
    x3, x5 = np.ones((3, 2), np.float32), np.ones((5, 4), np.float32)
    native(x3, np.zeros(2, np.float32))
    native(x5, np.zeros(4, np.float32))
    ctx = state.pop_context()                       # the Python path holds it now
    assert ctx.binding == (5, 4) and state.pop_context() is None
    assert native(x3, np.ones(2, np.float32)) is not None      # a second context is made
    state.push_context(ctx)
    assert state.counts()["idle_contexts"] == 2
    for _ in range(3):                              # alternate bindings on the contexts
        np.testing.assert_array_equal(native(x3, np.ones(2, np.float32)), x3 + 1)
        np.testing.assert_array_equal(native(x5, np.full(4, 2, np.float32)), x5 + 2)
    assert native._native.call((x3,), None) is None              # refused: the Python path
    assert native._native.call((x3, np.ones(3, np.float32)), None) is None   # not accepted


# -- no leaks ---------------------------------------------------------------------------------
def _traced_growth(fn, calls):
    for _ in range(1000):
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@needs_c
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS from /proc (Linux)")
def test_resident_memory_stays_flat(mixed):
    """What tracemalloc cannot see (malloc in numpy's buffer export or in the extension):
    1e5 calls of each kind must not grow the resident set by more than 4 MB (a leak of even
    one small block per call would be 5+ MB)."""
    native = _executable(mixed, True)
    args = _mixed_args(8, seed=6)
    outs = {"s": np.empty((8, 3), np.float32), "kk": np.empty(8, np.int32),
            "nf": np.empty(8, np.bool_), "sel": np.empty(8, np.float32)}
    for _ in range(2000):
        native(*args)
        native(*args, out=outs)
    gc.collect()
    before = _rss_bytes()
    for _ in range(100_000):
        native(*args)
        native(*args, out=outs)
    gc.collect()
    assert _rss_bytes() - before < 4 * 2 ** 20


@needs_c
def test_no_leaked_references_or_memory(mixed):
    native = _executable(mixed, True)
    args = _mixed_args(8, seed=5)
    outs = {"s": np.empty((8, 3), np.float32), "kk": np.empty(8, np.int32),
            "nf": np.empty(8, np.bool_), "sel": np.empty(8, np.float32)}
    native(*args)
    wide = np.zeros((8, 6), np.float32)
    refs = [sys.getrefcount(a) for a in list(args) + list(outs.values()) + [wide]]

    def bad_out():
        try:
            native(*args, out={**outs, "s": args[0]})
        except ArgumentError:
            pass
    for _ in range(2000):
        result = native(*args)
        counts = (sys.getrefcount(result), sys.getrefcount(result[1]))
        assert counts == (2, 2)                     # the variable (the tuple) + the argument
        native(*args, out=outs)
        native(wide[:, ::2], *args[1:])            # refused natively, copied by the full path
        bad_out()
    del result
    after = [sys.getrefcount(a) for a in list(args) + list(outs.values()) + [wide]]
    assert refs == after
    assert _traced_growth(lambda: native(*args), 100_000) < 64 * 1024
    assert _traced_growth(lambda: native(*args, out=outs), 100_000) < 64 * 1024
    assert _traced_growth(bad_out, 10_000) < 64 * 1024

    gather = _executable(_gather_graph(), True)
    ids = np.array([1, 11], np.int64)

    def failing():
        try:
            gather(ids)
        except ExecutionError:
            pass
    gather(np.array([1], np.int64))
    gather(np.array([2, 3], np.int64))
    before = sys.getrefcount(ids)
    assert _traced_growth(failing, 10_000) < 64 * 1024
    after = sys.getrefcount(ids)
    assert after == before


# -- without the extension ---------------------------------------------------------------------
def test_python_path_when_the_extension_is_off(mixed, monkeypatch):
    monkeypatch.setattr(boundary, "ENABLED", False)
    assert "switched off" in boundary.unavailable_reason() or not BUILT
    exe = _executable(mixed, False)
    calls = []
    real = exe._fast_call
    exe._fast_call = lambda *a: calls.append(1) or real(*a)
    args = _mixed_args(5)
    for _ in range(3):
        s, kk, nf, sel = exe(*args)
        np.testing.assert_array_equal(s, args[0] * args[1] + args[0])
    assert len(calls) == 3 and exe._native is None and len(exe._pool) == 1
    with pytest.raises(ArgumentError, match="expected dtype f32"):
        exe(args[0].astype(np.float64), *args[1:])


def test_call_is_the_python_method_without_the_extension():
    if BUILT:
        assert type(Executable.__dict__["__call__"]).__name__ == "Dispatch"
    else:
        assert Executable.__call__ is Executable._python_call


def test_a_build_of_another_interface_version_is_not_used():
    class Stale:
        INTERFACE_VERSION = boundary.INTERFACE_VERSION - 1
    assert "rebuild it" in boundary.interface_problem(Stale)
    assert "rebuild it" in boundary.interface_problem(object())
    if BUILT:
        assert boundary.interface_problem(boundary._boundary) is None


def test_unavailable_reason_names_the_cause():
    reason = boundary.unavailable_reason()
    if BUILT and boundary.ENABLED:
        assert reason is None
    else:
        assert "runtime._boundary" in reason or "switched off" in reason
