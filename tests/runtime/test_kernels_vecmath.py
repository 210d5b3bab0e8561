"""Vector math (runtime/codegen/vecmath.py) in explicit `<W x float>` elementwise loops,
against numpy: exp and sigmoid within 4 ulp over the whole float range, including overflow,
denormal results, +-inf, NaN and a length that is not a multiple of the vector width."""
from __future__ import annotations

import numpy as np
import pytest

from ir import Graph, TensorType, emit
from runtime.codegen.elementwise import emit_elementwise_group
from runtime.target import host_target

from rt_harness import to_ordered_int
from rt_kernel import compile_kernel


def _inputs():
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, 1.0, -1.0, 88.7, 88.72, 88.73, 89.0, -87.3, -100.0, -103.9,
                        -103.98, -104.0, 1e-8, -1e-8, np.inf, -np.inf, np.nan, 3e38, -3e38],
                       np.float32)
    return np.concatenate([special, rng.uniform(-110, 95, 5003).astype(np.float32),
                           rng.standard_normal(1000).astype(np.float32)])


@pytest.mark.parametrize("op,ref", [
    ("exp", np.exp),
    ("sigmoid", lambda x: np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))),
                                   np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))),
])
def test_vector_math_within_4_ulp(op, ref):
    x = _inputs()
    g = Graph("vm")
    xin = g.add_input("x", TensorType((x.size,), "f32"))
    out = emit(g, op, [xin])
    lanes = host_target().vector_width(4)

    def body(kb):
        emit_elementwise_group(kb, [out.producer], {xin: kb.inputs[0]},
                               [(out, kb.outputs[0])], lanes=lanes)
    fn, text = compile_kernel(body, [xin.type], [out.type])
    assert f"llvm.exp.v{lanes}f32" not in text   # LLVM would scalarise it into expf calls
    (got,) = fn(x, N=1)
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref(x.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    fin = ~np.isnan(want)
    ulps = np.abs(to_ordered_int(got[fin]) - to_ordered_int(want[fin]))
    assert ulps.max() <= 4, (x[fin][ulps.argmax()], got[fin][ulps.argmax()], want[fin][ulps.argmax()])
