"""The MLP training step of examples/mnist.py as a graph (forward, backward, Adam update),
traced the way graphc.Model traces it; the graph the pass measurements are about."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from ir import TensorType  # noqa: E402


def mlp_model(seed: int = 0):
    """examples/mnist.py's Model (784-400-100-10, ReLU, softmax cross entropy, Adam), built."""
    from mnist import build_model
    model = build_model(1e-3, seed)
    model.build((784,))
    return model


def mlp_train_step(model=None):
    """The traced (unoptimised) train_step graph: inputs x f32[N,784], y i64[N], lr, step,
    loss_scale; params and Adam slots updated in place."""
    from graphc.training import graphs
    model = model or mlp_model()
    return graphs.trace_train_step(model.net, model.loss, model.optimizer,
                                   TensorType(("N", 784), "f32"), TensorType(("N",), "i64"),
                                   True)
