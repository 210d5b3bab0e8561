"""The pass registry, textual pipelines, the PassManager and every instrument."""
import io
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, PassError, TensorType, emit, f32, i64  # noqa: E402
from ir.equality import structural_equal, structural_hash  # noqa: E402
from ir.serialize import load_gir  # noqa: E402
from passes import (Diff, DumpDir, Pass, PassManager, PassOption, PipelineError,  # noqa: E402
                    PrintIR, ReferenceCheck, Statistics, Timing, Verify, build_pipeline,
                    compare_arrays, format_pipeline, format_table, function_pass, get_pass,
                    parse_pipeline, register_pass, registered_passes, run_pipeline,
                    unregister_pass)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# -- test-only passes ----------------------------------------------------------------------------

def _relu_to_abs(graph, ctx):
    """Deliberately wrong: abs(x) != relu(x) for negative x."""
    g = graph.clone()
    swapped = 0
    for node in g.nodes:
        if node.op == "relu":
            node.op, swapped = "abs", swapped + 1
    return g, {"swapped": swapped}


def _negate_outputs(graph, ctx):
    """Deliberately wrong: negates every output."""
    g = graph.clone()
    for i, v in enumerate(list(g.outputs)):
        g.outputs[i] = emit(g, "neg", [v])
    return g, {"negated": len(g.outputs)}


def _scale(graph, ctx, factor=1.0, note="", fast_math=False):
    """Multiplies every output by `factor` (exact for 1.0)."""
    g = graph.clone()
    for i, v in enumerate(list(g.outputs)):
        c = emit(g, "constant", [], {"value": np.array(factor, v.type.dtype.np_dtype)})
        b = emit(g, "broadcast", [c], {"shape": v.type.shape, "dims": ()})
        g.outputs[i] = emit(g, "mul", [v, b])
    if note:
        ctx.remark(note)
    return g, {"scaled": len(g.outputs), "factor": factor}


def _break_a_type(graph, ctx):
    g = graph.clone()
    g.nodes[0].outputs[0].type = TensorType((7,), f32)
    return g, {}


def _mutate_input(graph, ctx):
    graph.nodes.pop()
    return graph, {}


def _claims_no_change(graph, ctx):
    g, stats = _relu_to_abs(graph, ctx)
    ctx.changed = False
    return g, stats


def _claims_change(graph, ctx):
    ctx.changed = True
    return graph, {}


class _CountingPass(Pass):
    """A Pass subclass with state: counts its runs."""
    name = "test-counting"
    description = "counts how often it ran"

    def __init__(self, start=0):
        super().__init__(start=start)
        self.runs = start

    def run(self, graph, ctx):
        self.runs += 1
        return graph, {"runs": self.runs}


TEST_PASSES = {
    "test-relu-to-abs": (_relu_to_abs, ()),
    "test-negate": (_negate_outputs, ()),
    "test-scale": (_scale, (PassOption("factor", float, 1.0, "multiply by this"),
                            PassOption("note", str, "", "a remark to make"),
                            PassOption("fast-math", bool, False, "unused here"))),
    "test-break-type": (_break_a_type, ()),
    "test-mutate": (_mutate_input, ()),
    "test-claims-no-change": (_claims_no_change, ()),
    "test-claims-change": (_claims_change, ()),
}


@pytest.fixture(autouse=True)
def test_passes():
    for name, (fn, options) in TEST_PASSES.items():
        function_pass(name, fn.__doc__ or "", options)(fn)
    register_pass("test-counting", _CountingPass,
                  [PassOption("start", int, 0, "initial count")], "counts runs")
    yield
    for name in list(TEST_PASSES) + ["test-counting"]:
        unregister_pass(name)


def small_graph():
    """x -> relu -> neg, plus a dead exp; output 'y'."""
    g = Graph("small")
    x = g.add_input("x", TensorType(("N", 3), f32))
    r = emit(g, "relu", [x])
    emit(g, "exp", [r])
    g.add_output(emit(g, "neg", [r]), "y")
    return g


# -- registry and pipelines ----------------------------------------------------------------------

def test_builtin_passes_are_registered():
    assert {"shape-infer", "dce"} <= set(registered_passes())
    assert get_pass("dce").description.startswith("remove nodes")


