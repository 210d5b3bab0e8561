"""Every op, compiled, against the reference interpreter across shapes, attributes and batch
sizes. Each family's cases are compiled as ONE graph (one module, one output per case) and
run with N = 1, 3 and 17; tolerances are stated in rt_harness (exact / ulp / accum)."""
from __future__ import annotations

import pytest

import ir
from runtime.codegen import LOWERINGS, SCALAR_EMITTERS

import rt_cases
from rt_harness import run_cases

BATCH_SIZES = (1, 3, 17)
CASE_COUNTS: dict = {}


def test_every_op_has_a_lowering():
    missing = sorted(set(ir.all_ops()) - set(LOWERINGS))
    assert not missing, f"ops without a native lowering: {missing}"
    stale = sorted(set(LOWERINGS) - set(ir.all_ops()))
    assert not stale, f"lowerings for ops that are not registered: {stale}"


def test_every_elementwise_op_has_a_per_element_emitter():
    # fusion composes these: an elementwise op without one could not join a fused loop
    elementwise = {name for name, op in ir.all_ops().items() if op.fusion == "elementwise"}
    assert not sorted(elementwise - set(SCALAR_EMITTERS))


def test_every_op_is_covered_by_the_differential_cases():
    covered = {c.op for make in rt_cases.FAMILIES.values() for c in make()}
    assert not sorted(set(ir.all_ops()) - covered)


@pytest.mark.parametrize("family", sorted(rt_cases.FAMILIES))
def test_family_matches_interpreter(family, record_property):
    cases = rt_cases.FAMILIES[family]()
    assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
    failures, runs = run_cases(family, cases, BATCH_SIZES)
    CASE_COUNTS[family] = (len(cases), runs)
    record_property("cases", len(cases))
    print(f"\n{family}: {len(cases)} op/shape cases x {len(BATCH_SIZES)} batch sizes = {runs} runs")
    assert not failures, f"{len(failures)} of {runs} runs differ:\n" + "\n".join(failures[:30])
