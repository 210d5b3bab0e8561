"""Helpers of the bundle tests: export the example graphs, run a bundle in a fresh process,
and the deterministic inputs examples/export_c/main.c generates."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import graphc
from ir.serialize import load_gir
from ir.symbolic import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")
MAIN_C = os.path.join(EXAMPLES, "export_c", "main.c")


def compile_example(name: str):
    return graphc.compile(load_gir(os.path.join(EXAMPLES, f"{name}.gir")))


def export_example(name: str, directory) -> tuple:
    """(in-process executable, manifest) of examples/<name>.gir exported to `directory`."""
    exe = compile_example(name)
    return exe, graphc.export(exe, str(directory))


def c_inputs(exe, **symbols) -> list:
    """The inputs main.c generates without -i (same formula, same rounding)."""
    env = dict(symbols)
    out = []
    for k, v in enumerate(exe.graph.inputs_with_role("input")):
        shape = tuple(evaluate(d, env) for d in v.type.shape)
        n = int(np.prod(shape))
        i = np.arange(n, dtype=np.int64)
        if v.type.dtype.name in ("f32", "f64"):
            vals = ((i * 7919 + k * 104729) % 1000) / 1000.0 - 0.5
        else:
            vals = (i + k) % 2
        out.append(vals.astype(v.type.dtype.np_dtype).reshape(shape))
    return out


LOAD_SCRIPT = r"""
import json, sys
import numpy as np
import llvmlite.binding as llvm
import runtime.target, runtime.parallel_compile, runtime.jit, runtime.pool, runtime.threads

# the process's thread pool is runtime infrastructure shared by every graph (built once per
# process, from the on-disk cache when there): start it first, then forbid all compiling
runtime.threads.ensure_pool()

def forbidden(name):
    def fail(*a, **k):
        raise AssertionError(f"loading a bundle called {name}")
    return fail
# loading must not optimise, generate code or build the process's thread pool
runtime.target.Target.optimise = forbidden("Target.optimise")
runtime.target.Target.emit_object = forbidden("Target.emit_object")
runtime.target.Target.emit_assembly = forbidden("Target.emit_assembly")
runtime.parallel_compile.compile_one = forbidden("compile_one")
runtime.parallel_compile.compile_parts = forbidden("compile_parts")
runtime.jit.JitModule.__init__ = forbidden("JitModule")
runtime.pool._Pool._build = forbidden("the process thread pool")
llvm.ModuleRef.verify = forbidden("ModuleRef.verify")

import graphc
bundle, inputs_path, out_path = sys.argv[1:4]
exe = graphc.load(bundle)
arrays = np.load(inputs_path)
results = {}
for key in sorted(arrays.files):
    outs = exe.run({exe.input_names[0]: arrays[key]})      # the examples have one input
    for name, value in outs.items():
        results[key + ":" + name] = value
np.savez(out_path, **results)
print(json.dumps({"timings": exe.compiled.timings, "threads": exe.compiled.jit.threads}))
"""


def run_fresh(bundle, inputs: dict, tmp_path) -> tuple:
    """Load `bundle` in a new Python process (where optimisation and codegen raise) and run
    each input array of `inputs` {key: array}; returns ({"key:output": array}, load info)."""
    inputs_path = os.path.join(str(tmp_path), "inputs.npz")
    out_path = os.path.join(str(tmp_path), "outputs.npz")
    np.savez(inputs_path, **inputs)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(bundle), inputs_path,
                           out_path], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    with np.load(out_path) as f:
        results = {k: f[k] for k in f.files}
    return results, json.loads(proc.stdout.strip().splitlines()[-1])
