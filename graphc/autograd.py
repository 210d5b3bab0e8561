"""`graphc.grad`: gradients while tracing.

    @graphc.function(x=graphc.spec(("N", 784)))
    def loss_and_grads(x):
        w = graphc.param("w", np.zeros((784, 10), np.float32))
        loss = graphc.mean(graphc.square(x @ w))
        gw, gx = graphc.grad(loss, wrt=[w, x])      # w.r.t. a parameter AND a graph input
        return {"loss": loss, "gw": gw, "gx": gx}

It appends the backward graph (passes.autodiff.append_gradients) to the graph being traced and
returns the gradients as Tensors of that graph, so they can be used in further ops (an
optimizer update, a gradient penalty, the generator step of a GAN that needs the gradient
with respect to an input). `wrt` may name graph inputs of any role or intermediate Tensors.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ir.errors import GradientError
from ir.location import user_frame_loc
from passes.autodiff import append_gradients

from .tensor import Tensor, TraceError, as_tensor, current_graph, wrap


def grad(loss: Tensor, wrt, seed: Optional[Tensor] = None):
    """d loss / d w for each w in `wrt` (a Tensor or a list/tuple of Tensors).

    `loss` must be a float scalar Tensor of the graph being traced, unless `seed` (the
    cotangent of the loss, a Tensor of the loss's type) is given; the result is then the
    vector-Jacobian product seed . d loss / d w. Returns a Tensor for a single `wrt`, else a
    list in `wrt` order. A w the loss does not depend on gets a zero gradient."""
    graph = current_graph()
    single = isinstance(wrt, Tensor)
    targets: Sequence = [wrt] if single else list(wrt) if isinstance(wrt, (list, tuple)) else None
    if targets is None:
        raise TraceError(f"grad: wrt must be a Tensor or a list of Tensors, found "
                         f"{type(wrt).__name__} {wrt!r:.80}", user_frame_loc())
    if not isinstance(loss, Tensor):
        raise TraceError(f"grad: the loss must be a Tensor of the graph being traced, found "
                         f"{type(loss).__name__} {loss!r:.80}", user_frame_loc())
    for i, t in enumerate([loss] + list(targets)):
        if not isinstance(t, Tensor):
            raise TraceError(f"grad: wrt[{i - 1}] must be a Tensor, found {type(t).__name__} "
                             f"{t!r:.80}", user_frame_loc())
        if t.graph is not graph:
            what = "the loss" if i == 0 else f"wrt[{i - 1}]"
            raise TraceError(f"grad: {what} {t!r} belongs to graph {t.graph.name!r}, not to the "
                             f"graph being traced ({graph.name!r})", user_frame_loc())
    if seed is not None:
        seed = as_tensor(seed, loss, "grad")
    try:
        grads = append_gradients(graph, loss.value, [t.value for t in targets],
                                 None if seed is None else seed.value)
    except GradientError as e:
        raise e.with_loc(user_frame_loc()) from None
    out = [wrap(g, graph) for g in grads]
    return out[0] if single else out
