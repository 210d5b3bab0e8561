"""Timing helpers: warm-up, repetitions, medians; and a check that the machine is quiet."""
from __future__ import annotations

import os
import time

import numpy as np


SETTLE_SECONDS = 0.3


def median_seconds(fn, reps: int = 50, warmup: int = 5, budget: float = 3.0,
                   settle: float = SETTLE_SECONDS) -> float:
    """Median wall time of `fn()` over `reps` calls (fewer if `budget` seconds run out).

    First it sleeps `settle` seconds: the thread pools of the library measured just before
    (OpenMP, OpenBLAS, graphc's own) spin for a while after their last work, and a peer
    measured while they still hold the cores would be slowed by them (graphc's pool even
    backs off to one thread when it sees a worker descheduled)."""
    if settle:
        time.sleep(settle)
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget and len(times) >= 5:
            break
    return float(np.median(times))


def _cpu_times():
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    values = [int(x) for x in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values), idle


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def machine_busy_fraction(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy with OTHER processes over `seconds` (this one is idle)."""
    try:
        total0, idle0 = _cpu_times()
    except OSError:
        return 0.0
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    busy = (total1 - total0) - (idle1 - idle0)
    return max(0.0, busy / max(1, total1 - total0))


def wait_until_quiet(limit: float = 0.10, max_wait: float = 120.0, log=print) -> float:
    """Wait (up to max_wait s) until other processes use under `limit` of the CPUs; return
    the last measured busy fraction (the caller records it with the results)."""
    start = time.perf_counter()
    busy = machine_busy_fraction()
    while busy > limit and time.perf_counter() - start < max_wait:
        log(f"  machine busy ({busy:.0%} of the CPUs used by other processes); waiting...")
        busy = machine_busy_fraction(2.0)
    return busy
