"""Tracing: run a Python function on symbolic Tensors and record the ir.Graph it builds.

    @graphc.function(x=graphc.spec(("N", 784), "f32"))
    def mlp(x):
        w = graphc.param("w1", np.random.randn(784, 400).astype(np.float32))
        return graphc.relu(x @ w)

    mlp.graph            # the ir.Graph (traced once, on first use)
    mlp(batch)           # runs the graph with the reference interpreter on numpy arrays

or `graphc.trace(fn, graphc.spec(...), name=None, **kwspecs) -> ir.Graph`.

Inputs are described by specs (shape with symbol names such as "N", dtype, optional name);
parameters and state are graph inputs with an initializer, created by `graphc.param` while
tracing. Outputs are named after what the function returns: a Tensor -> "out", a tuple or
list -> "out0", "out1", ..., a dict -> its keys.
"""
from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ir import dtypes as _dt
from ir.errors import GraphcError
from ir.graph import Graph
from ir.interpreter import run
from ir.location import user_frame_loc
from ir.symbolic import as_shape
from ir.types import TensorType

from .tensor import Tensor, TraceError, building, current_trace, is_tracing


# -- input specs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """The type of one graph input: shape (ints and symbolic dims), dtype and optional name."""
    shape: tuple
    dtype: _dt.DType
    name: Optional[str] = None

    @property
    def type(self) -> TensorType:
        return TensorType(self.shape, self.dtype)

    def __repr__(self) -> str:
        return f"spec({self.type}{', name=' + repr(self.name) if self.name else ''})"


def spec(shape, dtype="f32", name: Optional[str] = None) -> Spec:
    """An input spec: `spec(("N", 784), "f32")`. Strings in the shape are symbolic dims shared
    by every input that names them; `name` overrides the input's name (default: the Python
    parameter's name)."""
    if name is not None and (not isinstance(name, str) or not name):
        raise TraceError(f"a spec name must be a non-empty string, found {name!r}")
    return Spec(as_shape(shape), _dt.dtype(dtype), name)


def as_spec(x) -> Spec:
    """A Spec from a Spec, an ir.TensorType or an example numpy array (its static shape)."""
    if isinstance(x, Spec):
        return x
    if isinstance(x, TensorType):
        return Spec(x.shape, x.dtype)
    if isinstance(x, np.ndarray):
        return Spec(as_shape(x.shape), _dt.dtype(x.dtype))
    raise TraceError(f"an input spec must be graphc.spec(shape, dtype), an ir.TensorType or an "
                     f"example numpy array, found {type(x).__name__} {x!r}")


# -- parameters --------------------------------------------------------------------------------
def param(name: str, value, role: str = "param", dtype=None) -> Tensor:
    """A trainable parameter (role "param") or non-trainable state (role "state") of the graph
    being traced: a graph input initialised with a copy of `value`. Names are unique per graph.
    numpy arrays keep their dtype; Python numbers and lists become f32 (int ones i64) unless
    `dtype` says otherwise."""
    state = current_trace()
    graph = state.graph
    here = user_frame_loc()
    if role not in ("param", "state"):
        raise TraceError(f"param {name!r}: role must be 'param' or 'state', found {role!r}", here)
    if not isinstance(name, str) or not name:
        raise TraceError(f"a param name must be a non-empty string, found {name!r}", here)
    if name in state.param_locs:
        first = state.param_locs[name]
        where = f" (first defined at {first.describe()})" if first else ""
        raise TraceError(f"graph {graph.name!r} already has a param named {name!r}{where}; "
                         "param names must be unique per graph", here)
    if any(v.name == name for v in graph.inputs):
        raise TraceError(f"param {name!r}: graph {graph.name!r} already has an input with that "
                         "name", here)
    arr = _param_array(name, value, dtype, here)
    try:
        v = graph.add_input(name, TensorType(arr.shape, _dt.dtype(arr.dtype)), role,
                            initializer=arr)
    except GraphcError as e:
        raise TraceError(f"param {name!r}: {e.message}", here) from None
    state.param_locs[name] = here
    return Tensor(v, graph)


