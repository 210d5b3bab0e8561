"""`Module`: the base of every layer and network.

A Module owns the VALUES of its parameters (numpy arrays, created lazily on first use so that
input sizes can be inferred, tinynn-style) and knows how to append its computation to the
graph being traced. Each time a graph is traced, each parameter becomes a graph input of role
"param" named by the module path ("net.dense1.w") with its current value as initializer, so
several graphs traced from one module (train step, predict, grads-only) share one set of
names; `graphc.Model` then points all their executables at one runtime buffer per name and
rebinds the module's arrays to those buffers (`bind_values`), so `module.values()` is always
the live state.

    class Affine(Module):
        def __init__(self, n):
            super().__init__()
            self.n = n
        def forward(self, x):
            w = self.param("w", (x.shape[-1], self.n), graphc.init.XavierUniform())
            return x @ w

Child modules assigned as attributes (or given to `Net`) are registered under the attribute
name; calling a module enters a `graphc.scope` of its name, so nodes get layer paths like
"net/dense1/matmul". `train()` / `eval()` set `training` on the whole tree; layers such as
Dropout read it while tracing.

The step counter: a training step feeds its step number to the graph; `step_counter(t)`
makes a scalar int Tensor visible to the layers traced inside it (Dropout uses it so each
step draws a fresh mask without recompiling).
"""
from __future__ import annotations

import contextvars
import re
import weakref
from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np

from ir import dtypes as _dt
from ir.errors import GraphcError, ShapeError
from ir.location import user_frame_loc
from ir.symbolic import format_shape

from .. import init as _init
from ..scope import scope
from ..tensor import Tensor, TraceError, current_graph, wrap
from ..tracing import param as _trace_param

_NAME_RE = re.compile(r"[A-Za-z0-9_]+\Z")

# which module created each param input of a graph: graph -> {input name: module}
_OWNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

_STEP: contextvars.ContextVar = contextvars.ContextVar("graphc_nn_step", default=None)


@contextmanager
def step_counter(step: Optional[Tensor]) -> Iterator[None]:
    """Make `step` (a scalar int Tensor, e.g. the training step number) the counter that
    random layers traced inside this block use."""
    token = _STEP.set(step)
    try:
        yield
    finally:
        _STEP.reset(token)


def current_step() -> Optional[Tensor]:
    """The step-counter Tensor set by `step_counter`, or None."""
    return _STEP.get()


