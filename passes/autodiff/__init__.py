"""Reverse-mode automatic differentiation as a graph-to-graph transform.

    append_gradients(graph, loss, wrt, seed=None) -> [gradient Values]   (extends a graph)
    autodiff(graph, loss_output_name, wrt_input_names) -> new Graph       (the pass form)

VJP rules live in rules_*.py by op family; `VJP_RULES` and `NON_DIFFERENTIABLE` together cover
every registered op (a test asserts it). Importing the package registers the `autodiff` pass
for pipelines (pipeline.py).
"""
from . import pipeline as _pipeline  # noqa: F401  (registers the pass)
from .core import append_gradients, autodiff
from .table import NON_DIFFERENTIABLE, VJP_RULES

__all__ = ["append_gradients", "autodiff", "VJP_RULES", "NON_DIFFERENTIABLE"]
