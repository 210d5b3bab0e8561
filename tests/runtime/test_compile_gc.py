"""The compile pauses Python's cyclic garbage collector (runtime/compile.py gc_paused) and
leaves it as it found it; the llvmlite modules it built are released."""
from __future__ import annotations

import gc
import threading

import numpy as np

from ir import Graph, TensorType, emit
from runtime import Executable, compile_graph
from runtime import compile as rc


def _graph(name: str) -> Graph:
    g = Graph(name)
    x = g.add_input("x", TensorType(("N", 8), "f32"))
    g.add_output(emit(g, "tanh", [emit(g, "mul", [x, x])]), "y")
    return g


def test_collector_off_during_compile_and_restored_after(monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    seen = []
    real = rc.build_modules

    def build_modules(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)
    monkeypatch.setattr(rc, "build_modules", build_modules)
    assert gc.isenabled()
    code = compile_graph(_graph("gc_on"), cache=False)
    assert seen == [False] and gc.isenabled()
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)
    np.testing.assert_allclose(Executable(code, code.graph).run({"x": x})["y"],
                               np.tanh(x * x), rtol=1e-6, atol=1e-6)


def test_collector_left_off_if_it_was_off(monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    gc.disable()
    try:
        compile_graph(_graph("gc_off"), cache=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_nested_and_concurrent_pauses_end_with_the_last():
    with rc.gc_paused():
        with rc.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        inside, done = threading.Event(), threading.Event()

        def other():
            with rc.gc_paused():
                inside.set()
                done.wait(5)
        t = threading.Thread(target=other)
        t.start()
        assert inside.wait(5)
    assert not gc.isenabled()           # the other thread's compile still runs
    done.set()
    t.join()
    assert gc.isenabled()


def test_released_modules_hold_no_instructions():
    import llvmlite.ir as llir
    m = llir.Module()
    fn = llir.Function(m, llir.FunctionType(llir.VoidType(), []), name="f")
    llir.IRBuilder(fn.append_basic_block()).ret_void()
    rc._release([m])
    assert not fn.blocks and not m.globals
