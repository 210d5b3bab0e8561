"""W5: seconds from model definition to the first result, each in a fresh process (so no
in-memory cache helps): graphc cold (empty on-disk cache) and warm (the same cache again),
JAX (jit of the same training step). Imports are not timed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

_GRAPHC = r"""
import json, time, numpy as np
import graphc
from benchmarks import models
rng = np.random.default_rng(0)
x = rng.standard_normal({shape}).astype(np.float32); y = rng.integers(0, 10, {n}).astype(np.int64)
t0 = time.perf_counter()
model = models.{factory}()
loss = model.train_step(x, y)
print(json.dumps({{"seconds": time.perf_counter() - t0}}))
"""

_JAX = r"""
import json, time, numpy as np
import jax, jax.numpy as jnp
from benchmarks import models
rng = np.random.default_rng(0)
x = rng.standard_normal({shape}).astype(np.float32); y = rng.integers(0, 10, {n}).astype(np.int64)
g = models.{factory}(); g.build({feat})
weights = models.layer_weights(g)
t0 = time.perf_counter()
params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]
zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
step = models.jax_train_step(models.{apply})
out = step(params, zeros, jax.tree_util.tree_map(jnp.zeros_like, params),
           jnp.zeros((), jnp.float32), jnp.asarray(x), jnp.asarray(y))
out[-1].block_until_ready()
print(json.dumps({{"seconds": time.perf_counter() - t0}}))
"""

WORKLOADS = {
    "W1 MLP": dict(shape=(128, 784), n=128, factory="graphc_mlp", apply="jax_mlp_apply",
                   feat=(784,)),
    "W3 LeNet": dict(shape=(64, 1, 28, 28), n=64, factory="graphc_lenet",
                     apply="jax_lenet_apply", feat=(1, 28, 28)),
}


def _run(code: str, env: dict) -> float:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=root, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def w5_compile_time(with_jax: bool) -> dict:
    """{workload: {"graphc cold": s, "graphc warm cache": s, "JAX jit": s}}."""
    results = {}
    for name, spec in WORKLOADS.items():
        row = {}
        with tempfile.TemporaryDirectory(prefix="graphc-bench-cache-") as cache:
            env = {"GRAPHC_CACHE_DIR": cache, "GRAPHC_CACHE": "1"}
            code = _GRAPHC.format(**spec)
            row["graphc cold"] = _run(code, env)
            row["graphc warm cache"] = min(_run(code, env) for _ in range(3))
        if with_jax:
            row["JAX jit"] = _run(_JAX.format(**spec), {})
        results[name] = row
    return results
