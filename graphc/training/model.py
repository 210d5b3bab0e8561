"""`graphc.Model`: a net, a loss and an optimizer, compiled into native training steps.

    model = graphc.Model(net=Net([Dense(400), ReLU(), Dense(10)]),
                         loss=SoftmaxCrossEntropy(), optimizer=Adam(lr=1e-3))
    loss = model.train_step(x_batch, y_batch)       # ONE native call: forward+backward+update
    probs = model.predict(x_test)                   # any batch size (symbolic N)
    history = model.fit(x, y, epochs=5, batch_size=128, validation_data=(xv, yv))
    model.save("mnist.npz"); model.load("mnist.npz")

    # tinynn's three-call style (the two entry points of the split step):
    pred = model.forward(x)                         # predict graph, remembers x
    loss, grads = model.backward(pred, y)           # grads: name -> view into ONE flat buffer
    model.apply_grads(grads)                        # apply graph

How it works (graphs.py has the graph signatures): the net is built on the first batch (its
input shape fixes the feature dims; the batch dim stays symbolic). All parameters and
optimizer slots then live in ONE runtime parameter store shared by every executable the model
compiles (train step, predict, evaluate, grads, apply), and the net's and optimizer's numpy
arrays are rebound to that store's buffers, so `net.params`, `optimizer.state`, `predict` and
`save` always see the latest update. Executables are compiled lazily and cached per
(graph kind, train/eval mode, label form); the learning rate, step number and loss scale are
runtime scalars, so schedulers and data-parallel loss scaling never recompile.

Checks before native code: x's feature shape, label dtype/shape/range (DataError naming the
bad label and its index); after each step a NaN/inf loss raises TrainingError naming the step
(and the epoch and batch inside `fit`).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Optional

import numpy as np

from ir import dtypes as _dt
from ir.errors import DataError, TrainingError
from ir.graph import Value
from ir.symbolic import format_shape, sym
from ir.types import TensorType
from runtime import Executable, compile_graph
from runtime.params import ParamStore

from .. import losses as _losses
from .. import optim as _optim
from ..compiler import optimize_graph
from ..nn.module import Module
from . import graphs
from .checkpoint import load_arrays, save_arrays, split_loaded
from .loop import evaluate_model, fit_model

BATCH = sym("N")


class Gradients(Mapping):
    """The gradients of one `backward`: {param name: array} whose arrays are views into ONE
    contiguous float32 buffer `flat` (layout: `layout`), e.g. for an in-place allreduce."""

    def __init__(self, flat: np.ndarray, layout: graphs.GradLayout, loss: float):
        self.flat, self.layout, self.loss = flat, layout, loss
        self._views = layout.views(flat)

    def __getitem__(self, name):
        return self._views[name]

    def __iter__(self):
        return iter(self._views)

    def __len__(self):
        return len(self._views)

    def __repr__(self):
        return f"<Gradients of {len(self)} params, {self.flat.size} values>"


class _Entry:
    """A compiled executable plus the order of its data inputs (called positionally)."""

    def __init__(self, exe: Executable):
        self.exe, self.names = exe, exe.input_names

    def __call__(self, feeds: dict):
        return self.exe(*[feeds[n] for n in self.names])


class Model:
    def __init__(self, net: Module, loss, optimizer, name: Optional[str] = None):
        if not isinstance(net, Module):
            raise TrainingError(f"Model: net must be a graphc.nn Module (e.g. Net([...])), "
                                f"found {type(net).__name__}")
        self.net = net
        self.loss = _losses.get(loss)
        self.optimizer = _optim.get(optimizer)
        self.name = name or "model"
        self.step_count = 0          # updates made so far; the next update is step_count + 1
        self.compilations = 0        # graphs this model compiled (each lr change costs none)
        self.training = True
        self._x_type: Optional[TensorType] = None
        self._pred_type: Optional[TensorType] = None
        self._store: Optional[ParamStore] = None
        self._layout: Optional[graphs.GradLayout] = None
        self._entries: dict = {}
        self._pending: Optional[tuple] = None     # (arrays, optimizer_state) loaded pre-build
        self._last_x = None
        self._lr = np.zeros((), np.float32)
        self._step = np.zeros((), np.int64)
        self._scale = np.ones((), np.float32)

    # -- mode ------------------------------------------------------------------------------------
    def train(self) -> "Model":
        """Training mode: Dropout active in forward/predict/train_step (the default)."""
        self.training = True
        return self

    def eval(self) -> "Model":
        """Eval mode: Dropout is the identity everywhere (evaluate() always uses it)."""
        self.training = False
        return self

    def set_phase(self, phase: str) -> None:
        """tinynn spelling: "TRAIN" or "TEST"."""
        if str(phase).upper() not in ("TRAIN", "TEST"):
            raise TrainingError(f"set_phase: expected 'TRAIN' or 'TEST', found {phase!r}")
        self.training = str(phase).upper() == "TRAIN"

    def get_phase(self) -> str:
        return "TRAIN" if self.training else "TEST"

    # -- building --------------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self._store is not None

    def build(self, input_shape) -> "Model":
        """Create the parameters for inputs of shape (N,) + input_shape (done automatically by
        the first batch)."""
        if self.built:
            return self
        feat = tuple(int(d) for d in input_shape)
        self._x_type = TensorType((BATCH,) + feat, _dt.f32)
        graph = graphs.trace_predict(self.net, self._x_type, training=False)
        self._pred_type = graph.outputs[0].type
        if not self._pred_type.shape or self._pred_type.shape[0] != BATCH:
            raise TrainingError(f"Model: the net must keep the batch axis first; for inputs "
                                f"{self._x_type} it returned {self._pred_type}")
        params = self.net.params
        self.optimizer.init_state(params)
        values = {**self.net.named_values(), **self.optimizer.state}
        specs = [Value(name, TensorType(arr.shape, _dt.dtype(arr.dtype)), role="param")
                 for name, arr in values.items()]
        self._store = ParamStore(specs, values)
        self._layout = graphs.GradLayout.of({n: a.shape for n, a in params.items()})
        self.net.bind_values(self._store.views)
        self.optimizer.bind_state(self._store.views)
        # the predict graph is compiled when first used (_predict_entry): a model that
        # trains first does not pay for it before its first step
        if self._pending is not None:
            arrays, with_state = self._pending
            self._pending = None
            self._restore(arrays, with_state)
        return self

    @property
    def input_shape(self) -> Optional[tuple]:
        return None if self._x_type is None else tuple(self._x_type.shape[1:])

    def _compile(self, graph) -> _Entry:
        for v in graph.inputs:
            if v.role != "input" and v.name not in self._store.views:
                raise TrainingError(f"graph {graph.name!r} has a parameter {v.name!r} that did "
                                    "not exist when the model was built; a net must create "
                                    "the same parameters whatever graph it is traced into")
        g = optimize_graph(graph)
        exe = Executable(compile_graph(g), g, params=self._store)
        self.compilations += 1
        return _Entry(exe)

    def _entry(self, key: tuple, trace) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._compile(trace())
        return entry

    def executable(self, kind: str, y=None) -> Executable:
        """The compiled Executable behind `kind` ("train_step", "grads", "apply", "predict",
        "evaluate") for the current mode (and the label form of `y`), e.g. to study its
        LLVM IR or plan. The model must be built."""
        self._require_built(kind)
        if kind in ("train_step", "grads", "evaluate"):
            if y is None:
                raise TrainingError(f"executable({kind!r}) needs example labels y= (the label "
                                    "form decides the graph)")
            y = self._prepare_y(y, None)
        runners = {"train_step": lambda: self._train_entry(y),
                   "grads": lambda: self._grads_entry(y), "apply": self._apply_entry,
                   "predict": self._predict_entry, "evaluate": lambda: self._evaluate_entry(y)}
        if kind not in runners:
            raise TrainingError(f"unknown executable kind {kind!r}; expected one of "
                                f"{', '.join(runners)}")
        return runners[kind]().exe

    def _y_type(self, y: np.ndarray) -> TensorType:
        return self.loss.target_type(y, self._pred_type)

    @staticmethod
    def _label_form(y: np.ndarray) -> tuple:
        """The cache key part that decides the label input's type (cheap: runs per step)."""
        return (y.dtype.char, y.shape[1:])

    def _train_entry(self, y) -> _Entry:
        return self._entry(("train_step", self.training, self._label_form(y)),
                           lambda: graphs.trace_train_step(self.net, self.loss, self.optimizer,
                                                           self._x_type, self._y_type(y),
                                                           self.training))

    def _grads_entry(self, y) -> _Entry:
        def trace():
            graph, layout = graphs.trace_grads(self.net, self.loss, self._x_type,
                                               self._y_type(y), self.training)
            if layout != self._layout:
                raise TrainingError(f"the grads graph's parameters {layout.names} differ from "
                                    f"the model's {self._layout.names}")
            return graph
        return self._entry(("grads", self.training, self._label_form(y)), trace)

    def _apply_entry(self) -> _Entry:
        return self._entry(("apply",), lambda: graphs.trace_apply(
            self.optimizer, self.net.params, self._layout))

    def _predict_entry(self) -> _Entry:
        return self._entry(("predict", self.training),
                           lambda: graphs.trace_predict(self.net, self._x_type, self.training))

    def _evaluate_entry(self, y) -> _Entry:
        return self._entry(("evaluate", self._label_form(y)), lambda: graphs.trace_evaluate(
            self.net, self.loss, self._x_type, self._y_type(y)))

    # -- checks at the Python boundary -----------------------------------------------------------
    def _prepare_x(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.float32:
            if x.dtype.kind not in "biuf":
                raise DataError(f"x: expected numbers, found dtype {x.dtype}")
            x = x.astype(np.float32)
        if x.ndim < 1 or len(x) == 0:
            raise DataError(f"x: expected a non-empty batch with the examples along axis 0, "
                            f"found shape {x.shape}")
        if not self.built:
            self.build(x.shape[1:])
        elif x.shape[1:] != self.input_shape:
            raise DataError(f"x: expected shape {format_shape(self._x_type.shape)} (the model "
                            f"was built for inputs of shape {self.input_shape}), found "
                            f"{x.shape}")
        return x

    def _prepare_y(self, y, n: Optional[int]) -> np.ndarray:
        y = self.loss.prepare_targets(y, self._pred_type)
        if n is not None and len(y) != n:
            raise DataError(f"x has {n} examples but y has {len(y)} (shape {y.shape})")
        return y

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise TrainingError(f"{what}: the model has no parameters yet; call "
                                "model.build(input_shape) or train on a batch first")

    def _check_loss(self, loss: float, step: int, where: str = "") -> float:
        if not math.isfinite(loss):
            raise TrainingError(f"loss became {loss} at step {step}{where}; the parameters now "
                                "hold that step's result (lower the learning rate, check the "
                                "data for NaN/inf, or reload a checkpoint)")
        return loss

    # -- fused training ----------------------------------------------------------------------------
    def train_step(self, x, y, loss_scale: float = 1.0) -> float:
        """One update on a batch: forward, backward and optimizer update in ONE native call;
        parameters and optimizer state change in place. Returns the batch's mean loss."""
        return self._check_loss(self._run_step(x, y, loss_scale), self.step_count)

    def _run_step(self, x, y, loss_scale: float = 1.0) -> float:
        x = self._prepare_x(x)
        y = self._prepare_y(y, len(x))
        entry = self._train_entry(y)
        self._lr[...] = self.optimizer.lr
        self._step[...] = self.step_count + 1
        self._scale[...] = loss_scale
        loss = entry({"x": x, "y": y, "lr": self._lr, "step": self._step,
                      "loss_scale": self._scale})
        self.step_count += 1
        return float(loss)

    # -- inference -------------------------------------------------------------------------------
    def predict(self, x, batch_size: Optional[int] = 1024) -> np.ndarray:
        """The net's output for every example of x (in chunks of batch_size; None: one call),
        in the current mode."""
        x = self._prepare_x(x)
        entry = self._predict_entry()
        self._step[...] = self.step_count + 1
        feeds = {"step": self._step}
        if batch_size is None or len(x) <= batch_size:
            feeds["x"] = x
            return entry(feeds)
        outs = []
        for start in range(0, len(x), int(batch_size)):
            feeds["x"] = x[start:start + batch_size]
            outs.append(entry(feeds))
        return np.concatenate(outs)

    def evaluate(self, x, y, batch_size: int = 1024, metrics=None) -> dict:
        """{"loss": mean loss, metric name: value, ...} over the whole data set, in eval mode.
        metrics: names from graphc.metrics or callables (preds, targets); default: the loss's
        (accuracy for softmax cross entropy)."""
        return evaluate_model(self, x, y, batch_size, metrics)

    def fit(self, x, y, epochs: int = 1, batch_size: int = 32, validation_data=None,
            shuffle: bool = True, seed=None, verbose: int = 1, metrics=None,
            scheduler=None) -> dict:
        """Train for `epochs` passes over (x, y); returns the history dict (per epoch: "loss",
        "time", "lr" and "val_loss"/"val_<metric>" with validation_data), in train mode
        whatever the current mode (restored afterwards). verbose: 0 silent,
        1 a tqdm progress bar when tqdm is installed (else a line per epoch), 2 a line per
        epoch. `scheduler.step()` runs after every epoch."""
        return fit_model(self, x, y, epochs, batch_size, validation_data, shuffle, seed,
                         verbose, metrics, scheduler)

    # -- tinynn's three calls (the split step) -----------------------------------------------------
    def forward(self, x) -> np.ndarray:
        """The net's output on x in the current mode; remembers x for `backward`."""
        x = self._prepare_x(x)
        self._step[...] = self.step_count + 1
        pred = self._predict_entry()({"x": x, "step": self._step})
        self._last_x = x
        return pred

    def backward(self, pred, y, loss_scale: float = 1.0):
        """(loss, Gradients) for the batch of the last `forward`: the grads entry point runs
        on the remembered x (pred is only checked against it). Gradients are of
        loss_scale * loss."""
        x = self._last_x
        if x is None:
            raise TrainingError("backward() needs a batch: call forward(x) first (the "
                                "gradients are computed from the inputs of the last forward)")
        want = (len(x),) + tuple(self._pred_type.shape[1:])
        if np.shape(pred) != want:
            raise TrainingError(f"backward(): pred has shape {np.shape(pred)}, but the last "
                                f"forward() returned {want}")
        y = self._prepare_y(y, len(x))
        entry = self._grads_entry(y)
        self._step[...] = self.step_count + 1
        self._scale[...] = loss_scale
        out = entry({"x": x, "y": y, "loss_scale": self._scale, "step": self._step})
        loss, flat = (out if isinstance(out, tuple) else (out, np.zeros(0, np.float32)))
        loss = self._check_loss(float(loss), self.step_count + 1)
        return loss, Gradients(flat, self._layout, loss)

    def apply_grads(self, grads) -> None:
        """Update parameters and optimizer state from gradients: a Gradients, a dict
        {name: array} or a flat float32 buffer in `grad_layout` order."""
        self._require_built("apply_grads")
        entry = self._apply_entry()
        layout = self._layout
        if isinstance(grads, Gradients):
            flat = grads.flat
        elif isinstance(grads, Mapping):
            flat = layout.pack(grads)
        else:
            flat = np.asarray(grads, dtype=np.float32)
            if flat.shape != (layout.size,):
                raise DataError(f"apply_grads: a flat gradient buffer must have shape "
                                f"({layout.size},), found {flat.shape}")
        self._lr[...] = self.optimizer.lr
        self._step[...] = self.step_count + 1
        entry({"grads": flat, "lr": self._lr, "step": self._step})
        self.step_count += 1

    @property
    def grad_layout(self) -> graphs.GradLayout:
        """(name, offset, shape) of each gradient in the flat buffer of `backward`."""
        self._require_built("grad_layout")
        return self._layout

    # -- parameters and checkpoints ----------------------------------------------------------------
    @property
    def params(self) -> dict:
        """Live views of the trainable parameters by name."""
        return self.net.params

    def export(self, directory, what: str = "predict", y=None, llvm_ir: bool = False) -> dict:
        """Write the bundle of one compiled graph of this model (`what`: "predict", or
        "train_step" with example labels `y=`; see graphc.export) holding the current
        parameters (and optimizer state); `graphc.load(directory)` runs it."""
        from runtime.bundle import write_bundle
        return write_bundle(self.executable(what, y=y), directory, llvm_ir=llvm_ir)

    def save(self, path) -> None:
        """Write parameters, optimizer state and the step count to an .npz file (no pickle)."""
        self._require_built("save")
        save_arrays(path, dict(self._store.views), self.step_count)

    def load(self, path, optimizer_state: bool = True) -> None:
        """Read a file written by `save`. The file's parameters must match the model's by
        name and shape (the error lists every difference). Optimizer state and the step count
        are restored when the file holds this optimizer's state (optimizer_state=False: only
        the parameters). Before the model is built, the values are applied when it is."""
        arrays = load_arrays(path)
        if not self.built:
            self._pending = (arrays, optimizer_state)
            return
        self._restore(arrays, optimizer_state)

    def _restore(self, arrays: dict, with_state: bool) -> None:
        values, state, step = split_loaded(arrays, self.net.named_values(),
                                           self.optimizer.state, with_state)
        self._store.set({**values, **state}, source="load")
        if step is not None:
            self.step_count = step

    def __repr__(self) -> str:
        shape = "not built" if not self.built else f"input {format_shape(self._x_type.shape)}"
        return (f"<Model {self.name!r}: {type(self.loss).__name__}, "
                f"{type(self.optimizer).__name__}(lr={self.optimizer.lr}), {shape}, "
                f"{self.step_count} steps>")
