"""Bundles in C: the header compiles warning-free under -std=c99 -Wall -Wextra -Werror,
examples/export_c/main.c links against model.o and libm alone (libpthread only where the C
library needs it), its outputs match Python's, with 1 and 2 threads, and the program runs
with no Python anywhere (empty environment, only weights.bin next to it)."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from bundle_cases import MAIN_C, c_inputs, export_example

GCC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(GCC is None, reason="gcc is not installed")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def built(request, tmp_path_factory):
    """(name, in-process executable, bundle dir, program path, libraries linked)."""
    work = tmp_path_factory.mktemp(f"{request.param}_c")
    bundle = work / "bundle"
    exe, manifest = export_example(request.param, bundle)
    program = str(work / "main")
    libs = ["-lm"]
    cmd = [GCC, *STRICT, "-O1", "-I", str(bundle), MAIN_C, str(bundle / "model.o"), "-o",
           program]
    proc = subprocess.run(cmd + libs, capture_output=True, text=True)
    if proc.returncode != 0 and "pthread" in proc.stderr and "-lpthread" in manifest["link"]:
        libs.append("-lpthread")                 # a C library before glibc 2.34
        proc = subprocess.run(cmd + libs, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""                      # no warnings (and -Werror) at all
    return request.param, exe, bundle, program, libs, manifest


def test_header_alone_compiles_warning_free(built, tmp_path):
    _, _, bundle, _, _, _ = built
    proc = subprocess.run([GCC, *STRICT, "-fsyntax-only", "-x", "c", str(bundle / "model.h")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # and twice in one unit, from C++ guards' point of view too (include guard)
    src = tmp_path / "twice.c"
    src.write_text('#include "model.h"\n#include "model.h"\nint main(void) { return 0; }\n')
    proc = subprocess.run([GCC, *STRICT, "-I", str(bundle), "-c", str(src), "-o",
                           str(tmp_path / "twice.o")], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def _run(program, args, env=None, cwd=None):
    proc = subprocess.run([program, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc


def _parse(stdout: str) -> dict:
    outputs, lines, at = {}, stdout.splitlines(), 0
    while at < len(lines):
        _, name, count = lines[at].split()
        n = int(count)
        outputs[name] = np.array([float(v) for v in lines[at + 1:at + 1 + n]])
        at += 1 + n
    return outputs


@pytest.mark.parametrize("n", [3, 64])
def test_c_outputs_match_python(built, n):
    name, exe, bundle, program, _, _ = built
    want = exe(*c_inputs(exe, N=n))
    for threads in ("1", "2"):
        proc = _run(program, [str(bundle), str(n)],
                    env=dict(os.environ, GRAPHC_NUM_THREADS=threads))
        assert f"threads: {threads}" in proc.stderr        # graphc_init started them
        got = _parse(proc.stdout)[exe.output_names[0]]
        np.testing.assert_allclose(got, want.ravel(), rtol=1e-6, atol=1e-6)


def test_c_threads_capped_at_cpus_online(built):
    """graphc_init never starts more threads than CPUs (regions would wait on workers
    that are not running)."""
    name, exe, bundle, program, _, _ = built
    proc = _run(program, [str(bundle), "3"], env=dict(os.environ, GRAPHC_NUM_THREADS="512"))
    assert f"threads: {os.sysconf('SC_NPROCESSORS_ONLN')}" in proc.stderr


def test_c_reads_inputs_from_a_file(built, tmp_path):
    name, exe, bundle, program, _, _ = built
    x = np.random.default_rng(5).standard_normal(
        (4,) + tuple(exe.graph.inputs[0].type.shape[1:])).astype("<f4")
    path = tmp_path / "x.bin"
    path.write_bytes(x.tobytes())
    got = _parse(_run(program, [str(bundle), "4", "-i", str(path)]).stdout)
    np.testing.assert_allclose(got[exe.output_names[0]], exe(x).ravel(), rtol=1e-6, atol=1e-6)


def test_program_never_needs_python(built, tmp_path):
    """Only the program and weights.bin, an empty environment, another directory: it runs;
    its dynamic dependencies are the C libraries alone."""
    name, exe, bundle, program, libs, manifest = built
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(program, alone / "main")
    shutil.copy(bundle / "weights.bin", alone / "weights.bin")
    proc = _run(str(alone / "main"), [".", "3"], env={}, cwd=str(alone))
    want = exe(*c_inputs(exe, N=3))
    np.testing.assert_allclose(_parse(proc.stdout)[exe.output_names[0]], want.ravel(),
                               rtol=1e-6, atol=1e-6)
    readelf = shutil.which("readelf")
    if readelf:
        dynamic = subprocess.run([readelf, "-d", str(alone / "main")], capture_output=True,
                                 text=True).stdout
        needed = {line.split("[")[1].split("]")[0] for line in dynamic.splitlines()
                  if "(NEEDED)" in line}
        assert needed and all(lib.split(".so")[0] in ("libc", "libm", "libpthread")
                              for lib in needed), needed
    # what model.o needs from those libraries is exactly what the manifest lists
    from runtime.bundle.native import elf_symbols
    assert elf_symbols((bundle / "model.o").read_bytes())[1] == manifest["undefined_symbols"]


def test_c_runs_a_training_step(tmp_path):
    """A Model's train-step bundle in C: the loss main.c prints is the loaded bundle's on
    the same inputs (integer labels, scalar lr/step/loss_scale included)."""
    import graphc as gc
    from graphc import optim
    from graphc.losses import SoftmaxCrossEntropy
    from graphc.nn import Dense, Net, ReLU
    model = gc.Model(Net([Dense(8), ReLU(), Dense(3)], seed=0), SoftmaxCrossEntropy(),
                     optim.Adam(lr=0.01))
    model.build((5,))
    bundle = tmp_path / "step"
    model.export(str(bundle), what="train_step", y=np.zeros(4, np.int64))
    program = str(tmp_path / "main")
    proc = subprocess.run([GCC, *STRICT, "-I", str(bundle), MAIN_C, str(bundle / "model.o"),
                           "-lm", "-lpthread", "-o", program], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    loaded = gc.load(str(bundle))
    want = loaded(*c_inputs(loaded, N=6))
    got = _parse(_run(program, [str(bundle), "6"]).stdout)
    assert list(got) == ["loss"]
    np.testing.assert_allclose(got["loss"], [float(want)], rtol=1e-6, atol=1e-6)


def test_c_program_refuses_symbol_values_the_graph_cannot_run_with(tmp_path):
    """A slice from N-3 needs N >= 3: model.h's GRAPHC_SYMBOLS_VALID says so, main.c checks
    it (native code checks nothing), and the manifest lists the constraint."""
    import graphc
    from ir import Graph, TensorType, emit, sym
    n = sym("N")
    g = Graph("tail")
    x = g.add_input("x", TensorType(("N", 4), "f32"))
    tail = emit(g, "slice", [x], {"starts": (n - 3, 0), "stops": (n, 4), "steps": (1, 1)})
    g.add_output(emit(g, "exp", [tail]), "y")
    exe = graphc.compile(g)
    bundle = tmp_path / "bundle"
    manifest = graphc.export(exe, str(bundle))
    assert manifest["symbol_constraints"] == ["N-3"]
    assert "GRAPHC_SYMBOLS_VALID(s) (((s)[0] >= 0) && (((int64_t)-3 + (s)[0]) >= 0))" in \
        (bundle / "model.h").read_text()
    program = str(tmp_path / "main")
    proc = subprocess.run([GCC, *STRICT, "-I", str(bundle), MAIN_C, str(bundle / "model.o"),
                           "-o", program, "-lm", "-lpthread"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ok = _run(program, [str(bundle), "5"])
    np.testing.assert_allclose(_parse(ok.stdout)["y"], exe(*c_inputs(exe, N=5)).ravel(),
                               rtol=1e-6, atol=1e-6)
    for bad in ("2", "-1"):
        proc = subprocess.run([program, str(bundle), bad], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and "symbol values out of range" in proc.stderr
