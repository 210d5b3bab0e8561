"""The PassManager: runs a pipeline of passes over a graph, with instruments watching.

    result = PassManager("shape-infer,dce", instruments=[Verify(), Timing()]).run(graph)
    result.graph            # the final graph
    result.records          # one PassRecord per pass: seconds, stats, changed, hashes

The manager enforces the pass contract: a pass returns a new graph (or its input unchanged)
and numeric statistics, and never mutates its input (checked with the structural hash).
Whether a pass changed the graph is the pass's own explicit word (`ctx.changed`) or else a
structural comparison of the graphs before and after.

The structural hashes (and the comparison) are computed when someone reads them (a record's
`hash_before`, `hash_after` or `changed`: instruments, reports, tests), once per graph state:
a compile reads none. A pass's input is checked after the pass against the objects it was
made of (graph_state.py), and hashed only when these moved; the values read later are those
of the graphs as they were when the pass ran.
"""
from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, field
from typing import Sequence

from ir import Graph, PassError
from ir.equality import structural_hash

from .graph_state import GraphState
from .registry import Pass, PassContext, build_pipeline, format_pipeline


@dataclass
class PassRecord:
    """What happened in one pass of a run. `changed`, `hash_before` and `hash_after` of a
    record the manager made are worked out on first reading (from the graph states)."""
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


def _lazy(name: str, compute):
    """A property over `record._<name>`; None there means: compute it (once) from the graph
    states the manager attached (`record._states`)."""
    slot = "_" + name

    def get(self):
        value = self.__dict__.get(slot)
        if value is None and "_states" in self.__dict__:
            value = self.__dict__[slot] = compute(*self.__dict__["_states"])
        return value

    def set(self, value):
        self.__dict__[slot] = value
    return property(get, set)


# (assigned after @dataclass, so the fields keep their defaults and __init__ its signature)
PassRecord.hash_before = _lazy("hash_before", lambda before, after: before.hash)
PassRecord.hash_after = _lazy("hash_after", lambda before, after: after.hash)
PassRecord.changed = _lazy("changed", lambda before, after: after is not before and
                           after.hash != before.hash)


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
        state = GraphState(graph)
        total = len(self.passes)
        for index, p in enumerate(self.passes, start=1):
            record = PassRecord(p.name, p.spec(), index, total)
            record._states = (state, state)
            record.hash_before = None             # computed if read (from `state`)
            for inst in self.instruments:
                inst.before_pass(record, current)
            after, state = self._run_one(p, current, record, state)
            for inst in self.instruments:
                inst.after_pass(record, current, after)
            records.append(record)
            current = after
        result = PassResult(current, records, pipeline)
        for inst in self.instruments:
            inst.run_end(result)
        return result

    def _run_one(self, p: Pass, graph: Graph, record: PassRecord, before: GraphState):
        """(the pass's graph, its state); fills `record`."""
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
        if not before.holds():             # its objects moved: was it changed structurally?
            input_hash = structural_hash(graph)
            if input_hash != before.hash:
                raise PassError(f"pass {record.label} mutated its input graph; a pass must "
                                f"work on a clone (graph.clone()) and return it")
            before = GraphState(graph, input_hash)     # the same structure, new objects
        record.stats = dict(stats)
        record.remarks = list(ctx.remarks)
        after = before if new_graph is graph else GraphState(new_graph)
        record._states = (record._states[0], after)
        record.hash_after = None
        record.changed = bool(ctx.changed) if ctx.changed is not None else None
        return new_graph, after


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

