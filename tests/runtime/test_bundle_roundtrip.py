"""Bundles in Python: export the MLP and CNN examples, load them in a fresh process (where
LLVM optimisation and code generation are forbidden) and get bit-identical outputs at two
batch sizes; the loaded executable keeps the call boundary's checks and messages."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graphc
from ir import ArgumentError, GraphcError

from bundle_cases import export_example, run_fresh
from parts_graph import graph_in_parts

BATCHES = (3, 67)


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def exported(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"{request.param}_bundle")
    exe, manifest = export_example(request.param, directory)
    return request.param, exe, directory, manifest


def test_bundle_layout(exported):
    name, exe, directory, manifest = exported
    files = sorted(os.listdir(directory))
    assert {"manifest.json", "model.o", "model.h", "weights.bin", "model.gir"} <= set(files)
    assert not [f for f in files if f.endswith((".pkl", ".pickle"))]
    assert manifest["format"] == "graphc-bundle/1"
    assert manifest["symbols"] == ["N"]
    table = manifest["argument_table"]
    assert [e["name"] for e in table["inputs"]] == ["x"]
    assert [e["index"] for e in table["params"]] == list(range(2, 2 + len(table["params"])))
    assert table["arena"] == 2 + len(table["params"]) and table["errinfo"] == table["arena"] + 1
    # weights: every tensor 64-byte aligned, bytes equal the executable's params
    with open(os.path.join(directory, "weights.bin"), "rb") as f:
        blob = f.read()
    for t in manifest["tensors"]:
        assert t["offset"] % 64 == 0
        arr = np.frombuffer(blob[t["offset"]:t["offset"] + t["nbytes"]], "<f4")
        np.testing.assert_array_equal(arr.reshape(t["shape"]), exe.params[t["name"]])
    # one object, only the public entry points exported, its needs listed
    from runtime.bundle.native import elf_symbols
    with open(os.path.join(directory, "model.o"), "rb") as f:
        defined, undefined = elf_symbols(f.read())
    assert defined == sorted(["graphc_entry", "graphc_arena_bytes", "graphc_init",
                              "graphc_bind_pool"])
    assert undefined == manifest["undefined_symbols"]
    assert set(undefined) <= {"pthread_create", "pthread_detach", "sched_yield", "sched_getcpu",
                              "syscall", "sysconf", "memcpy", "memset", "memmove", "expf", "logf"}
    with open(os.path.join(directory, "manifest.json")) as f:
        assert json.load(f)["files"]["model.o"]["sha256"] == manifest["files"]["model.o"]["sha256"]


def test_fresh_process_outputs_bit_identical(exported, tmp_path):
    name, exe, directory, _ = exported
    rng = np.random.default_rng(7)
    shape = exe.graph.inputs_with_role("input")[0].type.shape
    inputs = {f"n{n}": rng.standard_normal((n,) + tuple(shape[1:])).astype(np.float32)
              for n in BATCHES}
    results, info = run_fresh(directory, inputs, tmp_path)
    for key, x in inputs.items():
        expected = exe(x)
        got = results[f"{key}:{exe.output_names[0]}"]
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert np.array_equal(got, expected), f"{name} batch {len(x)} differs"
    assert info["timings"]["load_object"] >= 0 and "optimise_and_codegen" not in info["timings"]


def test_load_in_process_runs_like_the_compiled(exported):
    name, exe, directory, _ = exported
    loaded = graphc.load(directory)
    assert loaded.input_names == exe.input_names and loaded.output_names == exe.output_names
    assert loaded.symbols == exe.symbols
    x = np.random.default_rng(3).standard_normal(
        (5,) + tuple(exe.graph.inputs[0].type.shape[1:])).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), exe(x))
    np.testing.assert_array_equal(loaded.run({"x": x})[exe.output_names[0]], exe(x))
    assert loaded.arena_bytes(N=9) == exe.arena_bytes(N=9)
    assert loaded.kernel_count == exe.kernel_count
    for pname, value in exe.params.items():
        np.testing.assert_array_equal(loaded.params[pname], value)


def _error(fn):
    try:
        fn()
    except GraphcError as e:
        return type(e), str(e)
    raise AssertionError("expected an error")


def test_bad_calls_get_the_compiled_errors(exported):
    name, exe, directory, _ = exported
    loaded = graphc.load(directory)
    feat = tuple(exe.graph.inputs[0].type.shape[1:])
    good = np.zeros((2,) + feat, np.float32)
    bad_calls = [
        lambda e: e(good.astype(np.float64)),                      # dtype
        lambda e: e(good[0]),                                      # rank
        lambda e: e(np.zeros((2,) + feat[:-1] + (feat[-1] + 1,), np.float32)),   # dim
        lambda e: e(),                                             # missing input
        lambda e: e(good, good),                                   # too many
        lambda e: e(x=good, z=good),                               # unknown name
        lambda e: e.run({"nope": good}),
        lambda e: e(good, out=np.zeros((3, 1), np.float32)),      # bad out=
        lambda e: e.set_params({"nope": 1}),
        lambda e: e.arena_bytes(),
    ]
    for call in bad_calls:
        expected = _error(lambda: call(exe))
        got = _error(lambda: call(loaded))
        assert got == expected
        assert issubclass(got[0], ArgumentError)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="parts are compiled in forked children")
def test_module_built_in_parts_exports_as_one_object(tmp_path, monkeypatch):
    from runtime import Executable, compile_graph, parallel_compile
    from runtime.bundle.native import elf_symbols
    monkeypatch.setenv("GRAPHC_CACHE", "0")
    monkeypatch.setattr(parallel_compile, "parts_for", lambda n: 2)
    g = graph_in_parts()
    compiled = compile_graph(g, cache=False)
    assert compiled.timings["parts"] == 2
    exe = Executable(compiled, g)
    manifest = graphc.export(exe, str(tmp_path / "parts"))
    with open(tmp_path / "parts" / "model.o", "rb") as f:
        defined, _ = elf_symbols(f.read())
    assert not [s for s in defined if s.startswith("graphc.k")]    # kernels are internal
    loaded = graphc.load(str(tmp_path / "parts"))
    x = np.random.default_rng(3).standard_normal((5, 24)).astype(np.float32) * 0.1
    got, want = loaded.run({"x": x}), exe.run({"x": x})
    assert manifest["argument_table"]["outputs"][0]["name"] == "s"
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_thread_count_of_a_loaded_bundle(tmp_path):
    from runtime import threads
    exe, _ = export_example("mlp", tmp_path / "b")
    loaded = graphc.load(str(tmp_path / "b"), threads=1)
    assert loaded.compiled.jit.threads == 1
    x = np.random.default_rng(1).standard_normal((256, 784)).astype(np.float32)
    one = loaded(x)
    threads.set_threads(loaded, 2)
    assert loaded.compiled.jit.threads == min(2, threads.available_cpus())
    np.testing.assert_array_equal(loaded(x), one)
    np.testing.assert_array_equal(one, exe(x))
    threads.set_threads(loaded, None)
    assert loaded.compiled.jit.threads == threads.num_threads()


def test_other_llvmlite_version_alone_is_not_refused(tmp_path):
    """model.o is a plain ELF object: a different llvmlite/LLVM only matters if this LLVM
    cannot load it (then the error names both versions)."""
    _, manifest = export_example("mlp", tmp_path / "b")
    path = tmp_path / "b" / "manifest.json"
    data = json.loads(path.read_text())
    data.update(llvmlite_version="0.40.0", llvm_version="14.0.6")
    path.write_text(json.dumps(data))
    loaded = graphc.load(str(tmp_path / "b"))
    assert loaded.bundle["llvmlite_version"] == "0.40.0"
    assert loaded(np.zeros((1, 784), np.float32)).shape == (1, 10)


def test_large_constants_travel_in_the_ir_sidecar(tmp_path):
    """A graph constant too large to print inline goes to model.gir.weights.npz (checked
    like every file); the loaded bundle computes with it."""
    from ir import Graph, TensorType, emit
    g = Graph("shifted")
    x = g.add_input("x", TensorType(("N", 64), "f32"))
    c = emit(g, "constant", [], {"value": np.linspace(-2, 2, 64, dtype=np.float32)})
    g.add_output(emit(g, "add", [x, emit(g, "broadcast", [c], {"shape": ("N", 64),
                                                                "dims": (1,)})]), "y")
    exe = graphc.compile(g, opt_level=0)
    manifest = graphc.export(exe, str(tmp_path / "b"))
    assert "model.gir.weights.npz" in manifest["files"]
    x = np.ones((3, 64), np.float32)
    np.testing.assert_array_equal(graphc.load(str(tmp_path / "b"))(x), exe(x))
    os.remove(tmp_path / "b" / "model.gir.weights.npz")
    with pytest.raises(graphc.GraphcError, match="expected the file model.gir.weights.npz"):
        graphc.load(str(tmp_path / "b"))
