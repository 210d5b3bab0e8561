"""Golden tests for passes: IR text in, expected IR text out.

tests/passes/golden/<pass>/<case>.gir is the input and <case>.expected.gir the expected result
of running pipeline <pass> on it. A case passes when the result is structurally equal to the
expected graph (names and locs included), prints to the same text (comment lines aside), passes
the verifier, and computes the same numbers as the input with the reference interpreter.

An input may carry test directives as comments, applied after parsing:
    # test: retype %y: f32[M,4]
gives input %y that type without re-deriving anything downstream: the graph a front end would
produce if it declared %y with its own batch symbol. (The parser itself rejects such a graph,
because it types every node as it reads it; shape-infer is what repairs it.)

To regenerate the expected files after an intended change, run the tests with
GRAPHC_UPDATE_GOLDEN=1 and review the diff.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ir import TensorType
from ir.equality import structural_diff, structural_equal
from ir.interpreter import run
from ir.printer import dump
from ir.serialize import load_gir, save_gir
from ir.symbolic import parse_dim
from ir.verifier import verify
from passes import PassManager, ReferenceCheck, compare_arrays

GOLDEN = Path(__file__).resolve().parent / "golden"
_RETYPE = re.compile(r"#\s*test:\s*retype\s+%(\w+)\s*:\s*(\w+)\[(.*)\]\s*$")


def cases(pass_name: str) -> list:
    """The case names under golden/<pass_name>/ (sorted)."""
    folder = GOLDEN / pass_name
    return sorted(p.name[:-len(".gir")] for p in folder.glob("*.gir")
                  if not p.name.endswith(".expected.gir"))


def load_input(path: Path):
    """(graph as parsed, graph after the test directives)."""
    parsed = load_gir(path)
    graph = parsed.clone()
    for line in path.read_text().splitlines():
        m = _RETYPE.match(line.strip())
        if m:
            name, dtype, dims = m.groups()
            shape = tuple(parse_dim(d) for d in dims.split(",")) if dims.strip() else ()
            graph.input(name).type = TensorType(shape, dtype)
    return parsed, graph


def ir_lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def run_case(pass_name: str, case: str, instruments=(), f64_rtol=None):
    """Run one golden case; returns the PassResult. Asserts everything the module doc says."""
    folder = GOLDEN / pass_name
    source, expected_path = folder / f"{case}.gir", folder / f"{case}.expected.gir"
    parsed, graph = load_input(source)
    result = PassManager(pass_name, list(instruments)).run(graph)
    verify(result.graph)
    if os.environ.get("GRAPHC_UPDATE_GOLDEN"):
        save_gir(result.graph, expected_path)
    expected = load_gir(expected_path)
    diff = structural_diff(result.graph, expected, check_names=True, check_locs=True)
    assert diff is None, f"{pass_name}/{case}: result differs from the expected file: {diff}"
    assert structural_equal(result.graph, expected, check_names=True, check_locs=True)
    assert ir_lines(dump(result.graph)[0]) == ir_lines(expected_path.read_text())
    check_numbers(parsed, result.graph, f64_rtol=f64_rtol)
    return result


def check_numbers(before, after, seed: int = 0, f64_rtol=None) -> None:
    """The graph as parsed and the pass result compute the same outputs (f32 and f64).

    `f64_rtol`: for passes that compute values at compile time in the graph's own dtype
    (constant folding in f32), the f64 run of the original graph is more precise than the
    folded constants; it is then compared within this tolerance instead of bit for bit."""
    inputs = ReferenceCheck(seed=seed).inputs_for(after)
    for precision in ("f32", "f64"):
        want = run(before, inputs, precision=precision)
        got = run(after, inputs, precision=precision)
        assert set(got) == set(want)
        for name in want:
            loose = precision == "f64" and f64_rtol is not None
            rtol = f64_rtol if loose else 1e-6
            problem = compare_arrays(got[name], want[name], rtol=rtol, atol=1e-7)
            assert problem is None, f"output {name!r} ({precision}): {problem}"
            if not loose:
                assert np.array_equal(got[name], want[name], equal_nan=True)
