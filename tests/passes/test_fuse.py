"""fuse: golden files (groups visible in the printed IR, parsed back), refusal reasons,
convexity, the MLP step's kernel count and its softmax cross-entropy in one kernel."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import Graph, TensorType, emit, parse  # noqa: E402
from ir.equality import structural_equal  # noqa: E402
from ir.interpreter import run  # noqa: E402
from ir.printer import dump  # noqa: E402
from ir.verifier import verify  # noqa: E402
from passes import PassManager, analyse_fusion  # noqa: E402
from passes.fuse import fuse  # noqa: E402
from tests.passes import golden_runner  # noqa: E402

# (groups by kind, kernels before -> after)
EXPECTED = {
    "softmax_ce": ({"reduction": 1}, 38, 1),      # forward + backward: one row kernel
    # x@w+b, relu in one epilogue; the relu mask with the bias gradient's column sum
    "mlp_layer": ({"contraction": 1, "reduction": 1}, 10, 4),
    # the scalar bias corrections and the three updated tensors: one loop
    "adam": ({"elementwise": 1}, 28, 1),
    "refusals": ({"reduction": 1, "elementwise": 1}, 8, 6),
}


@pytest.mark.parametrize("case", golden_runner.cases("fuse"))
def test_golden(case):
    result = golden_runner.run_case("fuse", case)
    stats = result.records[0].stats
    kinds, before, after = EXPECTED[case]
    assert {k: stats[f"groups_{k}"] for k in ("elementwise", "reduction", "contraction")
            if stats[f"groups_{k}"]} == kinds
    assert (stats["kernels_before"], stats["kernels_after"]) == (before, after)


def test_every_golden_case_has_expectations():
    assert set(golden_runner.cases("fuse")) == set(EXPECTED)


def test_fused_graphs_print_and_parse_back():
    for case in golden_runner.cases("fuse"):
        g = golden_runner.load_input(golden_runner.GOLDEN / "fuse" / f"{case}.gir")[1]
        out, _ = fuse(g)
        text, weights = dump(out)
        back = parse(text, weights)
        verify(back)
        assert structural_equal(back, out, check_names=True, check_locs=True)
        fused = [n for n in out.nodes if n.op == "fused"]
        assert fused and all(len(n.loc.locs) >= 1 or not n.loc for n in fused)


def test_refusals_have_reasons():
    g = golden_runner.load_input(golden_runner.GOLDEN / "fuse" / "refusals.gir")[1]
    report = analyse_fusion(g)
    reasons = {g.nodes[i].outputs[0].name: r for i, r in report.refusals}
    assert "injective" in reasons["1"]
    assert "second pass" in reasons["2"]
    assert "2 consumers" in reasons["5"] and "stores one value" in reasons["5"]
    lines = report.lines()
    assert any(line.startswith("group ") for line in lines)
    assert sum(line.startswith("refused ") for line in lines) == len(report.refusals)


def test_explain_fusion_command_line(capsys):
    from graphc.cli import main
    path = str(golden_runner.GOLDEN / "fuse" / "refusals.gir")
    assert main(["opt", path, "--explain-fusion"]) == 0
    err = capsys.readouterr().err
    assert "# fusion (fuse" in err and "refused %1 (transpose)" in err
    assert "group 0 (reduction" in err
    assert main(["opt", path, "--passes", "dce", "--explain-fusion"]) == 2
    assert "needs a pipeline with the fuse pass" in capsys.readouterr().err


def test_groups_stay_convex():
    # %e feeds both the group-to-be and a transpose that feeds it again: fusing exp with the
    # final add would make the fused node depend on the transpose, which depends on it
    g = Graph("convex")
    x = g.add_input("x", TensorType((4, 4), "f32"))
    e = emit(g, "exp", [x])
    t = emit(g, "transpose", [e], {"perm": (1, 0)})
    g.add_output(emit(g, "add", [e, t]), "y")
    out, stats = fuse(g)
    verify(out)
    assert stats["fused_groups"] == 0
    xs = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    assert np.array_equal(run(out, {"x": xs})["y"], run(g, {"x": xs})["y"])


def test_mlp_training_step_kernels_and_softmax_cross_entropy():
    from tests.passes.mlp_step import mlp_train_step
    g = mlp_train_step()
    cleaned = PassManager("shape-infer,constant-fold,simplify,cse,dce").run(g).graph
    result = PassManager("fuse").run(cleaned)
    stats = result.records[0].stats
    assert stats["kernels_after"] <= 20 < 150 <= stats["kernels_before"]
    out = result.graph
    verify(out)
    # softmax cross entropy forward + backward: every log/exp/reduce_max of the loss is in
    # at most 3 kernels (here: one row-wise reduction kernel)
    loss_kernels = [n for n in out.nodes if n.op == "fused" and any(
        m.op in ("reduce_max", "log", "exp") for m in n.attrs["body"].nodes)]
    assert 1 <= len(loss_kernels) <= 3
    assert all(n.attrs["kind"] == "reduction" for n in loss_kernels)
    # bias + relu in the matmul epilogues
    epilogues = [n for n in out.nodes if n.op == "fused" and n.attrs["kind"] == "contraction"]
    assert len(epilogues) >= 3
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((8, 784)).astype(np.float32),
             "y": rng.integers(0, 10, 8).astype(np.int64), "lr": np.float32(1e-3),
             "step": np.int64(1), "loss_scale": np.float32(1.0)}
    want, got = run(g, feeds), run(out, feeds)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_epilogue_side_node_defined_before_the_contraction():
    """A bias broadcast emitted BEFORE its matmul joins the epilogue group under the
    broadcast's (smaller) group id; the absorption loop must follow that id (it used to look
    up the vanished one: KeyError on ONNX-imported GRU graphs)."""
    g = Graph("bias_first")
    x = g.add_input("x", TensorType((4, 3), "f32"))
    w = g.add_input("w", TensorType((3, 5), "f32"))
    b = g.add_input("b", TensorType((5,), "f32"))
    bias = emit(g, "broadcast", [b], {"shape": (4, 5), "dims": (1,)})
    y = emit(g, "matmul", [x, w])
    out = emit(g, "tanh", [emit(g, "add", [y, bias])])
    g.add_output(out, "out")
    fused, _ = fuse(g)
    verify(fused)
    assert [n.op for n in fused.nodes] == ["fused"]
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal((4, 3), np.float32),
            "w": rng.standard_normal((3, 5), np.float32),
            "b": rng.standard_normal(5, np.float32)}
    np.testing.assert_array_equal(run(fused, args)["out"], run(g, args)["out"])
