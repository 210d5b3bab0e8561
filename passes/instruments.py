"""Instruments: watch a pipeline run without touching the passes.

    PassManager("shape-infer,dce", instruments=[PrintIR(after="all"), Verify(), Timing()])

PrintIR    print the IR before/after all or named passes (optionally only when it changed)
Diff       unified diff of the printed IR across each pass that changed the graph
DumpDir    write 00-input.gir, 01-<pass>.gir, ... (+ weights sidecars) and pipeline.txt
Verify     run ir.verifier after each pass; a broken invariant names the pass that broke it
Timing     per-pass wall time table
Statistics every pass's statistics (and remarks) as a table
ReferenceCheck run the reference interpreter after each pass; name the first pass that
           changed the numbers

Reports are aligned text tables written to `stream` (stderr by default, so they never mix
with IR printed on stdout).
"""
from __future__ import annotations

import difflib
import os
import re
import sys
import zlib
from typing import Mapping, Optional, Sequence

import numpy as np

from ir import Graph, GraphcError, PassError, VerifyError
from ir.interpreter import run as interpret
from ir.printer import print_graph
from ir.symbolic import evaluate
from ir.verifier import verify
from ir.serialize import save_gir

from .manager import Instrument, PassRecord, PassResult
from .registry import format_pipeline


