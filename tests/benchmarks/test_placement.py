"""The benchmark harness's placement probe (benchmarks/placement.py): it measures, it reports
what it saw, and it never hangs."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import placement, report  # noqa: E402

CPUS = sorted(os.sched_getaffinity(0))


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_round_trip_between_two_cpus_is_measured():
    ns = placement.round_trip_ns(CPUS[:2], rounds=2000)
    assert ns is not None and 1 < ns < 1e6


def test_one_cpu_gives_no_measurement():
    assert placement.round_trip_ns(CPUS[:1]) is None


def test_a_side_that_cannot_keep_up_is_aborted_not_waited_for():
    # both sides on one CPU: each spin lasts until the scheduler preempts it, so 10^6 round
    # trips take far longer than the timeout; the abort value must end both loops
    ns = placement.round_trip_ns([CPUS[0], CPUS[0]], rounds=10**6, timeout=0.5)
    assert ns is None


def test_report_flags_a_far_block():
    near = report.placement_line("W1", {"ns": 60.0, "after": 70.0, "waited": 0.0})
    far = report.placement_line("W3", {"ns": 60.0, "after": 380.0, "waited": 12.0})
    assert "far apart" not in near and "60 ns before, 70 ns after" in near
    assert "far apart" in far and "waited 12 s" in far
