"""conv2d_grad_input with NaN/inf weights: the reference crops padding taps away (it never
multiplies them), so a non-finite weight may only reach the input positions its taps really
land on. The fast forms (direct flipped convolution, gemm with zeroed taps) would multiply
0 * NaN at the padding; with a non-finite weight the kernel takes the exact scatter loop."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
import ir
from ir import Graph, TensorType, emit

CASES = [  # (dy spatial, w shape, attrs): direct path, flipped gemm, strided gemm
    ((3, 2), (1, 1, 1, 2), dict(stride=(1, 1), padding=(0, 0, 0, 0), input_hw=(3, 3))),
    ((28, 28), (6, 3, 5, 5), dict(stride=(1, 1), padding=(2, 2, 2, 2), input_hw=(28, 28))),
    ((7, 7), (4, 2, 3, 3), dict(stride=(2, 2), padding=(1, 1, 1, 1), input_hw=(14, 14))),
    ((5, 5), (8, 16, 3, 3), dict(stride=(1, 1), padding=(1, 1, 1, 1), input_hw=(5, 5))),
]


def _graph(dy_hw, w_shape, attrs):
    g = Graph("gi")
    o, c = w_shape[0], w_shape[1]
    dy = g.add_input("dy", TensorType(("N", o) + dy_hw, "f32"))
    w = g.add_input("w", TensorType(w_shape, "f32"))
    full = dict(dilation=(1, 1), groups=1, **attrs)
    g.add_output(emit(g, "conv2d_grad_input", [dy, w], full), "dx")
    return g


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("special", [np.nan, np.inf, None])
def test_non_finite_weights_reach_only_real_taps(case, special):
    dy_hw, w_shape, attrs = CASES[case]
    g = _graph(dy_hw, w_shape, attrs)
    rng = np.random.default_rng(case)
    w = rng.standard_normal(w_shape).astype(np.float32)
    if special is not None:
        w.reshape(-1)[[0, w.size // 2] if w.size > 4 else [0]] = special
    feeds = {"dy": rng.standard_normal((2, w_shape[0]) + dy_hw).astype(np.float32), "w": w}
    want = ir.run(g, feeds)["dx"]
    got = graphc.compile(g, cache=False).run(feeds)["dx"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)
    if special is not None:
        assert finite.any()              # the cropped taps left finite positions to check
