"""The -O pipelines on random graphs (tests/strategies.py) with NaN, inf and -0.0 inputs,
compared with the reference interpreter on the original graph.

Every rewrite of -O1 and -O2 is exact for IEEE floats and fused nodes run their body with the
same references, so the interpreter gives the same bits (NaN payloads aside) except where
`transpose-into-matmul` lets numpy pick another summation order: graphs with a matmul or a
conv are compared within a float tolerance. Fast-math pipelines are only checked to produce
valid graphs, and their fast-math rules are checked never to fire in the other pipelines."""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir.interpreter import run  # noqa: E402
from ir.verifier import verify  # noqa: E402
from passes import LEVELS, PassManager, pipeline_for  # noqa: E402
from passes.simplify_rules import RULES  # noqa: E402
from tests.strategies import graph_and_inputs  # noqa: E402

FAST_MATH = [r.name for r in RULES if r.fast_math]
REORDERING = {"matmul", "conv2d", "conv2d_grad_input", "conv2d_grad_filter"}
SETTINGS = settings(max_examples=70, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _same(got, want, loose: bool) -> bool:
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if want.dtype.kind != "f":
        return np.array_equal(got, want)
    if not loose:
        return np.array_equal(got, want, equal_nan=True)
    return np.allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True)


def _check_level(graph, feeds, level):
    result = PassManager(pipeline_for(level)).run(graph)
    verify(result.graph)
    for r in result.records:
        if r.name == "simplify":
            assert all(r.stats[name] == 0 for name in FAST_MATH)
    loose = any(n.op in REORDERING for n in graph.nodes)
    want = run(graph, feeds)
    got = run(result.graph, feeds)
    assert set(got) == set(want)
    for name in want:
        assert _same(got[name], want[name], loose), (level, name, got[name], want[name])
    return result


@SETTINGS
@given(graph_and_inputs(max_nodes=10, special_values=True))
def test_o1_and_o2_keep_the_numbers(case):
    graph, feeds = case
    _check_level(graph, feeds, 1)
    _check_level(graph, feeds, 2)


@SETTINGS
@given(graph_and_inputs(max_nodes=8, special_values=True,
                        ops=["add", "sub", "mul", "div", "exp", "neg", "relu", "maximum",
                             "broadcast", "reduce_sum", "reduce_max", "select", "greater",
                             "matmul", "constant", "cast", "reshape", "transpose"]))
def test_o2_on_fusable_graphs(case):
    """Graphs made of what fuses (elementwise chains, broadcasts, reductions, matmuls)."""
    graph, feeds = case
    result = _check_level(graph, feeds, 2)
    fuse = result.record("fuse")
    assert fuse.stats["kernels_after"] <= fuse.stats["kernels_before"]


@SETTINGS
@given(graph_and_inputs(max_nodes=8))
def test_fast_math_pipelines_give_valid_graphs(case):
    graph, feeds = case
    result = PassManager(pipeline_for(2, fast_math=True)).run(graph)
    verify(result.graph)
    run(result.graph, feeds)


def test_levels():
    assert pipeline_for(0) == "" and "fuse" not in pipeline_for(1)
    assert pipeline_for(2).split(",")[-2:] == ["fuse", "plan-memory"]
    assert "simplify{fast-math=true}" in pipeline_for(2, fast_math=True)
    assert set(LEVELS) == {0, 1, 2, 3}
    with pytest.raises(Exception, match="opt_level"):
        pipeline_for(5)