def _param_array(name, value, dtype, loc) -> np.ndarray:
    if isinstance(value, Tensor):
        raise TraceError(f"param {name!r}: the initial value must be a numpy array or numbers, "
                         f"not the symbolic {value!r}", loc)
    arr = np.array(value, copy=True)
    if dtype is not None:
        to = _dt.dtype(dtype)
    elif isinstance(value, np.ndarray):
        to = _dt.dtype(arr.dtype)
    else:
        to = _dt.bool_ if arr.dtype.kind == "b" else _dt.i64 if arr.dtype.kind in "iu" \
            else _dt.f32
    if arr.dtype.kind not in "biuf":
        raise TraceError(f"param {name!r}: expected numbers, found {arr.dtype} data", loc)
    if to.is_int and arr.dtype.kind == "f" and not np.array_equal(arr, np.trunc(arr)):
        raise TraceError(f"param {name!r}: cannot store non-integer values as {to}", loc)
    arr = arr.astype(to.np_dtype)
    arr.setflags(write=False)     # the graph's own copy, a value like an attribute tensor
    return arr


# -- tracing -----------------------------------------------------------------------------------
@dataclass
class Traced:
    """A traced function: its graph, how to rebuild its return value from the outputs, and
    which Python parameter each data input belongs to."""
    graph: Graph
    structure: str              # "single", "tuple", "list" or "dict"
    input_params: list          # Python parameter name of each data input, in input order


def _graph_name(fn, name) -> str:
    if name is not None and not isinstance(name, str):
        raise TraceError(f"trace(name=...) is the graph's name and must be a string, found "
                         f"{type(name).__name__} (a spec for a parameter called 'name' must be "
                         "passed positionally)")
    name = name or getattr(fn, "__name__", None) or "main"
    return re.sub(r"\W", "_", name).strip("_") or "main"


