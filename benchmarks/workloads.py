"""W1-W4: each returns {peer name: median seconds (or GFLOP/s for W4)} plus notes.

Inputs are random (fixed seed); labels are class indices. Every peer runs the same model
from the same weights (models.py). Thread counts are set by __main__ before anything runs.
"""
from __future__ import annotations

import numpy as np

from . import models
from .timing import median_seconds

PEERS = ("torch", "jax", "onnxruntime")


def available(name: str) -> bool:
    try:
        __import__(name)
        return True
    except Exception:          # an installed but broken peer counts as missing
        return False


def _data(shape, n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(np.float32),
            rng.integers(0, n_classes, shape[0]).astype(np.int64))


def _train_workload(make_graphc, torch_net, jax_apply, shape, reps):
    x, y = _data(shape)
    out, notes = {}, []
    model = make_graphc()
    model.train_step(x, y)                                    # build + compile
    out["graphc"] = median_seconds(lambda: model.train_step(x, y), reps)
    weights = models.layer_weights(model)
    if available("torch"):
        import torch
        net = torch_net(weights)
        step, kind = models.torch_train_step(net)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        out[f"PyTorch eager ({kind})"] = median_seconds(lambda: step(tx, ty), reps)
    if available("jax"):
        import jax
        import jax.numpy as jnp
        step = models.jax_train_step(jax_apply)
        state = [[(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]]
        state.append(jax.tree_util.tree_map(jnp.zeros_like, state[0]))
        state.append(jax.tree_util.tree_map(jnp.zeros_like, state[0]))
        state.append(jnp.zeros((), jnp.float32))
        jx, jy = jnp.asarray(x), jnp.asarray(y)

        def run():
            p, m, v, t, loss = step(*state, jx, jy)
            state[:] = [p, m, v, t]
            loss.block_until_ready()
        out["JAX jit"] = median_seconds(run, reps)
    return out, notes


def w1_mlp_train(reps=200):
    return _train_workload(models.graphc_mlp, models.torch_mlp, models.jax_mlp_apply,
                           (128, 784), reps)


def w3_lenet_train(reps=100):
    return _train_workload(models.graphc_lenet, models.torch_lenet, models.jax_lenet_apply,
                           (64, 1, 28, 28), reps)


def w2_mlp_infer(reps=500):
    """Inference at batch 1 and 128: {batch: {peer: seconds}}."""
    model = models.graphc_mlp()
    x, y = _data((128, 784))
    model.train_step(x, y)
    model.eval()
    model.predict(x[:1])
    exe = model.executable("predict")
    weights = models.layer_weights(model)
    results = {}
    sess = None
    if available("onnxruntime") and available("onnx"):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(models.onnx_mlp(weights), opts,
                                    providers=["CPUExecutionProvider"])
    tnet = jnet = None
    if available("torch"):
        tnet = models.torch_mlp(weights)
    if available("jax"):
        import jax
        import jax.numpy as jnp
        jparams = [(jnp.asarray(w), jnp.asarray(b)) for w, b in weights]
        jnet = jax.jit(models.jax_mlp_apply)
    for batch in (1, 128):
        xb = np.ascontiguousarray(x[:batch])
        want = exe(xb)
        row = {"graphc": median_seconds(lambda: exe(xb), reps)}
        row["numpy"] = median_seconds(lambda: _numpy_mlp(weights, xb), reps)
        if sess is not None:
            feed = {"x": xb}
            np.testing.assert_allclose(sess.run(None, feed)[0], want, rtol=1e-3, atol=1e-4)
            row["onnxruntime"] = median_seconds(lambda: sess.run(None, feed), reps)
        if tnet is not None:
            import torch
            tx = torch.from_numpy(xb)

            def run_torch():
                with torch.inference_mode():
                    return tnet(tx)
            row["PyTorch eager"] = median_seconds(run_torch, reps)
        if jnet is not None:
            jx = jnp.asarray(xb)
            row["JAX jit"] = median_seconds(lambda: jnet(jparams, jx).block_until_ready(), reps)
        results[batch] = row
    return results


def _numpy_mlp(weights, x):
    for k, (w, b) in enumerate(weights):
        x = x @ w + b
        if k < len(weights) - 1:
            np.maximum(x, 0, out=x)
    return x


# -- W4: sgemm -----------------------------------------------------------------------------------
SGEMM_SIZES = (64, 128, 256, 512, 1024)


def _graphc_sgemm(s):
    import graphc
    from ir import Graph, TensorType, emit
    g = Graph(f"sgemm{s}")
    a = g.add_input("a", TensorType((s, s), "f32"))
    b = g.add_input("b", TensorType((s, s), "f32"))
    g.add_output(emit(g, "matmul", [a, b], {"transpose_a": False, "transpose_b": False}), "c")
    return graphc.compile(g)


def w4_sgemm(threads_list=(1, 2)):
    """{(size, threads): {peer: GFLOP/s}}."""
    from runtime import threads as rt_threads
    results = {}
    rng = np.random.default_rng(0)
    torch = None
    if available("torch"):
        import torch
    jmm = None
    if available("jax"):
        import jax
        jmm = jax.jit(lambda a, b: a @ b)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    for s in SGEMM_SIZES:
        a = rng.standard_normal((s, s)).astype(np.float32)
        b = rng.standard_normal((s, s)).astype(np.float32)
        c = np.empty((s, s), np.float32)
        exe = _graphc_sgemm(s)
        np.testing.assert_allclose(exe(a, b), a @ b, rtol=1e-3, atol=1e-3)
        flops = 2.0 * s ** 3
        reps = int(min(2000, max(20, 3e9 / flops)))
        for t in threads_list:
            rt_threads.set_threads(exe, t)
            row = {"graphc": flops / median_seconds(lambda: exe(a, b, out={"c": c}), reps) / 1e9}
            if threadpool_limits is not None:
                with threadpool_limits(limits=t):
                    row["numpy"] = flops / median_seconds(lambda: np.matmul(a, b, out=c),
                                                          reps) / 1e9
            if torch is not None:
                saved = torch.get_num_threads()
                torch.set_num_threads(t)
                ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
                row["PyTorch"] = flops / median_seconds(lambda: torch.mm(ta, tb, out=tc),
                                                        reps) / 1e9
                torch.set_num_threads(saved)
            if jmm is not None and t == 2:
                import jax.numpy as jnp
                ja, jb = jnp.asarray(a), jnp.asarray(b)
                row["JAX jit"] = flops / median_seconds(
                    lambda: jmm(ja, jb).block_until_ready(), reps) / 1e9
            results[(s, t)] = row
        rt_threads.set_threads(exe, None)
    return results