def test_parse_pipeline_names_options_and_whitespace():
    entries = parse_pipeline(' shape-infer , test-scale{factor=2.5, note="a b", fast-math=true},dce ')
    assert [e.name for e in entries] == ["shape-infer", "test-scale", "dce"]
    assert [(o, v) for o, v, _ in entries[1].options] == [
        ("factor", "2.5"), ("note", '"a b"'), ("fast-math", "true")]
    assert parse_pipeline("") == [] and parse_pipeline("   ") == []


def test_build_pipeline_converts_option_values():
    (p,) = build_pipeline('test-scale{factor=2, note="x y", fast-math=true}')
    assert p.options == {"factor": 2.0, "note": "x y", "fast_math": True}
    (q,) = build_pipeline("test-scale")
    assert q.options == {"factor": 1.0, "note": "", "fast_math": False}


def test_format_pipeline_round_trips():
    text = 'shape-infer,test-scale{factor=0.5,note="two words"},dce,test-counting{start=3}'
    passes = build_pipeline(text)
    assert format_pipeline(passes) == text
    assert format_pipeline(build_pipeline(format_pipeline(passes))) == text
    assert format_pipeline(build_pipeline("test-scale{factor=1.0}")) == "test-scale"


@pytest.mark.parametrize("text, column, message", [
    ("dce,", 5, "expected a pass name, found the end"),
    (",dce", 1, "expected a pass name, found ','"),
    ("dce dce", 5, "expected ',' between passes, found 'dce'"),
    ("test-scale{", 12, "expected an option name, found the end"),
    ("test-scale{factor}", 18, "expected '=', found '}'"),
    ("test-scale{factor=}", 19, "expected an option value, found '}'"),
    ("test-scale{factor=1", 20, "expected ',' or '}', found the end"),
    ("dce;cse", 4, "unexpected character ';'"),
])
def test_pipeline_syntax_errors_point_at_the_column(text, column, message):
    with pytest.raises(PipelineError) as info:
        build_pipeline(text)
    lines = str(info.value).splitlines()
    assert lines[0] == f"bad pipeline at column {column}: {message}"
    assert lines[1] == f"  {text}"
    assert lines[2] == "  " + " " * (column - 1) + "^"


def test_unknown_pass_suggests_and_lists_known_passes():
    with pytest.raises(PipelineError) as info:
        build_pipeline("shape-infer,dcee")
    msg = str(info.value)
    assert "column 13: unknown pass 'dcee' (did you mean 'dce'?)" in msg
    assert "known passes: " in msg and "shape-infer" in msg.split("known passes: ")[1]
    with pytest.raises(PipelineError, match="did you mean 'shape-infer'"):
        get_pass("shape-infre")


@pytest.mark.parametrize("text, message", [
    ("test-scale{factr=2}", "pass 'test-scale' has no option 'factr' (did you mean 'factor'?); "
                            "its options are factor, note, fast-math"),
    ("dce{aggressive=true}", "pass 'dce' takes no options, found 'aggressive'"),
    ("test-scale{fast-math=yes}", "option 'fast-math' expects true or false, found 'yes'"),
    ("test-counting{start=1.5}", "option 'start' expects an integer, found '1.5'"),
    ("test-scale{factor=big}", "option 'factor' expects a number, found 'big'"),
    ("test-scale{factor=1,factor=2}", "option 'factor' of pass 'test-scale' is given twice"),
])
def test_bad_options(text, message):
    with pytest.raises(PipelineError) as info:
        build_pipeline(text)
    assert message in str(info.value)


def test_python_options_are_checked_too():
    info = get_pass("test-scale")
    assert info.create(factor=3).options["factor"] == 3.0
    with pytest.raises(PipelineError, match="expects true or false, found 'yes'"):
        info.create(fast_math="yes")
    with pytest.raises(PipelineError, match="has no option 'speed'"):
        info.create(speed=2)


def test_registration_rejects_duplicates_and_bad_names():
    with pytest.raises(ValueError, match="registered twice"):
        register_pass("dce", lambda: None)
    with pytest.raises(ValueError, match="dashed identifier"):
        register_pass("Bad Name", lambda: None)
    with pytest.raises(ValueError, match="type must be one of"):
        PassOption("level", list, [])


# -- the manager ---------------------------------------------------------------------------------

