"""`graphc compile MODEL.onnx [--export DIR] [--print-after-all ...]`."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper  # noqa: E402

import graphc  # noqa: E402
import onnx_helper_models  # noqa: E402
from graphc.cli import main  # noqa: E402
from graphc.onnx import import_model  # noqa: E402
from ir.serialize import load_gir  # noqa: E402


@pytest.fixture
def lenet_path(tmp_path):
    model, _ = onnx_helper_models.lenet5()
    path = tmp_path / "lenet.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_compile_prints_a_summary_and_exports_a_bundle(lenet_path, tmp_path, capsys):
    out_dir = tmp_path / "out"
    assert main(["compile", lenet_path, "--export", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert "input   x: f32[batch,1,28,28]" in text
    assert "output  " in text and "f32[batch,10]" in text
    assert "params  10" in text and "compiled in" in text
    for name in ("model.gir", "model.ll", "model.o", "model.h", "weights.bin", "manifest.json"):
        assert os.path.getsize(out_dir / name) > 0
    assert (out_dir / "model.o").read_bytes()[:4] == b"\x7fELF"
    # the exported IR is the optimised graph (its params in weights.bin): the bundle and
    # that IR compute what the imported model does
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    want = graphc.compile(import_model(lenet_path))(x)
    loaded = graphc.load(str(out_dir))
    np.testing.assert_allclose(loaded(x), want, rtol=1e-5, atol=1e-6)
    g = load_gir(str(out_dir / "model.gir"))
    g.initializers = {k: v.copy() for k, v in loaded.params.items()}
    np.testing.assert_allclose(graphc.compile(g)(x), want, rtol=1e-5, atol=1e-6)


def test_compile_runs_the_pass_instruments(lenet_path, capsys):
    assert main(["compile", lenet_path, "--passes", "shape-infer,dce", "--print-after-all",
                 "--timing", "-O1"]) == 0
    captured = capsys.readouterr()
    both = captured.out + captured.err
    assert "IR after shape-infer (1/2)" in both and "IR after dce (2/2)" in both
    assert '"onnx/Gemm_' in both                      # node locs name the ONNX nodes
    assert "shape-infer,dce" in captured.out


def test_compile_reports_unsupported_models_cleanly(tmp_path, capsys):
    g = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "m",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["compile", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphc compile: error:") and "Hardmax" in err and "'hm'" in err
    assert "Traceback" not in err


def test_compile_usage_errors(lenet_path, capsys):
    assert main(["compile", lenet_path, "--passes", "no-such-pass"]) == 2
    assert main(["compile", "/no/such/model.onnx"]) == 1
    assert "does not exist" in capsys.readouterr().err
