"""The on-disk object cache (runtime/objcache.py): a second compile in a fresh in-memory
state loads the object file (no IR built, no LLVM run) and the buffer placement, and computes
the same results; corrupted entries are ignored and rebuilt; GRAPHC_CACHE=0 writes nothing."""
from __future__ import annotations

import glob
import os

import numpy as np

from ir import Graph, TensorType, emit
from runtime import compile_graph, Executable


def _graph():
    g = Graph("cached")
    x = g.add_input("x", TensorType(("N", 40), "f32"))
    w = g.add_input("w", TensorType((40, 24), "f32"), role="param")
    g.initializers["w"] = np.linspace(-1, 1, 40 * 24, dtype=np.float32).reshape(40, 24)
    y = emit(g, "matmul", [x, w], {"transpose_a": False, "transpose_b": False})
    g.add_output(emit(g, "relu", [y]), "y")
    return g


def _run(code, g, x):
    return Executable(code, g)(x)


def test_second_compile_loads_the_object_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CACHE", "1")
    g = _graph()
    x = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32)
    first = compile_graph(g, cache=False)
    assert "load_object" not in first.timings
    # (the thread pool's own object may sit beside it: graph entries have a placement)
    entries = [p for p in glob.glob(os.path.join(tmp_path, "*", "*.o"))
               if os.path.exists(p[:-2] + ".plan.json")]
    assert len(entries) == 1
    second = compile_graph(g, cache=False)
    assert "load_object" in second.timings and "optimise" not in second.timings
    np.testing.assert_array_equal(_run(first, g, x), _run(second, g, x))
    assert "graphc_entry" in second.llvm_ir          # IR rebuilt on request

    with open(entries[0], "r+b") as f:               # corrupt the payload
        f.seek(-16, os.SEEK_END)
        f.write(b"\0" * 16)
    third = compile_graph(g, cache=False)
    assert "load_object" not in third.timings         # ignored, rebuilt, rewritten
    np.testing.assert_array_equal(_run(third, g, x), _run(first, g, x))
    assert "load_object" in compile_graph(g, cache=False).timings


def test_cache_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    compile_graph(_graph(), cache=False)
    assert not glob.glob(os.path.join(tmp_path, "*", "*.o"))


def test_placement_side_entry_is_reused_and_checked(tmp_path, monkeypatch):
    from runtime.plan import placement_of
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHC_CACHE", "1")
    g = Graph("placed")
    x = g.add_input("x", TensorType(("N", 8), "f32"))
    h = emit(g, "exp", [emit(g, "reduce_sum", [x], {"axes": (1,), "keepdims": True})])
    h2 = emit(g, "matmul", [emit(g, "broadcast", [h], {"shape": ("N", 8), "dims": (0, 1)}),
                            emit(g, "constant", [], {"value": np.eye(8, dtype=np.float32)})],
              {"transpose_a": False, "transpose_b": False})
    g.add_output(emit(g, "mul", [h2, x]), "y")
    xv = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    first = compile_graph(g, cache=False)
    (side,) = glob.glob(os.path.join(tmp_path, "*", "*.plan.json"))
    second = compile_graph(g, cache=False)                 # placement from the side entry
    assert placement_of(second.plan) == placement_of(first.plan)
    assert [s.offset for s in second.plan.slots] == [s.offset for s in first.plan.slots]
    np.testing.assert_array_equal(_run(second, g, xv), _run(first, g, xv))
    import json
    entry = json.load(open(side))
    edited = dict(entry, value=[["0"] for _ in entry["value"]])   # wrong offsets, old checksum
    for junk in ("not json", "[1, 2]", '{"value": [["N*"]], "sha256": "x"}',
                 json.dumps(edited)):                      # ignored: planned from scratch
        with open(side, "w") as f:
            f.write(junk)
        again = compile_graph(g, cache=False)
        assert placement_of(again.plan) == placement_of(first.plan)
        np.testing.assert_array_equal(_run(again, g, xv), _run(first, g, xv))