def test_records_stats_changed_and_hashes():
    g = small_graph()
    result = PassManager("shape-infer,dce,test-counting{start=5}").run(g)
    names = [r.name for r in result.records]
    assert names == ["shape-infer", "dce", "test-counting"]
    si, dce, counting = result.records
    assert si.stats == {"nodes_checked": 3, "types_refined": 0, "unified_symbols": 0}
    assert not si.changed and si.hash_before == si.hash_after == structural_hash(g)
    assert dce.changed and dce.stats == {"removed_nodes": 1}
    assert dce.hash_before == si.hash_after and dce.hash_after == structural_hash(result.graph)
    assert counting.stats == {"runs": 6} and counting.spec == "test-counting{start=5}"
    assert [r.label for r in result.records][1] == "dce (2/3)"
    assert all(r.seconds >= 0 for r in result.records)
    assert result.changed and result.pipeline == "shape-infer,dce,test-counting{start=5}"
    assert result.record("dce") is dce
    with pytest.raises(KeyError):
        result.record("cse")


def test_pipeline_may_mix_text_and_pass_objects():
    counting = get_pass("test-counting").create()
    result = PassManager(["dce", counting, "dce"]).run(small_graph())
    assert [r.spec for r in result.records] == ["dce", "test-counting", "dce"]
    assert counting.runs == 1
    assert len(run_pipeline(small_graph(), "dce").nodes) == 2


def test_explicit_changed_flag_wins_over_structure():
    result = PassManager("test-claims-no-change,test-claims-change").run(small_graph())
    first, second = result.records
    assert first.hash_before != first.hash_after and not first.changed
    assert second.hash_before == second.hash_after and second.changed


def test_mutating_the_input_is_caught():
    with pytest.raises(PassError, match=r"pass test-mutate \(1/1\) mutated its input graph"):
        PassManager("test-mutate").run(small_graph())


def test_bad_pass_outcomes_are_pass_errors():
    register_pass("test-returns-graph", lambda: _Returns(lambda g: g))
    register_pass("test-bad-stat", lambda: _Returns(lambda g: (g, {"ok": "yes"})))
    try:
        with pytest.raises(PassError, match=r"must return \(Graph, stats dict\), found Graph"):
            PassManager("test-returns-graph").run(small_graph())
        with pytest.raises(PassError, match="statistic 'ok' must map a name to an int or float"):
            PassManager("test-bad-stat").run(small_graph())
    finally:
        unregister_pass("test-returns-graph")
        unregister_pass("test-bad-stat")


class _Returns(Pass):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def run(self, graph, ctx):
        return self.fn(graph)


def test_errors_in_a_pass_keep_their_type_and_name_the_pass():
    register_pass("test-raises", lambda: _Returns(lambda g: 1 / 0))
    try:
        with pytest.raises(ZeroDivisionError) as info:
            PassManager("dce,test-raises").run(small_graph())
        assert info.value.__notes__ == ["in pass test-raises (2/2)"]
    finally:
        unregister_pass("test-raises")


# -- instruments ---------------------------------------------------------------------------------

def test_print_ir_before_all_and_after_named():
    out = io.StringIO()
    PassManager("shape-infer,dce", [PrintIR(before="all", after=["dce"], stream=out)]).run(
        small_graph())
    text = out.getvalue()
    headers = [line for line in text.splitlines() if line.startswith("# ***")]
    assert headers == ["# *** IR before shape-infer (1/2) ***", "# *** IR before dce (2/2) ***",
                       "# *** IR after dce (2/2) ***"]
    after_dce = text.split("# *** IR after dce (2/2) ***\n")[1]
    assert "exp(" not in after_dce and "relu(" in after_dce


def test_print_ir_only_on_change():
    out = io.StringIO()
    PassManager("shape-infer,dce", [PrintIR(after="all", only_on_change=True, stream=out)]).run(
        small_graph())
    text = out.getvalue()
    assert "# *** IR after shape-infer (1/2) omitted: no change ***\n# *** IR after dce (2/2) ***" \
        in text
    assert text.count("graph @small") == 1


def test_print_ir_accepts_comma_separated_names():
    out = io.StringIO()
    PassManager("shape-infer,dce", [PrintIR(before="dce,cse", stream=out)]).run(small_graph())
    assert out.getvalue().startswith("# *** IR before dce (2/2) ***\n")