def check_name(name, what: str = "a module name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise GraphcError(f"{what} must be letters, digits and underscores (it becomes part of "
                          f"value names like 'net.dense1.w'), found {name!r}")
    return name


class Module:
    """Base class: parameters by name, child modules, train/eval mode, tracing scope."""

    def __init__(self, name: Optional[str] = None):
        object.__setattr__(self, "_children", {})
        self.name = None if name is None else check_name(name)
        self.training = True
        self._parent = None
        self._values: dict = {}        # local param name -> np.ndarray
        self._roles: dict = {}         # local param name -> "param" | "state"
        self._rng = None               # np.random.Generator shared by a seeded tree

    # -- the tree ------------------------------------------------------------------------------
    def __setattr__(self, key, value):
        if isinstance(value, Module) and not key.startswith("_"):
            self.add_module(key, value)
        object.__setattr__(self, key, value)

    def add_module(self, name: str, child: "Module") -> "Module":
        """Register `child` under `name` (its name unless it already has one)."""
        if not isinstance(child, Module):
            raise GraphcError(f"add_module({name!r}): expected a Module, found "
                              f"{type(child).__name__}")
        if child._parent is not None and child._parent is not self:
            raise GraphcError(f"module {child.path!r} already belongs to {child._parent.path!r}; "
                              "a module instance can have one parent (reuse it by calling it "
                              "twice instead)")
        if child.name is None:
            child.name = check_name(name)
        if child.name in self._children and self._children[child.name] is not child:
            raise GraphcError(f"{self.path!r} already has a child named {child.name!r}")
        child._parent = self
        self._children[child.name] = child
        return child

    def children(self) -> list:
        return list(self._children.values())

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, depth first in registration order."""
        yield self
        for c in self._children.values():
            yield from c.modules()

    @property
    def path(self) -> str:
        """Dotted path from the root ("net.dense1"); the root's own name comes first."""
        own = self.name or default_name(self)
        return own if self._parent is None else f"{self._parent.path}.{own}"

    def _init_rng(self):
        """The Generator of the nearest seeded module (self or an ancestor), or None."""
        m = self
        while m is not None and m._rng is None:
            m = m._parent
        return None if m is None else m._rng

    def set_seed(self, seed) -> "Module":
        """Draw every parameter of this subtree initialised from now on from one Generator
        seeded with `seed` (an int or a Generator); without one, initializers use numpy's
        global RNG (tinynn's habit: np.random.seed makes runs reproducible)."""
        self._rng = _init.make_rng(seed)
        return self

    # -- mode ----------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # -- parameters ----------------------------------------------------------------------------
    def param(self, name: str, shape, init, role: str = "param", dtype="f32") -> Tensor:
        """The Tensor of parameter `name` in the graph being traced, creating its value on
        first use with `init(shape, rng)` (an initializer, its name, or an array). A later
        use with another shape is a ShapeError (the layer was built for other inputs)."""
        check_name(name, "a parameter name")
        shape = tuple(shape)
        value = self._values.get(name)
        if value is None:
            value = self._initial_value(name, shape, init, dtype)
            self._values[name] = value
            self._roles[name] = role
        elif value.shape != shape:
            raise ShapeError(f"{self.path}: parameter {name!r} has shape {value.shape} but this "
                             f"input needs {format_shape(shape)}; the layer was built for "
                             "inputs of another size", user_frame_loc())
        return self._trace_value(name)

    def _initial_value(self, name, shape, init, dtype) -> np.ndarray:
        for d in shape:
            if not isinstance(d, int):
                raise ShapeError(f"{self.path}: parameter {name!r} needs a static shape, found "
                                 f"{format_shape(shape)} (a symbolic dim reached a weight "
                                 "shape; the feature dims of the input must be static)",
                                 user_frame_loc())
        np_dtype = _dt.dtype(dtype).np_dtype
        if isinstance(init, np.ndarray):
            if init.shape != shape:
                raise ShapeError(f"{self.path}: the value given for {name!r} has shape "
                                 f"{init.shape}, expected {shape}", user_frame_loc())
            return np.array(init, dtype=np_dtype)
        return np.asarray(_init.get(init)(shape, rng=self._init_rng()), dtype=np_dtype)

    def _trace_value(self, name: str) -> Tensor:
        full = f"{self.path}.{name}"
        graph = current_graph()
        owners = _OWNERS.setdefault(graph, {})
        owner = owners.get(full)
        if owner is not None:
            if owner is not self:
                raise TraceError(f"two modules are both named {full.rsplit('.', 1)[0]!r} in "
                                 f"graph {graph.name!r}; give one a different name= (e.g. "
                                 "Net([...], name='encoder'))", user_frame_loc())
            return wrap(graph.input(full), graph)
        t = _trace_param(full, self._values[name], role=self._roles[name])
        owners[full] = self
        return t

    def named_values(self, role: Optional[str] = None) -> dict:
        """{full name: array} of every parameter created so far in the tree (optionally only
        one role: "param" trainable, "state" not), in creation order per module."""
        out = {}
        for m in self.modules():
            for k, v in m._values.items():
                if role is None or m._roles[k] == role:
                    out[f"{m.path}.{k}"] = v
        return out

    @property
    def params(self) -> dict:
        """Trainable parameters by full name (tinynn's `net.params`, as a dict)."""
        return self.named_values("param")

    def bind_values(self, arrays) -> None:
        """Make the tree's parameters BE the given arrays (by full name: same shape and dtype),
        e.g. runtime parameter buffers, so both always show the same values."""
        for m in self.modules():
            for k, old in list(m._values.items()):
                new = arrays.get(f"{m.path}.{k}")
                if new is None:
                    continue
                if new.shape != old.shape or new.dtype != old.dtype:
                    raise ShapeError(f"bind_values: {m.path}.{k} is {old.dtype}{list(old.shape)}"
                                     f", found {new.dtype}{list(new.shape)}")
                m._values[k] = new

    def set_values(self, arrays) -> None:
        """Copy new values into existing parameters (by full name; shapes must match)."""
        current = self.named_values()
        for name, arr in arrays.items():
            if name not in current:
                raise GraphcError(f"set_values: no parameter named {name!r}; parameters are "
                                  f"{', '.join(current) or 'none (not built yet)'}")
            arr = np.asarray(arr)
            if arr.shape != current[name].shape:
                raise ShapeError(f"set_values: {name} has shape {current[name].shape}, found "
                                 f"{arr.shape}")
            np.copyto(current[name], arr, casting="same_kind")

    # -- tracing -------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if self.name is None and self._parent is None:
            self.name = default_name(self)
        with scope(self.name or default_name(self)):
            return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()})"
        if not self._children:
            return head
        lines = [f"  ({k}): " + repr(c).replace("\n", "\n  ") for k, c in self._children.items()]
        return head[:-1] + ("\n" if lines else "") + "\n".join(lines) + "\n)"


def default_name(m: Module) -> str:
    return type(m).__name__.lower()
