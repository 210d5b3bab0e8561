"""The PassManager: runs a pipeline of passes over a graph, with instruments watching.

    result = PassManager("shape-infer,dce", instruments=[Verify(), Timing()]).run(graph)
    result.graph            # the final graph
    result.records          # one PassRecord per pass: seconds, stats, changed, hashes

The manager enforces the pass contract: a pass returns a new graph (or its input unchanged)
and numeric statistics, and never mutates its input (checked with the structural hash).
Whether a pass changed the graph is the pass's own explicit word (`ctx.changed`) or else a
structural comparison of the graphs before and after.
"""
from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from typing import Sequence

from ir import Graph, PassError
from ir.equality import structural_hash

from .registry import Pass, PassContext, build_pipeline, format_pipeline


@dataclass
class PassRecord:
    """What happened in one pass of a run."""
    name: str
    spec: str               # pipeline text of the pass, with options
    index: int              # 1-based position in the pipeline
    total: int
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)
    changed: bool = False
    hash_before: str = ""
    hash_after: str = ""
    remarks: list = field(default_factory=list)

    @property
    def label(self) -> str:
        """'dce (2/3)': how reports name this pass."""
        return f"{self.spec} ({self.index}/{self.total})"


@dataclass
class PassResult:
    graph: Graph
    records: list
    pipeline: str

    def record(self, name: str) -> PassRecord:
        """The record of the (first) pass called `name`."""
        for r in self.records:
            if r.name == name:
                return r
        raise KeyError(f"no pass named {name!r} ran; passes were "
                       f"{[r.name for r in self.records]}")

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.records)


class Instrument:
    """Hooks called around a pipeline run. Subclasses override the ones they need."""

    def run_begin(self, graph: Graph, passes: list) -> None:
        """Before the first pass; `passes` are the Pass objects about to run, in order."""

    def before_pass(self, record: PassRecord, graph: Graph) -> None:
        """Before each pass; `record` has its name and position, not yet its results."""

    def after_pass(self, record: PassRecord, before: Graph, after: Graph) -> None:
        """After each pass, with its complete record (stats, changed, seconds)."""

    def run_end(self, result: PassResult) -> None:
        """After the last pass."""


class PassManager:
    def __init__(self, pipeline, instruments: Sequence[Instrument] = ()):
        """`pipeline`: text ("shape-infer,dce"), a Pass, or a list of texts and Passes."""
        self.passes: list[Pass] = build_pipeline(pipeline)
        self.instruments = list(instruments)

    @property
    def pipeline(self) -> str:
        return format_pipeline(self.passes)

    def run(self, graph: Graph) -> PassResult:
        pipeline = self.pipeline
        for inst in self.instruments:
            inst.run_begin(graph, list(self.passes))
        records = []
        current = graph
        current_hash = structural_hash(graph)
        total = len(self.passes)
        for index, p in enumerate(self.passes, start=1):
            record = PassRecord(p.name, p.spec(), index, total, hash_before=current_hash)
            for inst in self.instruments:
                inst.before_pass(record, current)
            after = self._run_one(p, current, record)
            for inst in self.instruments:
                inst.after_pass(record, current, after)
            records.append(record)
            current, current_hash = after, record.hash_after
        result = PassResult(current, records, pipeline)
        for inst in self.instruments:
            inst.run_end(result)
        return result

    def _run_one(self, p: Pass, graph: Graph, record: PassRecord) -> Graph:
        ctx = PassContext(p.name, record.index, record.total)
        start = time.perf_counter()
        try:
            out = p.run(graph, ctx)
        except Exception as e:
            # Keep the error's own type (a ShapeError stays a ShapeError); say which pass.
            e.add_note(f"in pass {record.label}")
            raise
        record.seconds = time.perf_counter() - start
        new_graph, stats = _check_outcome(out, record)
        input_hash = structural_hash(graph)
        if input_hash != record.hash_before:
            raise PassError(f"pass {record.label} mutated its input graph; a pass must work "
                            f"on a clone (graph.clone()) and return it")
        record.stats = dict(stats)
        record.remarks = list(ctx.remarks)
        record.hash_after = input_hash if new_graph is graph else structural_hash(new_graph)
        record.changed = (bool(ctx.changed) if ctx.changed is not None
                          else record.hash_after != record.hash_before)
        return new_graph


def _check_outcome(out, record: PassRecord):
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Graph)
            and isinstance(out[1], dict)):
        raise PassError(f"pass {record.label} must return (Graph, stats dict), "
                        f"found {type(out).__name__}: {out!r:.80}")
    for key, value in out[1].items():
        if not isinstance(key, str) or isinstance(value, bool) or \
                not isinstance(value, numbers.Real):
            raise PassError(f"pass {record.label}: statistic {key!r} must map a name to an "
                            f"int or float, found {value!r}")
    return out


def run_pipeline(graph: Graph, pipeline, instruments: Sequence[Instrument] = ()) -> Graph:
    """Shortcut: the final graph of running `pipeline` over `graph`."""
    return PassManager(pipeline, instruments).run(graph).graph