def _bind_specs(fn, specs, kwspecs) -> list:
    """[(python parameter name or None, input name, Spec)] in the order inputs are created."""
    specs = [as_spec(s) for s in specs]
    kwspecs = {k: as_spec(s) for k, s in kwspecs.items()}
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = None
    if params is None:
        return ([(None, s.name or f"x{i}", s) for i, s in enumerate(specs)]
                + [(k, s.name or k, s) for k, s in kwspecs.items()])
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    fname = getattr(fn, "__name__", "the function")
    if len(specs) > len(positional):
        raise TraceError(f"{fname} takes {len(positional)} positional parameter(s), but "
                         f"{len(specs)} positional specs were given")
    bound = []
    for p, s in zip(positional, specs):
        if p.name in kwspecs:
            raise TraceError(f"{fname}: parameter {p.name!r} has both a positional and a "
                             "keyword spec")
        bound.append((None, s.name or p.name, s))
    names = {p.name for p in params}
    for k, s in kwspecs.items():
        if k not in names and not var_kw:
            raise TraceError(f"{fname} has no parameter {k!r} for the spec {s!r}; its "
                             f"parameters are {', '.join(sorted(names)) or 'none'}")
        bound.append((k, s.name or k, s))
    covered = {p.name for p in positional[:len(specs)]} | set(kwspecs)
    missing = [p.name for p in params if p.name not in covered and p.default is p.empty
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise TraceError(f"{fname}: no spec for parameter(s) {', '.join(missing)}; give one with "
                         f"graphc.spec(shape, dtype)")
    seen = set()
    for _, input_name, _ in bound:
        if input_name in seen:
            raise TraceError(f"{fname}: two inputs are named {input_name!r}")
        seen.add(input_name)
    return bound


def _collect_outputs(result, graph: Graph, fname: str):
    if isinstance(result, Tensor):
        structure, items = "single", [("out", result)]
    elif isinstance(result, (tuple, list)):
        structure = "tuple" if isinstance(result, tuple) else "list"
        items = [(f"out{i}", r) for i, r in enumerate(result)]
    elif isinstance(result, dict):
        structure, items = "dict", list(result.items())
    else:
        raise TraceError(f"{fname} must return a Tensor, a tuple/list of Tensors or a dict of "
                         f"Tensors, found {type(result).__name__} {result!r:.80}",
                         user_frame_loc())
    if not items:
        raise TraceError(f"{fname} returned no outputs ({result!r})", user_frame_loc())
    for key, t in items:
        if structure == "dict" and (not isinstance(key, str) or not key):
            raise TraceError(f"{fname} returned a dict with the key {key!r}; output names must "
                             "be non-empty strings", user_frame_loc())
        if not isinstance(t, Tensor):
            raise TraceError(f"{fname}: output {key!r} must be a Tensor, found "
                             f"{type(t).__name__} {t!r:.80}", user_frame_loc())
        if t.graph is not graph:
            raise TraceError(f"{fname}: output {key!r} is {t!r} from graph {t.graph.name!r}, not "
                             f"from the graph being traced ({graph.name!r}); a Tensor cannot "
                             "cross traces", user_frame_loc())
    return structure, items


def trace_function(fn: Callable, specs=(), kwspecs=None, name: Optional[str] = None) -> Traced:
    """Trace `fn` once; see `trace` (this also returns the output structure)."""
    graph = Graph(_graph_name(fn, name))
    bound = _bind_specs(fn, specs, kwspecs or {})
    with building(graph):
        args, kwargs, input_params = [], {}, []
        for pname, input_name, s in bound:
            t = Tensor(graph.add_input(input_name, s.type, "input"), graph)
            input_params.append(pname if pname is not None else input_name)
            if pname is None:
                args.append(t)
            else:
                kwargs[pname] = t
        result = fn(*args, **kwargs)
        structure, items = _collect_outputs(result, graph, getattr(fn, "__name__", "function"))
    for key, t in items:
        graph.add_output(t.value, key)
    return Traced(graph, structure, input_params)


def trace(fn: Callable, *specs, name: Optional[str] = None, **kwspecs) -> Graph:
    """Trace `fn` on symbolic inputs described by `specs` (positional, in parameter order)
    and `kwspecs` (by parameter name); returns the ir.Graph. The graph is named `name` or
    after the function."""
    return trace_function(fn, specs, kwspecs, name).graph


class Function:
    """A traced-on-demand function (made by `graphc.function`).

    `.graph` traces once, on first use. Calling it inside another trace inlines the Python
    function (its ops join the outer graph); calling it with numpy arrays runs `.graph` with
    the reference interpreter and returns arrays shaped like the function's return value."""

    def __init__(self, fn: Callable, specs=(), kwspecs=None):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.specs = tuple(specs)
        self.kwspecs = dict(kwspecs or {})
        self._traced: Optional[Traced] = None

    @property
    def traced(self) -> Traced:
        if self._traced is None:
            self._traced = trace_function(self.fn, self.specs, self.kwspecs)
        return self._traced

    @property
    def graph(self) -> Graph:
        return self.traced.graph

    @property
    def input_names(self) -> list:
        return [v.name for v in self.graph.inputs_with_role("input")]

    @property
    def output_names(self) -> list:
        return list(self.graph.output_names)

    def __call__(self, *args, **kwargs):
        if is_tracing() or any(isinstance(a, Tensor) for a in list(args) + list(kwargs.values())):
            return self.fn(*args, **kwargs)
        traced = self.traced
        data = traced.graph.inputs_with_role("input")
        if len(args) > len(data):
            raise TraceError(f"{self.fn.__name__} takes {len(data)} input(s), found "
                             f"{len(args)} positional arguments")
        feeds = {v.name: a for v, a in zip(data, args)}
        by_param = {p: v.name for p, v in zip(traced.input_params, data)}
        for k, a in kwargs.items():
            feeds[by_param.get(k, k)] = a
        results = run(traced.graph, feeds)
        values = [results[n] for n in traced.graph.output_names]
        if traced.structure == "single":
            return values[0]
        if traced.structure == "dict":
            return dict(zip(traced.graph.output_names, values))
        return tuple(values) if traced.structure == "tuple" else values

    def __repr__(self) -> str:
        specs = [str(s) for s in self.specs] + [f"{k}={s}" for k, s in self.kwspecs.items()]
        return f"<graphc.function {getattr(self.fn, '__name__', '?')}({', '.join(specs)})>"


def function(*specs, **kwspecs):
    """Decorator: `@graphc.function(x=graphc.spec(("N", 784)))` (or positional specs) turns a
    Python function into a `Function` whose `.graph` is its traced ir.Graph. Used bare
    (`@graphc.function`) for a function without inputs."""
    if len(specs) == 1 and not kwspecs and callable(specs[0]) \
            and not isinstance(specs[0], (Spec, TensorType, np.ndarray)):
        return Function(specs[0])

    def decorate(fn: Callable) -> Function:
        return Function(fn, specs, kwspecs)
    return decorate

