"""Real models import, compile and match onnxruntime (rtol 1e-4, atol 1e-5).

The networks (an MLP, LeNet-5, a CNN with BatchNorm, a small ResNet block, an LSTM
classifier) are exported from PyTorch when torch is installed, and always also built with
onnx.helper. Each is run by onnxruntime and by graphc's native code at two batch sizes (the
batch axis is symbolic: one compilation serves both).
"""
import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import graphc  # noqa: E402
import graphc.onnx as gonnx  # noqa: E402
import onnx_helper_models  # noqa: E402
import onnx_torch_models  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
BATCHES = (1, 5)
# an op each model must contain, so the test exercises what it claims to
KEY_OPS = {"mlp": "Gemm", "lenet5": "AveragePool", "bn_cnn": "BatchNormalization",
           "resnet_block": "Add", "lstm": "LSTM"}


def _check(name, model, shape, opt_level=2):
    assert KEY_OPS[name] in {n.op_type for n in model.graph.node}
    graph = gonnx.import_model(model)
    assert not isinstance(graph.inputs[0].type.shape[0], int), "the batch dim stays symbolic"
    exe = graphc.compile(graph, opt_level=opt_level)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    errors = []
    for n in BATCHES:
        x = np.random.default_rng(n).standard_normal((n,) + tuple(shape)).astype(np.float32)
        want = session.run(None, {"x": x})[0]
        got = exe(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        errors.append(float(np.abs(got - want).max()))
    return max(errors)


@pytest.mark.parametrize("name", sorted(onnx_helper_models.HELPER_MODELS))
def test_helper_built_model_matches_onnxruntime(name):
    model, shape = onnx_helper_models.HELPER_MODELS[name]()
    _check(name, model, shape, opt_level=1 if name == "lstm" else 2)


@pytest.mark.skipif(not onnx_torch_models.torch_available(), reason="torch is not installed")
@pytest.mark.parametrize("name", onnx_torch_models.TORCH_MODELS)
def test_pytorch_exported_model_matches_onnxruntime(name):
    model, shape = onnx_torch_models.export_torch_model(name)
    _check(name, model, shape, opt_level=1 if name == "lstm" else 2)
