"""Per-kernel profiles of compiled graphs (GRAPHC_PROFILE=1, or compile_graph(profile=True)).

A profiled module's entry function reads the cycle counter around every kernel call and
accumulates (cycles, calls) per kernel node into the exported array `graphc_profile` (see
module_builder.build_module); the last pair covers the final output/update copies. This
module reads those counters and reports time per node with its op, fused kind and source
location, largest first:

    exe = graphc.compile(g)            # with GRAPHC_PROFILE=1 in the environment
    for _ in range(100): exe(x)
    print(exe.profile())               # or: at exit, every profiled graph prints its report

The counters are plain (non-atomic) adds: concurrent calls of one executable may lose a few
counts. The overhead is two counter reads per kernel (~tens of ns).
"""
from __future__ import annotations

import atexit
import ctypes
import os
import sys
import weakref
from dataclasses import dataclass

import numpy as np

ENV_VAR = "GRAPHC_PROFILE"
PROFILE_GLOBAL = "graphc_profile"


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "").strip() not in ("", "0", "false", "no", "off")


def counters(jit, slots: int) -> np.ndarray:
    """The module's counters as an int64 [slots, 2] view (cycles, calls)."""
    addr = jit.global_address(PROFILE_GLOBAL)
    if not addr:
        raise RuntimeError("profiled module has no graphc_profile counters")
    return np.ctypeslib.as_array((ctypes.c_int64 * (2 * slots)).from_address(addr)).reshape(
        slots, 2)


@dataclass
class ProfileRow:
    node: int                  # index in graph.nodes (-1: the final copies)
    op: str
    loc: str
    calls: int
    seconds: float             # total over all calls

    @property
    def mean_us(self) -> float:
        return self.seconds / self.calls * 1e6 if self.calls else 0.0


class ProfileReport:
    def __init__(self, graph_name: str, rows: list):
        self.graph_name = graph_name
        self.rows = sorted(rows, key=lambda r: -r.seconds)

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.rows)

    @property
    def calls(self) -> int:
        return max((r.calls for r in self.rows), default=0)

    def __str__(self) -> str:
        total = self.total_seconds or 1e-30
        lines = [f"profile of graph {self.graph_name!r}: {self.calls} call(s), "
                 f"{total / max(1, self.calls) * 1e6:.1f} us per call in kernels",
                 f"{'share':>6} {'us/call':>9} {'node':>5}  op / location"]
        for r in self.rows:
            if not r.calls:
                continue
            lines.append(f"{r.seconds / total:6.1%} {r.mean_us:9.2f} {r.node:>5}  {r.op}  "
                         f"{r.loc}")
        return "\n".join(lines)


def kernel_label(node) -> str:
    """The op of a kernel node; for a fused group its kind and the ops inside."""
    if node.op == "fused":
        body = node.attrs["body"]
        inner = ",".join(n.op for n in body.nodes if n.op != "broadcast")
        if len(inner) > 60:
            inner = inner[:57] + "..."
        return f"fused:{node.attrs['kind']}[{inner}]"
    return node.op


def _loc_text(loc) -> str:
    if loc is None:
        return ""
    locs = getattr(loc, "locs", None)
    if locs:
        first = locs[0].describe()
        return first + (f" (+{len(locs) - 1} more)" if len(locs) > 1 else "")
    return loc.describe()


def report(compiled) -> ProfileReport:
    """The per-node report of a profiled CompiledGraph."""
    from .pool import ticks_per_us
    counts = compiled.profile_counters
    if counts is None:
        raise RuntimeError("this graph was compiled without profiling: set GRAPHC_PROFILE=1 "
                           "before compiling, or compile_graph(..., profile=True)")
    scale = 1.0 / (ticks_per_us() * 1e6)
    graph, plan = compiled.graph, compiled.plan
    rows = []
    for slot, i in enumerate(plan.kernel_nodes):
        node = graph.nodes[i]
        rows.append(ProfileRow(i, kernel_label(node), _loc_text(node.loc),
                               int(counts[slot, 1]), float(counts[slot, 0]) * scale))
    last = len(plan.kernel_nodes)
    rows.append(ProfileRow(-1, "copies (outputs, parameter updates)", "",
                           int(counts[last, 1]), float(counts[last, 0]) * scale))
    return ProfileReport(graph.name, rows)


def reset(compiled) -> None:
    if compiled.profile_counters is not None:
        compiled.profile_counters[:] = 0


_TRACKED: list = []            # weakrefs (CompiledGraph is an unhashable dataclass)
_registered = False


def track(compiled) -> None:
    """Remember a profiled graph; with GRAPHC_PROFILE set, report it at exit if it ran."""
    global _registered
    _TRACKED.append(weakref.ref(compiled))
    if enabled() and not _registered:
        _registered = True
        atexit.register(_report_all)


def _report_all() -> None:
    for ref in list(_TRACKED):
        compiled = ref()
        if compiled is None:
            continue
        try:
            rep = report(compiled)
        except Exception:          # never fail at interpreter exit
            continue
        if rep.calls:
            print(rep, file=sys.stderr)
