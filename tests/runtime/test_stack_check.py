"""A thread whose stack is too small for compiled code (a matrix product keeps up to 512 KiB
on the stack) is refused with a clear error on both call paths (the C boundary and the
Python path), once per thread; threads with a big enough stack and the main thread run."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import graphc
from ir import Graph, TensorType, emit
from runtime import Executable, boundary
from runtime.stack_check import MIN_STACK_BYTES, StackError, thread_stack_bytes


@pytest.fixture(scope="module")
def matmul_exe():
    g = Graph("stack_mm")
    a = g.add_input("a", TensorType((64, 64), "f32"))
    b = g.add_input("b", TensorType((64, 64), "f32"))
    g.add_output(emit(g, "matmul", [a, b], {"transpose_a": False, "transpose_b": False}), "c")
    return graphc.compile(g)


def _paths(exe):
    made = []
    for native in ([True, False] if boundary._boundary is not None else [False]):
        saved = boundary.ENABLED
        boundary.ENABLED = native
        try:
            made.append(Executable(exe.compiled, exe.graph))
        finally:
            boundary.ENABLED = saved
    return made


def _in_thread(stack_bytes, fn):
    """fn() on a new thread with a `stack_bytes` stack: (result, exception)."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except Exception as e:            # noqa: BLE001 - handed back to the test
            box["error"] = e
    saved = threading.stack_size()
    threading.stack_size(stack_bytes)
    try:
        t = threading.Thread(target=run)
        t.start()
    finally:
        threading.stack_size(saved)
    t.join()
    return box.get("result"), box.get("error")


def test_main_thread_stack_is_read():
    size = thread_stack_bytes()
    assert size is None or size >= MIN_STACK_BYTES


def test_small_stack_thread_is_refused_on_both_paths(matmul_exe):
    a = np.ones((64, 64), np.float32)
    for exe in _paths(matmul_exe):
        for _ in range(2):                # and again: a refusal is not cached as a pass
            result, error = _in_thread(256 * 1024, lambda: exe(a, a))
            assert result is None
            assert isinstance(error, StackError), error
            msg = str(error)
            assert "256 KiB stack" in msg and "1024 KiB" in msg and "stack_mm" in msg
            assert "threading.stack_size" in msg


def test_big_enough_stack_thread_runs(matmul_exe):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64)).astype(np.float32)
    for exe in _paths(matmul_exe):
        result, error = _in_thread(2 * MIN_STACK_BYTES, lambda: exe(a, a))
        assert error is None
        np.testing.assert_allclose(result, a @ a, rtol=1e-4, atol=1e-4)
