"""The Executable's fast call path (shapes a full check accepted before are not checked
again): after a first call, every awkward or wrong argument of the same shapes still takes
the full checks (copies or clear errors), results stay right, and concurrent callers each
get their own call context."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import graphc
from ir import ArgumentError, Graph, TensorType, emit


@pytest.fixture(scope="module")
def exe():
    g = Graph("fast")
    x = g.add_input("x", TensorType(("N", 6), "f32"))
    y = g.add_input("y", TensorType(("N", 6), "f32"))
    g.add_output(emit(g, "add", [emit(g, "mul", [x, y]), x]), "z")
    return graphc.compile(g)


def _xy(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 6)).astype(np.float32),
            rng.standard_normal((n, 6)).astype(np.float32))


def test_repeated_calls_and_awkward_arrays_of_accepted_shapes(exe):
    x, y = _xy(5)
    want = x * y + x
    for _ in range(3):                                    # first call: full check
        np.testing.assert_array_equal(exe(x, y), want)
    # same shapes, but not dense / not writeable: the full path copies them
    xf = np.asfortranarray(x)
    np.testing.assert_array_equal(exe(xf, y), want)
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(exe(ro, y), want)
    big = np.zeros((5, 12), np.float32)
    big[:, ::2] = x
    np.testing.assert_array_equal(exe(big[:, ::2], y), want)       # strided view
    # fresh output arrays every call
    assert exe(x, y) is not exe(x, y)


def test_wrong_arguments_of_accepted_shapes_still_raise(exe):
    x, y = _xy(4)
    exe(x, y)
    with pytest.raises(ArgumentError, match="dtype"):
        exe(x.astype(np.float64), y)
    with pytest.raises(ArgumentError, match="takes 2 input"):
        exe(x, y, y)
    with pytest.raises(ArgumentError, match="inconsistently"):
        exe(x, _xy(3)[1])
    with pytest.raises(ArgumentError, match="missing"):
        exe(x)


def test_concurrent_callers(exe):
    errors = []

    def worker(seed):
        try:
            for k in range(200):
                x, y = _xy(1 + (seed + k) % 7, seed)
                np.testing.assert_array_equal(exe(x, y), x * y + x)
        except Exception as e:                # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def test_out_arrays_on_the_fast_path(exe):
    x, y = _xy(5, 3)
    want = x * y + x
    exe(x, y)                                             # accept the shapes
    z = np.empty((5, 6), np.float32)
    for out in (z, {"z": z}):
        z[:] = 0
        assert exe(x, y, out=out) is z
        np.testing.assert_array_equal(z, want)
    with pytest.raises(ArgumentError, match="overlaps"):
        exe(x, y, out=x)                                  # the output would clobber an input
    with pytest.raises(ArgumentError, match="expected a float32"):
        exe(x, y, out=np.empty((5, 6), np.float64))
    with pytest.raises(ArgumentError, match="C-contiguous"):
        exe(x, y, out=np.empty((6, 5), np.float32).T)
    with pytest.raises(ArgumentError, match="exactly the outputs"):
        exe(x, y, out={"nope": z})
