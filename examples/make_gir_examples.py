"""Write examples/mlp.gir and examples/cnn.gir (with their weights sidecars).

The graphs are built with ir.builder, the way a front end does, and saved with
ir.serialize.save_gir. Try the passes on them:

    graphc opt examples/*.gir --passes=shape-infer,dce --print-after-change

The MLP deliberately holds two dead nodes (an `exp` of the first layer and a `reduce_sum` of
the input that nothing uses), so `dce` has visible work to do.

Run from the repository root: python examples/make_gir_examples.py
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ir import Graph, Loc, TensorType, emit, f32
from ir.serialize import save_gir

HERE = os.path.dirname(os.path.abspath(__file__))


def at(path: str) -> Loc:
    """The caller's line in this script, with a layer path (file name kept short and stable)."""
    caller = sys._getframe(1)
    return Loc(os.path.basename(caller.f_code.co_filename), caller.f_lineno, path)


def he_normal(rng, fan_in: int, shape) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def dense(g: Graph, rng, x, n_in: int, n_out: int, name: str, relu: bool):
    w = g.add_input(f"{name}_w", TensorType((n_in, n_out), f32), "param",
                    he_normal(rng, n_in, (n_in, n_out)))
    b = g.add_input(f"{name}_b", TensorType((n_out,), f32), "param",
                    np.zeros(n_out, np.float32))
    y = emit(g, "matmul", [x, w], loc=at(f"mlp/{name}/matmul"))
    bb = emit(g, "broadcast", [b], {"shape": ("N", n_out), "dims": (1,)},
              loc=at(f"mlp/{name}/bias"))
    y = emit(g, "add", [y, bb], loc=at(f"mlp/{name}/bias"))
    return emit(g, "relu", [y], loc=at(f"mlp/{name}/relu")) if relu else y


def make_mlp(seed: int = 0) -> Graph:
    """784-400-100-10 MLP forward over a batch of N flattened 28x28 images."""
    rng = np.random.default_rng(seed)
    g = Graph("mlp")
    x = g.add_input("x", TensorType(("N", 784), f32))
    h1 = dense(g, rng, x, 784, 400, "dense1", relu=True)
    emit(g, "exp", [h1], loc=at("mlp/debug/exp"))                          # dead on purpose
    emit(g, "reduce_sum", [x], {"axes": (1,)}, loc=at("mlp/debug/sum"))    # dead on purpose
    h2 = dense(g, rng, h1, 400, 100, "dense2", relu=True)
    logits = dense(g, rng, h2, 100, 10, "dense3", relu=False)
    g.add_output(logits, "logits")
    return g


def make_cnn(seed: int = 0) -> Graph:
    """conv(8)-relu-pool-conv(16)-relu-pool-dense(10) over N 1x28x28 images."""
    rng = np.random.default_rng(seed)
    g = Graph("cnn")
    x = g.add_input("x", TensorType(("N", 1, 28, 28), f32))
    h = x
    for i, (c_in, c_out, hw) in enumerate([(1, 8, 28), (8, 16, 14)], start=1):
        w = g.add_input(f"conv{i}_w", TensorType((c_out, c_in, 3, 3), f32), "param",
                        he_normal(rng, c_in * 9, (c_out, c_in, 3, 3)))
        b = g.add_input(f"conv{i}_b", TensorType((c_out,), f32), "param",
                        np.zeros(c_out, np.float32))
        h = emit(g, "conv2d", [h, w], {"padding": (1, 1, 1, 1)}, loc=at(f"cnn/conv{i}/conv2d"))
        bb = emit(g, "broadcast", [b], {"shape": ("N", c_out, hw, hw), "dims": (1,)},
                  loc=at(f"cnn/conv{i}/bias"))
        h = emit(g, "add", [h, bb], loc=at(f"cnn/conv{i}/bias"))
        h = emit(g, "relu", [h], loc=at(f"cnn/conv{i}/relu"))
        h = emit(g, "max_pool2d", [h], {"kernel": (2, 2), "stride": (2, 2)},
                 loc=at(f"cnn/pool{i}/max_pool2d"))
    h = emit(g, "reshape", [h], {"shape": ("N", 16 * 7 * 7)}, loc=at("cnn/flatten/reshape"))
    w = g.add_input("dense_w", TensorType((16 * 7 * 7, 10), f32), "param",
                    he_normal(rng, 16 * 7 * 7, (16 * 7 * 7, 10)))
    b = g.add_input("dense_b", TensorType((10,), f32), "param", np.zeros(10, np.float32))
    h = emit(g, "matmul", [h, w], loc=at("cnn/dense/matmul"))
    bb = emit(g, "broadcast", [b], {"shape": ("N", 10), "dims": (1,)}, loc=at("cnn/dense/bias"))
    g.add_output(emit(g, "add", [h, bb], loc=at("cnn/dense/bias")), "logits")
    return g


def main(out_dir: str = HERE) -> None:
    for name, make in (("mlp", make_mlp), ("cnn", make_cnn)):
        path = os.path.join(out_dir, f"{name}.gir")
        save_gir(make(), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
