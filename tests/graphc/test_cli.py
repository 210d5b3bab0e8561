"""The `graphc` command line, end to end: `main(argv)` in process, plus real subprocesses."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from graphc.cli import main  # noqa: E402
from ir.equality import structural_equal  # noqa: E402
from ir.interpreter import run  # noqa: E402
from ir.serialize import load_gir  # noqa: E402
from passes import function_pass, run_pipeline, unregister_pass  # noqa: E402

MLP, CNN = str(ROOT / "examples" / "mlp.gir"), str(ROOT / "examples" / "cnn.gir")


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_opt_examples_print_after_change(capsys):
    code, out, err = cli(capsys, "opt", CNN, MLP, "--passes=shape-infer,dce",
                         "--print-after-change")
    assert code == 0
    assert out.count("graph @") == 2 and f"# ===== {MLP} =====" in out
    mlp_text = out.split(f"# ===== {MLP} =====")[1]
    assert " exp(" not in mlp_text and "reduce_sum" not in mlp_text
    assert err.count("# *** IR after shape-infer (1/2) omitted: no change ***") == 2
    assert err.count("# *** IR after dce (2/2) omitted: no change ***") == 1     # the cnn
    assert err.count("# *** IR after dce (2/2) ***") == 1                        # the mlp
    assert "Traceback" not in err


def test_opt_without_passes_prints_the_graph_back(capsys, tmp_path):
    code, out, err = cli(capsys, "opt", MLP)
    assert code == 0 and err == ""
    text = (ROOT / "examples" / "mlp.gir").read_text()
    assert out == text.split("\n", 1)[1]        # the file minus its "# weights:" comment


def test_opt_output_file_matches_the_pipeline_result(capsys, tmp_path):
    target = tmp_path / "mlp.opt.gir"
    code, out, err = cli(capsys, "opt", MLP, "--passes=dce", "-o", str(target))
    assert code == 0 and out == ""
    saved = load_gir(target)
    assert structural_equal(saved, run_pipeline(load_gir(MLP), "dce"), check_names=True,
                            check_locs=True)
    x = np.random.default_rng(1).standard_normal((4, 784)).astype(np.float32)
    np.testing.assert_array_equal(run(saved, {"x": x})["logits"],
                                  run(load_gir(MLP), {"x": x})["logits"])


def test_opt_several_files_into_an_output_directory_and_dump_dirs(capsys, tmp_path):
    code, _, _ = cli(capsys, "opt", MLP, CNN, "--passes=shape-infer,dce",
                     "-o", str(tmp_path / "out"), "--dump-dir", str(tmp_path / "dump"))
    assert code == 0
    assert {p.name for p in (tmp_path / "out").glob("*.gir")} == {"mlp.gir", "cnn.gir"}
    for stem in ("mlp", "cnn"):
        files = sorted(p.name for p in (tmp_path / "dump" / stem).glob("*.gir"))
        assert files == ["00-input.gir", "01-shape-infer.gir", "02-dce.gir"]


def test_opt_reports_and_checks(capsys, tmp_path):
    code, out, err = cli(capsys, "opt", MLP, "--passes=shape-infer,dce", "--print-before-all",
                         "--print-after=dce", "--diff", "--timing", "--stats", "--verify-each",
                         "--check-numerics", "--no-locs")
    assert code == 0
    assert "loc(" not in out and "loc(" not in err
    assert "# *** IR before shape-infer (1/2) ***" in err
    assert "# *** IR before dce (2/2) ***" in err and "# *** IR after dce (2/2) ***" in err
    assert "--- before dce (2/2)" in err and "-  %4 = exp(%3) : f32[N,400]" in err
    assert "# pass timing" in err and "# pass statistics" in err
    assert [line.split() for line in err.splitlines() if "removed_nodes" in line] == \
        [["2", "dce", "removed_nodes", "2"]]


def test_check_numerics_names_a_wrong_pass(capsys):
    @function_pass("test-cli-wrong", "negates the outputs")
    def wrong(graph, ctx):
        from ir import emit
        g = graph.clone()
        g.outputs = [emit(g, "neg", [v]) for v in g.outputs]
        return g, {}

    try:
        code, out, err = cli(capsys, "opt", MLP, "--passes=dce,test-cli-wrong",
                             "--check-numerics")
    finally:
        unregister_pass("test-cli-wrong")
    assert code == 1 and out == ""
    assert err.startswith("graphc opt: error: pass test-cli-wrong (2/2) changed the numbers of "
                          "output 'logits': max abs error ")


def test_unknown_pass_is_a_usage_error_with_a_suggestion(capsys):
    code, out, err = cli(capsys, "opt", MLP, "--passes=shape-infer,dcee")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == ("graphc opt: error: bad pipeline at column 13: unknown pass "
                                   "'dcee' (did you mean 'dce'?); known passes: " +
                                   err.splitlines()[0].split("known passes: ")[1])
    assert err.splitlines()[1:] == ["  shape-infer,dcee", "              ^"]


def test_bad_pass_option_is_a_usage_error(capsys):
    code, _, err = cli(capsys, "opt", MLP, "--passes=dce{fast=true}")
    assert code == 2 and "pass 'dce' takes no options, found 'fast'" in err


def test_parse_error_prints_the_caret_and_exits_1(capsys, tmp_path):
    bad = tmp_path / "bad.gir"
    bad.write_text('graph @g(%x: f32[N]) {\n  %0 = relu(%x) : f32[N]\n'
                   '  %1 = matmull(%0) : f32[N]\n  return %1 as "y"\n}\n')
    code, out, err = cli(capsys, "opt", str(bad))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"graphc opt: error: {bad}:3:8: unknown op 'matmull'; did you mean " \
                       f"matmul, mul?"
    assert lines[1].strip() == "%1 = matmull(%0) : f32[N]"
    assert lines[2].strip().startswith("^")
    assert lines[2].index("^") == lines[1].index("matmull")


def test_missing_file_exits_1(capsys, tmp_path):
    code, _, err = cli(capsys, "opt", str(tmp_path / "nope.gir"))
    assert code == 1 and "nope.gir" in err and "No such file" in err


def test_shape_error_from_a_pass_exits_1_naming_the_pass(capsys, tmp_path):
    # A graph the parser accepts but whose alias is inconsistent: shape-infer rejects it.
    src = tmp_path / "alias.gir"
    src.write_text('graph @a(%x: f32[3], %s: f32[4] state) {\n'
                   '  %0 = neg(%x) : f32[3] loc("m.py":2 "upd")\n'
                   '  return %0 as "s_new" updates %s\n}\n')
    code, _, err = cli(capsys, "opt", str(src), "--passes=shape-infer")
    assert code == 1
    assert err.splitlines() == [
        "graphc opt: error: m.py:2 (upd): output 's_new' updates %s in place, so its type "
        "must be f32[4], found f32[3]", "  (in pass shape-infer (1/1))"]


def test_print_after_options_are_exclusive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["opt", MLP, "--print-after-all", "--print-after-change"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_ops_and_passes_listings(capsys):
    code, out, _ = cli(capsys, "ops")
    assert code == 0
    matmul = [line for line in out.splitlines() if line.startswith("matmul ")]
    assert matmul and "a, b" in matmul[0] and "contraction" in matmul[0] and "pure" in matmul[0]
    random_row = [line for line in out.splitlines() if line.startswith("random_uniform ")]
    assert "random" in random_row[0].split()
    code, out, _ = cli(capsys, "ops", "conv2d")
    assert code == 0 and out.startswith("conv2d(x, w)  fusion=contraction  purity=pure")
    assert any(line.split()[:3] == ["padding", "ints", "[0,"] for line in out.splitlines())
    code, _, err = cli(capsys, "ops", "conv2")
    assert code == 2 and "unknown op 'conv2'; did you mean conv2d" in err
    code, out, _ = cli(capsys, "passes")
    names = [line.split()[0] for line in out.splitlines()[2:] if line and not line[0].isspace()]
    assert {"dce", "shape-infer"} <= set(names)


def test_console_entry_point_in_a_subprocess(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ok = subprocess.run([sys.executable, "-m", "graphc.cli", "opt", MLP, CNN,
                         "--passes=shape-infer,dce", "--print-after-change"],
                        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("graph @") == 2 and "IR after dce (2/2) ***" in ok.stderr
    bad = subprocess.run([sys.executable, "-m", "graphc.cli", "opt", MLP, "--passes=nope"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown pass 'nope'" in bad.stderr

