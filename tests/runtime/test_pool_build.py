"""The thread pool's build (runtime/pool.py), in fresh processes (one pool per process): one
LLVM code generation, whose object both runs and goes to the on-disk cache; a process that
finds it there loads it without building the pool's IR; without the cache nothing is written."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import json
import llvmlite.binding as llvm
from runtime import pool, target

seen = {"pool_ir": 0, "emit_object": 0, "engines_from_ir": 0}
_emit, _ir, _mcjit = target.Target.emit_object, pool._PoolIR.__init__, llvm.create_mcjit_compiler

def emit_object(self, *a, **k):
    seen["emit_object"] += 1
    return _emit(self, *a, **k)

def pool_ir(self, *a, **k):
    seen["pool_ir"] += 1
    return _ir(self, *a, **k)

def mcjit(module, tm):
    seen["engines_from_ir"] += bool(list(module.functions))   # else: an object goes in
    return _mcjit(module, tm)

target.Target.emit_object, pool._PoolIR.__init__ = emit_object, pool_ir
pool.llvm.create_mcjit_compiler = mcjit
seen["workers"] = pool.POOL.ensure(1)
seen["ticks_per_us"] = pool.ticks_per_us()          # runs graphc_pool_cycles
print(json.dumps(seen))
"""


def _probe(cache_dir, enabled=True) -> dict:
    env = {**os.environ, "GRAPHC_CACHE_DIR": str(cache_dir),
           "GRAPHC_CACHE": "1" if enabled else "0"}
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_code_generation_then_a_load_without_ir(tmp_path):
    first = _probe(tmp_path)
    assert (first["pool_ir"], first["emit_object"], first["engines_from_ir"]) == (1, 1, 0)
    assert first["workers"] == 1 and first["ticks_per_us"] > 0
    assert len(glob.glob(os.path.join(tmp_path, "*", "*.o"))) == 1
    second = _probe(tmp_path)
    assert (second["pool_ir"], second["emit_object"], second["engines_from_ir"]) == (0, 0, 0)
    assert second["workers"] == 1 and second["ticks_per_us"] > 0


def test_without_the_cache_nothing_is_written(tmp_path):
    seen = _probe(tmp_path, enabled=False)
    assert (seen["pool_ir"], seen["emit_object"], seen["engines_from_ir"]) == (1, 1, 0)
    assert seen["workers"] == 1
    assert not glob.glob(os.path.join(tmp_path, "*", "*"))