def test_diff_shows_only_changing_passes():
    out = io.StringIO()
    PassManager("shape-infer,dce", [Diff(stream=out)]).run(small_graph())
    text = out.getvalue()
    assert "shape-infer" not in text
    assert "--- before dce (2/2)\n+++ after dce (2/2)\n" in text
    removed = [line for line in text.splitlines() if line.startswith("-") and
               not line.startswith("---")]
    assert removed == ["-  %1 = exp(%0) : f32[N,3]"]
    assert not [line for line in text.splitlines() if line.startswith("+") and
                not line.startswith("+++")]


def test_dump_dir_writes_numbered_replayable_files(tmp_path):
    g = load_gir(EXAMPLES / "mlp.gir")
    dump = DumpDir(tmp_path / "dump")
    result = PassManager("shape-infer,dce", [dump]).run(g)
    names = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert names == ["00-input.gir", "00-input.gir.weights.npz", "01-shape-infer.gir",
                     "01-shape-infer.gir.weights.npz", "02-dce.gir", "02-dce.gir.weights.npz",
                     "pipeline.txt"]
    assert [Path(f).name for f in dump.files] == ["00-input.gir", "01-shape-infer.gir",
                                                  "02-dce.gir"]
    assert structural_equal(load_gir(tmp_path / "dump" / "00-input.gir"), g,
                            check_names=True, check_locs=True)
    final = load_gir(tmp_path / "dump" / "02-dce.gir")
    assert structural_equal(final, result.graph, check_names=True, check_locs=True)
    pipeline = (tmp_path / "dump" / "pipeline.txt").read_text().strip()
    replay = run_pipeline(load_gir(tmp_path / "dump" / "00-input.gir"), pipeline)
    assert structural_equal(replay, final, check_names=True)


def test_dump_dir_numbering_widens_for_long_pipelines(tmp_path):
    dump = DumpDir(tmp_path)
    PassManager(",".join(["dce"] * 100), [dump]).run(small_graph())
    names = [Path(f).name for f in dump.files]
    assert names[0] == "000-input.gir" and names[-1] == "100-dce.gir"
    assert names == sorted(names)


def test_verify_names_the_pass_that_broke_an_invariant():
    with pytest.raises(PassError) as info:
        PassManager("dce,test-break-type,shape-infer", [Verify()]).run(small_graph())
    msg = str(info.value)
    assert "pass test-break-type (2/3) broke verifier invariant [type-matches-rule]" in msg
    PassManager("dce,test-break-type,shape-infer").run(small_graph())   # unchecked: no error


def test_verify_rejects_a_broken_input_before_any_pass():
    g = small_graph()
    g.nodes[1].outputs[0].type = TensorType((2,), f32)
    with pytest.raises(PassError, match="the input graph, before any pass, fails verification"):
        PassManager("dce", [Verify()]).run(g)


def test_timing_table():
    out = io.StringIO()
    timing = Timing(stream=out)
    PassManager("shape-infer,dce", [timing]).run(small_graph())
    lines = out.getvalue().splitlines()
    assert lines[0] == "# pass timing"
    assert lines[1].split() == ["#", "pass", "ms", "share", "changed"]
    assert lines[3].split()[:2] == ["1", "shape-infer"] and lines[3].split()[-1] == "no"
    assert lines[4].split()[:2] == ["2", "dce"] and lines[4].split()[-1] == "yes"
    assert lines[5].split()[0] == "total"
    assert len(lines) == 6 and timing.table() in out.getvalue()


def test_statistics_table_with_remarks():
    out = io.StringIO()
    PassManager('dce,test-scale{factor=2.0,note="doubled"}', [Statistics(stream=out)]).run(
        small_graph())
    text = out.getvalue()
    rows = [line.split() for line in text.splitlines()[3:5]]
    assert rows[0] == ["1", "dce", "removed_nodes", "1"]
    assert text.splitlines()[4].split()[2:] == ["scaled", "1"]
    assert text.splitlines()[5].split()[2:] == ["factor", "2"]
    assert text.endswith('remarks:\n  test-scale{factor=2.0,note=doubled} (2/2): doubled\n')


def test_format_table_aligns_columns():
    table = format_table(["name", "n"], [("a", 1), ("longer", 100)], right=(1,))
    assert table.splitlines() == ["name      n", "------  ---", "a         1", "longer  100"]


