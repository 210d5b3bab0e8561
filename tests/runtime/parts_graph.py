"""A graph with enough kernels (ten: matmuls sharing gemm helpers, elementwise ops, a
reduction) for the compile to build its module in two parts (runtime/parallel_compile.py);
shared by the parallel-compile and bundle tests."""
from __future__ import annotations

import numpy as np

from ir import Graph, TensorType, emit


def graph_in_parts(name: str = "parts") -> Graph:
    g = Graph(name)
    x = g.add_input("x", TensorType(("N", 24), "f32"))
    w = g.add_input("w", TensorType((24, 24), "f32"), role="param")
    g.initializers["w"] = np.linspace(-1, 1, 24 * 24, dtype=np.float32).reshape(24, 24)
    h = x
    for k in range(4):
        h = emit(g, "matmul", [h, w], {"transpose_a": False, "transpose_b": False})
        h = emit(g, "tanh" if k % 2 else "exp", [emit(g, "mul", [h, h])])
    g.add_output(emit(g, "reduce_sum", [h], {"axes": (1,), "keepdims": False}), "s")
    g.add_output(h, "h")
    return g
