"""Finite-difference checks of autodiff gradients, with the reference interpreter in float64.

`check_grads(graph, loss_name, wrt_names, inputs)` differentiates the graph with the autodiff
pass, then compares each gradient with central differences of the loss:
  - along a few random directions u:  <grad, u>  vs  (L(x + eps u) - L(x - eps u)) / (2 eps)
  - element by element for small tensors (at most `full_limit` elements).
Inputs being differentiated must be float64 (build test graphs in f64): perturbing an f32
array by eps ~ 1e-6 would be lost to rounding. It is a plain module, not a test file; tests
load it from its path with importlib (putting tests/ on sys.path would shadow the `ir` package
with tests/ir), see tests/passes/test_autodiff_rules.py.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ir import run
from passes.autodiff import autodiff


class GradcheckError(AssertionError):
    """An autodiff gradient disagrees with finite differences."""


def loss_value(graph, loss_name: str, inputs: Mapping[str, np.ndarray]) -> float:
    return float(run(graph, inputs, precision="f64")[loss_name])


def check_grads(graph, loss_name: str, wrt_names: Sequence[str], inputs: Mapping,
                eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7,
                directions: int = 3, full_limit: int = 24, seed: int = 0) -> dict:
    """Assert autodiff's gradients of `loss_name` match finite differences; return them
    ({input name: gradient array}). Raises GradcheckError naming the input and the worst
    element/direction when they do not."""
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    for name in wrt_names:
        if inputs[name].dtype != np.float64:
            raise GradcheckError(f"check_grads perturbs inputs in float64; %{name} is "
                                 f"{inputs[name].dtype} (build the test graph in f64)")
    grad_graph = autodiff(graph, loss_name, list(wrt_names))
    outs = run(grad_graph, inputs, precision="f64")
    base_loss = float(outs[loss_name])
    if not np.isfinite(base_loss):
        raise GradcheckError(f"the loss is not finite at the test point: {base_loss}")
    rng = np.random.default_rng(seed)
    grads = {}
    for name in wrt_names:
        grad = np.asarray(outs[f"grad_{name}"], np.float64)
        x0 = inputs[name]
        if grad.shape != x0.shape:
            raise GradcheckError(f"grad_{name} has shape {grad.shape}, expected {x0.shape}")
        grads[name] = grad

        def loss_at(x, name=name):
            return loss_value(graph, loss_name, {**inputs, name: x})

        for k in range(directions):
            u = rng.standard_normal(x0.shape)
            numeric = (loss_at(x0 + eps * u) - loss_at(x0 - eps * u)) / (2 * eps)
            analytic = float(np.sum(grad * u))
            scale = float(np.sum(np.abs(grad * u))) + abs(numeric)
            if not abs(numeric - analytic) <= atol + rtol * scale:
                raise GradcheckError(
                    f"d{loss_name}/d{name} along random direction {k}: autodiff gives "
                    f"{analytic!r}, finite differences {numeric!r} "
                    f"(abs error {abs(numeric - analytic):.3g}, eps={eps})")
        if x0.size <= full_limit:
            numeric = np.zeros(x0.shape)
            for idx in np.ndindex(*x0.shape):
                step = np.zeros(x0.shape)
                step[idx] = eps
                numeric[idx] = (loss_at(x0 + step) - loss_at(x0 - step)) / (2 * eps)
            err = np.abs(numeric - grad)
            bound = atol + rtol * np.maximum(np.abs(numeric), np.abs(grad))
            if not np.all(err <= bound):
                worst = np.unravel_index(np.argmax(err - bound), x0.shape)
                raise GradcheckError(
                    f"d{loss_name}/d{name}{list(worst)}: autodiff gives {grad[worst]!r}, "
                    f"finite differences {numeric[worst]!r}; {int(np.sum(err > bound))} of "
                    f"{x0.size} elements differ\nautodiff:\n{grad}\nnumeric:\n{numeric}")
    return grads
