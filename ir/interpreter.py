"""The reference interpreter: runs any graph with numpy, in float32 or float64.

It is the oracle for codegen, constant folding and every pass test, so it is deliberately
plain: each node calls its op's numpy reference, with symbolic dims in attributes replaced by
the values bound from the input shapes. In float64 mode every f32 tensor (inputs, constants,
dtype attributes) is computed as f64, which gives a high-precision answer to compare against.
"""
from __future__ import annotations

import contextvars
from typing import Mapping, Optional

import numpy as np

from . import dtypes as dt
from .constraints import check_dim_constraints, dim_constraints
from .errors import ArgumentError, GraphcError, InterpreterError
from .graph import Graph
from .opdef import get_op
from .symbolic import SymDim, evaluate, format_shape


# The symbol values of the graph being run: a nested graph (a fused node's body) may use a
# symbol in an attribute (broadcast to [N, 4]) that none of its own inputs binds.
_ENV: contextvars.ContextVar = contextvars.ContextVar("graphc_interpreter_env", default={})


def current_env() -> dict:
    """Symbol values of the graph the interpreter is running (empty outside `run`)."""
    return dict(_ENV.get())


def bind_symbols(graph: Graph, arrays: Mapping[str, np.ndarray], env: Optional[dict] = None) -> dict:
    """Bind symbolic dims from the shapes of `arrays` (by input name); check every dim.

    Bare symbols (`N`) are bound by the first input that uses them; every other dim, static or
    an expression, is then checked. Raises ArgumentError naming the input, the expected type
    and the shape found."""
    env = dict(env or {})
    for v in graph.inputs:
        arr = arrays[v.name]
        if arr.ndim != v.type.rank:
            raise ArgumentError(f"input %{v.name}: expected rank {v.type.rank} ({v.type}), "
                                f"found an array of shape {arr.shape}")
        for d, n in zip(v.type.shape, arr.shape):
            if isinstance(d, SymDim) and len(d.terms) == 1 and d.terms[0][1] == 1 \
                    and len(d.terms[0][0]) == 1:
                name = d.terms[0][0][0]
                env.setdefault(name, n)
    for v in graph.inputs:
        arr = arrays[v.name]
        for axis, (d, n) in enumerate(zip(v.type.shape, arr.shape)):
            want = evaluate(d, env)
            if want != n:
                binding = ", ".join(f"{k}={val}" for k, val in sorted(env.items()))
                raise ArgumentError(f"input %{v.name}: expected shape {format_shape(v.type.shape)}"
                                    f"{' with ' + binding if binding else ''}, found {arr.shape} "
                                    f"(axis {axis} should be {want})")
    return env


def _compute_dtype(d: dt.DType, precision: dt.DType) -> dt.DType:
    return precision if (d is dt.f32 and precision is dt.f64) else d


def resolve_attrs(opdef, attrs: dict, env: Mapping[str, int], precision: dt.DType) -> dict:
    """Attrs with symbolic dims evaluated and (in f64 mode) f32 dtype attrs promoted."""
    out = {}
    for name, value in attrs.items():
        kind = opdef.attrs[name].kind
        if kind == "dims":
            value = tuple(evaluate(d, env) for d in value)
        elif kind == "dim":
            value = evaluate(value, env)
        elif kind == "dtype":
            value = _compute_dtype(value, precision)
        elif kind == "tensor" and value.dtype == np.float32 and precision is dt.f64:
            value = value.astype(np.float64)
        out[name] = value
    return out


def normalise_inputs(graph: Graph, inputs, precision: dt.DType) -> dict:
    """Accept a dict (by name) or a sequence (in input order); fill params from initializers."""
    if not isinstance(inputs, Mapping):
        inputs = list(inputs)
        data_inputs = [v for v in graph.inputs if v.name not in graph.initializers]
        names = [v.name for v in (graph.inputs if len(inputs) == len(graph.inputs)
                                  else data_inputs)]
        if len(inputs) != len(names):
            raise ArgumentError(f"graph {graph.name!r} takes {len(names)} inputs "
                                f"({', '.join(names)}), found {len(inputs)}")
        inputs = dict(zip(names, inputs))
    known = {v.name for v in graph.inputs}
    extra = sorted(set(inputs) - known)
    if extra:
        raise ArgumentError(f"graph {graph.name!r} has no input(s) {', '.join(extra)}; "
                            f"its inputs are {', '.join(sorted(known))}")
    arrays = {}
    missing = []
    for v in graph.inputs:
        arr = inputs.get(v.name)
        if arr is None:
            arr = graph.initializers.get(v.name)
        if arr is None:
            missing.append(v.name)
            continue
        arr = np.asarray(arr)
        try:
            found = dt.dtype(arr.dtype)
        except GraphcError:
            found = None
        if found is not v.type.dtype:
            raise ArgumentError(f"input %{v.name}: expected dtype {v.type.dtype} ({v.type}), "
                                f"found {arr.dtype}")
        arrays[v.name] = arr.astype(_compute_dtype(v.type.dtype, precision).np_dtype)
    if missing:
        raise ArgumentError(f"graph {graph.name!r}: missing input(s) {', '.join(missing)}")
    return arrays


def run(graph: Graph, inputs, precision="f32", env: Optional[dict] = None,
        return_all: bool = False):
    """Execute `graph` on `inputs` (dict by name, or a list in input order).

    Returns a dict output-name -> array (or, with return_all, a dict of every value name)."""
    precision = dt.dtype(precision)
    if precision not in (dt.f32, dt.f64):
        raise ArgumentError(f"precision must be f32 or f64, found {precision}")
    arrays = normalise_inputs(graph, inputs, precision)
    env = bind_symbols(graph, arrays, env)
    check_dim_constraints(dim_constraints(graph), env, graph.name)   # nested bodies too
    values = {graph.inputs[i]: arrays[v.name] for i, v in enumerate(graph.inputs)}
    token = _ENV.set(env)
    try:
        _run_nodes(graph, values, env, precision)
    finally:
        _ENV.reset(token)
    if return_all:
        return {v.name: a for v, a in values.items()}
    return {name: values[v] for name, v in zip(graph.output_names, graph.outputs)}


def _run_nodes(graph: Graph, values: dict, env: dict, precision) -> None:
    with np.errstate(all="ignore"):
        for node in graph.nodes:
            opdef = get_op(node.op)
            attrs = resolve_attrs(opdef, node.attrs, env, precision)
            args = [values[v] for v in node.inputs]
            try:
                result = opdef.reference(args, attrs)
            except GraphcError as e:
                raise e.with_loc(node.loc) from None
            results = result if isinstance(result, (tuple, list)) else (result,)
            for out, arr in zip(node.outputs, results):
                arr = np.asarray(arr)
                want_dt = _compute_dtype(out.type.dtype, precision).np_dtype
                want_shape = tuple(evaluate(d, env) for d in out.type.shape)
                if arr.shape != want_shape or arr.dtype != want_dt:
                    raise InterpreterError(
                        f"op {node.op} produced {arr.dtype}{list(arr.shape)}, but its type is "
                        f"{out.type} = {np.dtype(want_dt)}{list(want_shape)} (reference bug)",
                        node.loc)
                values[out] = arr