def format_table(headers: Sequence[str], rows: Sequence[Sequence], right: Sequence[int] = ()) -> str:
    """An aligned text table; columns whose index is in `right` are right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        parts = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def _selects(which, name: str) -> bool:
    """`which` is True/'all', None/False, or a collection (or comma text) of pass names."""
    if which is None or which is False:
        return False
    if which is True or which == "all":
        return True
    names = which.split(",") if isinstance(which, str) else which
    return name in {n.strip() for n in names}


def _stream(stream):
    return stream if stream is not None else sys.stderr


class PrintIR(Instrument):
    """Print the IR before and/or after passes.

    before/after: "all" (or True), a list (or comma-separated text) of pass names, or None.
    only_on_change: after a pass that left the graph unchanged, print one line saying so."""

    def __init__(self, before=None, after=None, only_on_change: bool = False, stream=None,
                 show_locs: bool = True):
        self.before, self.after = before, after
        self.only_on_change = only_on_change
        self.stream = stream
        self.show_locs = show_locs

    def _emit(self, title: str, graph: Optional[Graph]) -> None:
        out = _stream(self.stream)
        out.write(f"# *** {title} ***\n")
        if graph is not None:
            out.write(print_graph(graph, show_locs=self.show_locs))
            out.write("\n")

    def before_pass(self, record: PassRecord, graph: Graph) -> None:
        if _selects(self.before, record.name):
            self._emit(f"IR before {record.label}", graph)

    def after_pass(self, record: PassRecord, before: Graph, after: Graph) -> None:
        if not _selects(self.after, record.name):
            return
        if self.only_on_change and not record.changed:
            self._emit(f"IR after {record.label} omitted: no change", None)
        else:
            self._emit(f"IR after {record.label}", after)


class Diff(Instrument):
    """A unified diff of the printed IR across every pass that changed the graph."""

    def __init__(self, stream=None, context: int = 3, show_locs: bool = False):
        self.stream = stream
        self.context = context
        self.show_locs = show_locs   # locs make lines long and rarely change: off by default

    def after_pass(self, record: PassRecord, before: Graph, after: Graph) -> None:
        if not record.changed:
            return
        a = print_graph(before, show_locs=self.show_locs).splitlines(keepends=True)
        b = print_graph(after, show_locs=self.show_locs).splitlines(keepends=True)
        diff = difflib.unified_diff(a, b, f"before {record.label}", f"after {record.label}",
                                    n=self.context)
        _stream(self.stream).writelines(diff)


class DumpDir(Instrument):
    """Write the input and the graph after every pass as numbered .gir files in `directory`.

    Files sort in pipeline order: 00-input.gir, 01-shape-infer.gir, 02-dce.gir (more digits
    when the pipeline is longer than 99 passes). Large arrays go to each file's weights
    sidecar. pipeline.txt holds the pipeline text, so the run can be replayed from the input."""

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self.files: list[str] = []
        self._width = 2      # digits in the numbering, set per run

    def _write(self, index: int, label: str, graph: Graph) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", label)
        path = os.path.join(self.directory, f"{index:0{self._width}d}-{safe}.gir")
        save_gir(graph, path)
        self.files.append(path)

    def run_begin(self, graph: Graph, passes: list) -> None:
        os.makedirs(self.directory, exist_ok=True)
        self.files = []
        self._width = max(2, len(str(len(passes))))
        with open(os.path.join(self.directory, "pipeline.txt"), "w") as f:
            f.write(format_pipeline(passes) + "\n")
        self._write(0, "input", graph)

    def after_pass(self, record: PassRecord, before: Graph, after: Graph) -> None:
        self._write(record.index, record.name, after)


class Verify(Instrument):
    """Run the IR verifier on the input and after each pass; name the pass that broke it."""

    def run_begin(self, graph: Graph, passes: list) -> None:
        try:
            verify(graph)
        except VerifyError as e:
            raise PassError(f"the input graph, before any pass, fails verification: "
                            f"{e.message}", e.loc) from e

    def after_pass(self, record: PassRecord, before: Graph, after: Graph) -> None:
        try:
            verify(after)
        except VerifyError as e:
            raise PassError(f"pass {record.label} broke verifier invariant "
                            f"[{e.invariant}]: {e.message}", e.loc) from e


class Timing(Instrument):
    """A table of per-pass wall time, written when the run ends."""

    def __init__(self, stream=None):
        self.stream = stream
        self.result: Optional[PassResult] = None

    def table(self) -> str:
        records = self.result.records if self.result else []
        total = sum(r.seconds for r in records)
        rows = [(r.index, r.spec, f"{r.seconds * 1e3:.3f}",
                 f"{100 * r.seconds / total:.1f}%" if total else "-",
                 "yes" if r.changed else "no") for r in records]
        rows.append(("", "total", f"{total * 1e3:.3f}", "100.0%" if total else "-", ""))
        return format_table(["#", "pass", "ms", "share", "changed"], rows, right=(0, 2, 3))

    def run_end(self, result: PassResult) -> None:
        self.result = result
        _stream(self.stream).write("# pass timing\n" + self.table() + "\n")


class Statistics(Instrument):
    """A table of every pass's statistics (and its remarks), written when the run ends."""

    def __init__(self, stream=None):
        self.stream = stream
        self.result: Optional[PassResult] = None

    def table(self) -> str:
        rows = []
        for r in (self.result.records if self.result else []):
            if not r.stats:
                rows.append((r.index, r.spec, "(none)", ""))
            for key, value in r.stats.items():
                text = f"{value:.6g}" if isinstance(value, float) else str(value)
                rows.append((r.index, r.spec, key, text))
        text = format_table(["#", "pass", "statistic", "value"], rows, right=(0, 3))
        remarks = [f"  {r.label}: {m}" for r in (self.result.records if self.result else [])
                   for m in r.remarks]
        if remarks:
            text += "\nremarks:\n" + "\n".join(remarks)
        return text

    def run_end(self, result: PassResult) -> None:
        self.result = result
        _stream(self.stream).write("# pass statistics\n" + self.table() + "\n")


