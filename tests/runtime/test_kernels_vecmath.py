"""Vector math (runtime/codegen/vecmath.py) in explicit `<W x float>` elementwise loops,
against numpy (float64, rounded): exp, sigmoid, log, log1p, tanh and erf within their
documented ulp bounds over the whole float range, including overflow, denormal inputs and
results, +-inf, NaN, -0.0 and a length that is not a multiple of the vector width."""
from __future__ import annotations

import math

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


def _positive_inputs():
    """Every binade of positive floats (denormals included), specials, and near 1."""
    rng = np.random.default_rng(1)
    special = np.array([0.0, -0.0, 1.0, -1.0, 1e-45, 1e-40, 1.1754942e-38, 1.1754944e-38,
                        0.70710677, 0.70710683, 1.4142135, 2.0, 3e38, 3.4028235e38, np.inf,
                        -np.inf, np.nan, -1e-30, -5.0], np.float32)
    bits = rng.integers(1, 0x7F800000, 20000, dtype=np.int64).astype(np.uint32)
    near_one = (1 + rng.uniform(-0.3, 0.3, 3000)).astype(np.float32)
    return np.concatenate([special, bits.view(np.float32), near_one])


def _log1p_inputs():
    rng = np.random.default_rng(2)
    tiny = (rng.uniform(-1, 1, 4000) * 10.0 ** rng.uniform(-45, -1, 4000)).astype(np.float32)
    return np.concatenate([np.array([-1.0, -0.99999994, -1.5, -0.0, 0.0, 1e-8, -1e-8, 5e-8,
                                     np.inf, -np.inf, np.nan, 3e38], np.float32),
                           tiny, rng.uniform(-1, 10, 4000).astype(np.float32),
                           _positive_inputs()])


def _symmetric_inputs():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-6, 6, 10000), rng.uniform(-0.7, 0.7, 4000),
                        rng.standard_normal(3000) * 1e-3,
                        np.array([0.0, -0.0, 0.625, -0.625, 0.62499994, 1.0, -1.0, 1.0000001,
                                  3.92, 3.99, 4.0, 4.01, 9.0, 44.0, 45.0, 100.0, 1e-30, 1e-45,
                                  -1e-45, 3e38, -3e38, np.inf, -np.inf, np.nan])])
    bits = rng.integers(0, 0x7F800000, 5000, dtype=np.int64).astype(np.uint32)
    small = bits.view(np.float32)
    return np.concatenate([x.astype(np.float32), small, -small])


_SIGMOID = lambda x: np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))),  # noqa: E731
                              np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
_ERF = np.vectorize(math.erf, otypes=[np.float64])


@pytest.mark.parametrize("op,ref,inputs,max_ulps", [
    ("exp", np.exp, _inputs, 2),                # documented bound + 1 (vecmath.py)
    ("sigmoid", _SIGMOID, _inputs, 4),
    ("log", np.log, _positive_inputs, 2),
    ("log1p", np.log1p, _log1p_inputs, 3),
    ("tanh", np.tanh, _symmetric_inputs, 2),
    ("erf", _ERF, _symmetric_inputs, 3),
])
def test_vector_math_within_documented_ulps(op, ref, inputs, max_ulps):
    x = inputs()
    g = Graph("vm")
    xin = g.add_input("x", TensorType((x.size,), "f32"))
    out = emit(g, op, [xin])
    lanes = host_target().vector_width(4)

    def body(kb):
        emit_elementwise_group(kb, [out.producer], {xin: kb.inputs[0]},
                               [(out, kb.outputs[0])], lanes=lanes)
    fn, text = compile_kernel(body, [xin.type], [out.type])
    # LLVM would scalarise vector intrinsics / libm calls into one call per lane
    assert f"v{lanes}f32(" not in text.replace("fma.v", "").replace("fabs.v", "") \
        .replace("minnum.v", "").replace("maxnum.v", "").replace("roundeven.v", "") \
        .replace("copysign.v", "").replace("masked", "")
    assert not any(f"@{name}f(" in text for name in ("exp", "log", "log1p", "tanh", "erf"))
    (got,) = fn(x, N=1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        want = ref(x.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want)), x[np.isnan(got) != np.isnan(want)]
    fin = ~np.isnan(want)
    ulps = np.abs(to_ordered_int(got[fin]) - to_ordered_int(want[fin]))
    worst = int(ulps.argmax())
    assert ulps.max() <= max_ulps, (x[fin][worst], got[fin][worst], want[fin][worst],
                                    int(ulps.max()))
    # the sign of zero survives (log1p/tanh/erf of -0.0 is -0.0)
    zeros = (x == 0) & (want == 0)
    assert np.array_equal(np.signbit(got[zeros]), np.signbit(want[zeros]))
