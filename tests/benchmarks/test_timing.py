"""benchmarks.timing.interleaved_medians: every runner is timed in every round, the
runners take turns within a round, and each result is the median of that runner's round
medians (checked with a fake clock: no timing assertions)."""
from __future__ import annotations

import pytest

import benchmarks.timing as timing


def test_interleaved_rounds_and_median_of_round_medians(monkeypatch):
    monkeypatch.setattr(timing, "SETTLE_SECONDS", 0.0)
    calls = []
    clock = [0.0]
    # a: 1 ms per call in every round but the third (100 ms: a burst of load); b: 2 ms always
    cost = {"a": lambda r: 0.1 if r == 2 else 0.001, "b": lambda r: 0.002}
    rounds_seen = {"a": 0, "b": 0}

    def runner(name):
        def fn():
            calls.append(name)
            clock[0] += cost[name](rounds_seen[name] // 15)   # 5 warm-up + 10 timed per round
            rounds_seen[name] += 1
        return fn
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    result = timing.interleaved_medians({"a": runner("a"), "b": runner("b")}, reps=50, rounds=5)
    assert result == pytest.approx({"a": 0.001, "b": 0.002})   # the burst round is outvoted
    # turns: a's 15 calls of round 1, then b's, then a's round 2, ...
    blocks = [calls[i] for i in range(0, len(calls), 15)]
    assert blocks == ["a", "b"] * 5 and len(calls) == 150