class ReferenceCheck(Instrument):
    """Run the graph with the reference interpreter before the pipeline and after each pass;
    raise PassError naming the first pass whose outputs differ from the input graph's.

    inputs: arrays by input name (params default to their initializers). Inputs not given
    are generated from `seed`: floats standard normal, ints in [0, 3) (small enough to be
    valid indices), bools uniform; every symbolic dim takes `symbol_values.get(name,
    default_dim)`. Outputs compare with |a - b| <= atol + rtol*|b|; NaN equals NaN, infinities
    must match exactly, integer and bool outputs exactly."""

    def __init__(self, inputs: Optional[Mapping] = None, rtol: float = 1e-4, atol: float = 1e-5,
                 precision: str = "f32", seed: int = 0, symbol_values: Optional[Mapping] = None,
                 default_dim: int = 3):
        self.given = dict(inputs or {})
        self.rtol, self.atol = rtol, atol
        self.precision = precision
        self.seed = seed
        self.symbol_values = dict(symbol_values or {})
        self.default_dim = default_dim
        self.baseline: dict = {}
        self.checked: list[str] = []      # labels of the passes whose numbers were checked
        self._generated: dict = {}

    # -- inputs ---------------------------------------------------------------------------------
    def inputs_for(self, graph: Graph) -> dict:
        """Arrays for every input of `graph` that has no initializer (generated if not given).

        An input keeps its array for the whole run (passes are compared on the same data);
        generation is seeded by the input's name, so it does not depend on input order."""
        out = {}
        for v in graph.inputs:
            if v.name in self.given:
                out[v.name] = np.asarray(self.given[v.name])
            elif v.name not in graph.initializers:
                if v.name not in self._generated:
                    self._generated[v.name] = self._generate(v)
                out[v.name] = self._generated[v.name]
        return out

    def _generate(self, v) -> np.ndarray:
        env = {s: self.symbol_values.get(s, self.default_dim) for s in v.type.symbols()}
        shape = tuple(evaluate(d, env) for d in v.type.shape)
        rng = np.random.default_rng([self.seed, zlib.crc32(v.name.encode())])
        dt = v.type.dtype
        if dt.is_float:
            return rng.standard_normal(shape).astype(dt.np_dtype)
        if dt.is_int:
            return rng.integers(0, 3, shape).astype(dt.np_dtype)
        return rng.random(shape) < 0.5

    def _run(self, graph: Graph, who: str) -> dict:
        try:
            return interpret(graph, self.inputs_for(graph), precision=self.precision)
        except GraphcError as e:
            raise PassError(f"{who}: the reference interpreter cannot run the graph: "
                            f"{e}") from e

    # -- hooks ----------------------------------------------------------------------------------
    def run_begin(self, graph: Graph, passes: list) -> None:
        self.checked = []
        self._generated = {}
        self.baseline = self._run(graph, "ReferenceCheck on the input graph")

    def after_pass(self, record: PassRecord, before: Graph, after: Graph) -> None:
        if record.hash_after == record.hash_before:
            return    # structurally equal graphs compute the same numbers
        outputs = self._run(after, f"after pass {record.label}")
        for name, want in self.baseline.items():
            if name not in outputs:
                raise PassError(f"pass {record.label} removed output {name!r}; outputs are "
                                f"now {sorted(outputs)}")
            problem = compare_arrays(outputs[name], want, self.rtol, self.atol)
            if problem:
                raise PassError(f"pass {record.label} changed the numbers of output "
                                f"{name!r}: {problem}")
        self.checked.append(record.label)


def compare_arrays(found: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> Optional[str]:
    """None when `found` matches `want` within tolerance, else a description of the worst
    difference (max abs and rel error, where, both values)."""
    found, want = np.asarray(found), np.asarray(want)
    if found.shape != want.shape or found.dtype != want.dtype:
        return (f"expected {want.dtype}{list(want.shape)}, "
                f"found {found.dtype}{list(found.shape)}")
    if want.dtype.kind not in "fc":
        bad = found != want
        if not bad.any():
            return None
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        return (f"{int(bad.sum())} of {want.size} elements differ (exact comparison), first at "
                f"index {where}: {found[where].item()!r} instead of {want[where].item()!r}")
    f64, w64 = found.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(f64) & np.isnan(w64)
    same_inf = np.isinf(w64) & (f64 == w64)
    with np.errstate(all="ignore"):
        abs_err = np.abs(f64 - w64)
        abs_err = np.where(both_nan | same_inf, 0.0, abs_err)
        abs_err = np.where(np.isnan(abs_err), np.inf, abs_err)   # NaN on one side only
        rel_err = np.where(abs_err == 0, 0.0, abs_err / np.abs(w64))   # inf where want is 0
        bad = abs_err > atol + rtol * np.abs(np.where(np.isfinite(w64), w64, 0.0))
    if not bad.any():
        return None
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.where(bad, abs_err, -1.0)),
                                                   want.shape)) if want.ndim else ()
    return (f"max abs error {abs_err.max():.6g}, max rel error {rel_err.max():.6g} "
            f"(tolerance rtol={rtol:g}, atol={atol:g}); {int(bad.sum())} of {want.size} "
            f"elements differ, worst at index {worst}: {found[worst].item()!r} instead of "
            f"{want[worst].item()!r}")