def test_reference_check_names_the_first_pass_that_changed_the_numbers():
    g = small_graph()
    check = ReferenceCheck()
    with pytest.raises(PassError) as info:
        PassManager("shape-infer,dce,test-relu-to-abs,test-negate", [check]).run(g)
    msg = str(info.value)
    assert msg.startswith("pass test-relu-to-abs (3/4) changed the numbers of output 'y': "
                          "max abs error ")
    assert "max rel error" in msg and "tolerance rtol=0.0001, atol=1e-05" in msg
    assert check.checked == ["dce (2/4)"]   # shape-infer changed nothing: nothing to check


def test_reference_check_accepts_exact_and_within_tolerance_rewrites():
    check = ReferenceCheck()
    PassManager("dce,test-scale{factor=1.0},test-scale{factor=1.00000001}", [check]).run(
        small_graph())
    assert check.checked == ["dce (1/3)", "test-scale (2/3)",
                             "test-scale{factor=1.00000001} (3/3)"]
    with pytest.raises(PassError, match="test-scale{factor=1.01} \\(1/1\\) changed the numbers"):
        PassManager("test-scale{factor=1.01}", [ReferenceCheck()]).run(small_graph())
    PassManager("test-scale{factor=1.01}", [ReferenceCheck(rtol=0.02)]).run(small_graph())


def test_reference_check_with_given_inputs_and_nan():
    g = Graph("nan")
    x = g.add_input("x", TensorType(("N",), f32))
    g.add_output(emit(g, "log", [x]), "y")       # log of a negative number is NaN
    check = ReferenceCheck(inputs={"x": np.array([-1.0, 0.0, 2.0], np.float32)})
    PassManager("test-scale{factor=1.0}", [check]).run(g)     # NaN == NaN, -inf == -inf
    assert check.checked == ["test-scale (1/1)"]
    assert np.isnan(check.baseline["y"][0]) and check.baseline["y"][1] == -np.inf


def test_reference_check_uses_initializers_and_symbol_values():
    g = load_gir(EXAMPLES / "mlp.gir")
    check = ReferenceCheck(symbol_values={"N": 2})
    PassManager("shape-infer,dce", [check]).run(g)
    assert check.baseline["logits"].shape == (2, 10)
    assert check.checked == ["dce (2/2)"]
    assert check.inputs_for(g)["x"].shape == (2, 784)
    assert set(check.inputs_for(g)) == {"x"}     # params come from their initializers


def test_reference_check_on_an_input_that_cannot_run():
    g = Graph("t")
    x = g.add_input("x", TensorType((3,), i64))
    g.add_output(emit(g, "neg", [x]), "y")
    with pytest.raises(PassError, match="ReferenceCheck on the input graph: the reference "
                                        "interpreter cannot run the graph"):
        PassManager("dce", [ReferenceCheck(inputs={"x": np.zeros(4, np.int64)})]).run(g)


@pytest.mark.parametrize("found, want, problem", [
    ([1.0, np.nan], [1.0, np.nan], None),
    ([np.inf, -np.inf], [np.inf, -np.inf], None),
    ([1.0, 2.0], [1.0, np.nan], "max abs error inf"),
    ([np.inf], [-np.inf], "max abs error inf"),
    ([1.0, 2.5], [1.0, 2.0], "max abs error 0.5, max rel error 0.25"),
    ([1.0], [1.0, 2.0], "expected float64[2], found float64[1]"),
])
def test_compare_arrays(found, want, problem):
    result = compare_arrays(np.array(found), np.array(want), 1e-6, 1e-6)
    if problem is None:
        assert result is None
    else:
        assert problem in result


def test_compare_arrays_is_exact_for_integers():
    assert compare_arrays(np.array([1, 2]), np.array([1, 2]), 1.0, 1.0) is None
    msg = compare_arrays(np.array([1, 3]), np.array([1, 2]), 1.0, 1.0)
    assert msg == "1 of 2 elements differ (exact comparison), first at index (1,): 3 instead of 2"


def test_reference_check_does_not_trust_a_pass_that_claims_no_change():
    with pytest.raises(PassError, match=r"pass test-claims-no-change \(1/1\) changed the numbers"):
        PassManager("test-claims-no-change", [ReferenceCheck()]).run(small_graph())
