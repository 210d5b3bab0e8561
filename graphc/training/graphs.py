"""The graphs a Model compiles, traced from its net, loss and optimizer.

All share parameter names (the net's "net.dense1.w", the optimizer's "opt.m.net.dense1.w"),
so their executables can share one parameter store. N is the symbolic batch size.

    train_step  (fused: one native call does forward, backward and update)
        inputs   x f32[N,...], y (i64[N] or f32[N,C] or like pred), lr f32[], step i64[],
                 loss_scale f32[];  params (role param), optimizer slots (role state)
        outputs  loss f32[] (the unscaled batch mean), then "new.<name>" for every param and
                 slot, each aliased to its input (graph.aliases): written in place, not returned
    grads       (entry point 1 of the split step)
        inputs   x, y, loss_scale, step;  params
        outputs  loss f32[], grads f32[G]: every gradient flattened (C order) and concatenated
                 in `GradLayout` order: one contiguous buffer for an in-place allreduce
    apply       (entry point 2)
        inputs   grads f32[G], lr, step;  params, slots
        outputs  the updated params and slots, aliased like train_step
    predict     x [, step in training mode] -> pred
    evaluate    x, y -> loss, pred   (eval mode)

Gradients are d(loss_scale * loss)/d param (loss_scale seeds the backward pass: 1 for normal
training, 1/number of workers or similar for data parallel). `step` is the 1-based number of
the update being made: Adam's bias correction and Dropout's counter.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

import numpy as np

from ir import dtypes as _dt
from ir.errors import ShapeError
from ir.graph import Graph
from ir.types import TensorType

from .. import functional as F
from ..autograd import grad
from ..nn.module import Module, step_counter
from ..tensor import Tensor, building, wrap
from ..tracing import param as _trace_param

SCALAR_F32 = TensorType((), _dt.f32)
SCALAR_I64 = TensorType((), _dt.i64)


@dataclass(frozen=True)
class GradLayout:
    """Where each parameter's gradient lives in the flat gradient buffer."""
    entries: tuple        # (name, offset, shape) in buffer order
    size: int             # total number of elements

    @classmethod
    def of(cls, params: Mapping[str, tuple]) -> "GradLayout":
        entries, offset = [], 0
        for name, shape in params.items():
            entries.append((name, offset, tuple(shape)))
            offset += math.prod(shape)
        return cls(tuple(entries), offset)

    @property
    def names(self) -> list:
        return [name for name, _, _ in self.entries]

    def views(self, flat: np.ndarray) -> dict:
        """{name: view of `flat` shaped like the parameter} (no copies)."""
        return {name: flat[off:off + math.prod(shape)].reshape(shape)
                for name, off, shape in self.entries}

    def pack(self, grads: Mapping[str, np.ndarray]) -> np.ndarray:
        """A new flat f32 buffer from {name: gradient}; names and shapes must match."""
        missing = [n for n in self.names if n not in grads]
        extra = [n for n in grads if n not in set(self.names)]
        if missing or extra:
            raise ShapeError(f"gradients: expected exactly the parameters {self.names}; "
                             f"missing {missing}, unexpected {extra}")
        flat = np.empty(self.size, np.float32)
        for name, view in self.views(flat).items():
            g = np.asarray(grads[name])
            if g.shape != view.shape:
                raise ShapeError(f"gradient of {name}: expected shape {view.shape}, found "
                                 f"{g.shape}")
            view[...] = g
        return flat


@contextmanager
def net_mode(net: Module, training: bool) -> Iterator[None]:
    """Trace `net` in train or eval mode, restoring every module's own flag afterwards."""
    saved = [(m, m.training) for m in net.modules()]
    net.train(training)
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def _input(graph: Graph, name: str, type_: TensorType) -> Tensor:
    return wrap(graph.add_input(name, type_, "input"), graph)


def _trainable(graph: Graph, net: Module) -> dict:
    """{name: Tensor} of the graph's trainable params in the net's order (`net.params`):
    the order of the flat gradient buffer, whatever order the forward pass used them in."""
    found = {v.name: wrap(v, graph) for v in graph.inputs if v.role == "param"}
    order = [n for n in net.params if n in found] + [n for n in found if n not in net.params]
    return {n: found[n] for n in order}


def _add_updates(graph: Graph, updates) -> None:
    for name, t in updates:
        graph.add_output(t.value, f"new.{name}", updates=name)


def trace_predict(net: Module, x_type: TensorType, training: bool) -> Graph:
    g = Graph("predict_train" if training else "predict")
    with building(g), net_mode(net, training):
        x = _input(g, "x", x_type)
        step = _input(g, "step", SCALAR_I64) if training else None
        with step_counter(step):
            pred = net(x)
    g.add_output(pred.value, "pred")
    return g


def trace_evaluate(net: Module, loss, x_type: TensorType, y_type: TensorType) -> Graph:
    g = Graph("evaluate")
    with building(g), net_mode(net, False):
        x, y = _input(g, "x", x_type), _input(g, "y", y_type)
        pred = net(x)
        value = loss(pred, y)
    g.add_output(value.value, "loss")
    g.add_output(pred.value, "pred")
    return g


def trace_train_step(net: Module, loss, optimizer, x_type: TensorType, y_type: TensorType,
                     training: bool = True) -> Graph:
    g = Graph("train_step")
    with building(g), net_mode(net, training):
        x, y = _input(g, "x", x_type), _input(g, "y", y_type)
        lr, step = _input(g, "lr", SCALAR_F32), _input(g, "step", SCALAR_I64)
        scale = _input(g, "loss_scale", SCALAR_F32)
        with step_counter(step):
            value = loss(net(x), y)
        params = _trainable(g, net)
        grads = grad(value, list(params.values()), seed=scale)
        updates = optimizer.build_update(params, dict(zip(params, grads)), lr, step)
    g.add_output(value.value, "loss")
    _add_updates(g, updates)
    return g


def trace_grads(net: Module, loss, x_type: TensorType, y_type: TensorType,
                training: bool = True):
    """The gradients entry point; returns (graph, GradLayout)."""
    g = Graph("grads")
    with building(g), net_mode(net, training):
        x, y = _input(g, "x", x_type), _input(g, "y", y_type)
        scale, step = _input(g, "loss_scale", SCALAR_F32), _input(g, "step", SCALAR_I64)
        with step_counter(step):
            value = loss(net(x), y)
        params = _trainable(g, net)
        grads = grad(value, list(params.values()), seed=scale)
        flat = F.concat([F.reshape(t, (-1,)) for t in grads]) if grads else None
    g.add_output(value.value, "loss")
    if flat is not None:
        g.add_output(flat.value, "grads")
    layout = GradLayout.of({name: tuple(t.shape) for name, t in params.items()})
    return g, layout


def trace_apply(optimizer, values: Mapping[str, np.ndarray], layout: GradLayout) -> Graph:
    """The update entry point: flat gradients (in `layout` order) -> params and slots."""
    g = Graph("apply")
    with building(g):
        flat = _input(g, "grads", TensorType((layout.size,), _dt.f32))
        lr, step = _input(g, "lr", SCALAR_F32), _input(g, "step", SCALAR_I64)
        params, grads = {}, {}
        for name, off, shape in layout.entries:
            params[name] = _trace_param(name, values[name])
            piece = flat[off:off + math.prod(shape)]
            grads[name] = F.reshape(piece, shape)
        updates = optimizer.build_update(params, grads, lr, step)
    _add_updates(g, updates)
    return g
