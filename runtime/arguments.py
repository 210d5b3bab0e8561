"""The call boundary's checks: every argument is validated before native code runs.

For each call: map positional and named arguments onto the graph's data inputs (missing,
extra, unknown and duplicate arguments are errors; params are not arguments), then check
every array: exact dtype, rank, each static dim, and symbolic dims bound consistently across
all arguments (the first input with a plain `N` axis binds N; any other input that disagrees
is reported together with the one that bound it). Dims given as expressions (`2*N`) are
checked after binding, then every dim the graph needs non-negative (ir/constraints.py: a
slice from N-3 needs N >= 3).

Arrays that are not C-contiguous or not aligned to their element size are COPIED into a
fresh contiguous array (never rejected): native code only ever sees dense, aligned buffers.
Every problem raises ArgumentError saying what was expected and what was found.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ir import ArgumentError
from ir.constraints import check_dim_constraints
from ir.symbolic import evaluate, format_shape

STATIC, BIND, EXPR = 0, 1, 2
_DENSE_AND_ALIGNED = 0x0001 | 0x0100       # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED


class InputSpec:
    __slots__ = ("name", "type", "np_dtype", "rank", "axes")

    def __init__(self, value, symbol_index: dict):
        self.name = value.name
        self.type = value.type
        self.np_dtype = value.type.dtype.np_dtype
        self.rank = value.type.rank
        axes = []
        for d in value.type.shape:
            if isinstance(d, int):
                axes.append((STATIC, d))
            elif (len(d.terms) == 1 and d.terms[0][1] == 1 and len(d.terms[0][0]) == 1
                  and d.terms[0][0][0] in symbol_index):
                axes.append((BIND, symbol_index[d.terms[0][0][0]]))
            else:
                axes.append((EXPR, d))
        self.axes = tuple(axes)


class ArgumentChecker:
    def __init__(self, graph_name: str, data_inputs: Sequence, params: Sequence,
                 symbols: Sequence[str], constraints: Sequence = ()):
        self.graph_name = graph_name
        self.constraints = tuple(constraints)      # ir.constraints: dims that must be >= 0
        self.symbols = tuple(symbols)
        index = {s: k for k, s in enumerate(self.symbols)}
        self.specs = [InputSpec(v, index) for v in data_inputs]
        self.position = {s.name: k for k, s in enumerate(self.specs)}
        self.param_names = {v.name for v in params}
        self.names = [s.name for s in self.specs]

    # -- which array is which input -------------------------------------------------------------
    def collect(self, args: Sequence, named: Mapping) -> list:
        n = len(self.specs)
        if not named and len(args) == n:
            return list(args)
        if len(args) > n:
            raise ArgumentError(f"graph {self.graph_name!r} takes {n} input(s) "
                                f"({', '.join(self.names) or 'none'}), found {len(args)} "
                                "positional arguments")
        arrays = list(args) + [None] * (n - len(args))
        for name, value in named.items():
            k = self.position.get(name)
            if k is None:
                if name in self.param_names:
                    raise ArgumentError(f"%{name} is a parameter of graph {self.graph_name!r}, "
                                        "not a call argument: set it with exe.set_params")
                raise ArgumentError(f"graph {self.graph_name!r} has no input named {name!r}; "
                                    f"its inputs are: {', '.join(self.names) or 'none'}")
            if arrays[k] is not None:
                raise ArgumentError(f"input %{name} given twice (positionally and by name)")
            arrays[k] = value
        missing = [s.name for s, a in zip(self.specs, arrays) if a is None]
        if missing:
            raise ArgumentError(f"graph {self.graph_name!r}: missing input(s) "
                                f"{', '.join(missing)} (inputs are {', '.join(self.names)})")
        return arrays

    # -- what each array must look like ---------------------------------------------------------
    def check(self, arrays: list) -> tuple:
        """Validate (and where needed copy) `arrays` in place; return the symbol values."""
        env = [None] * len(self.symbols)
        bound_by = [None] * len(self.symbols)
        deferred = []
        for k, spec in enumerate(self.specs):
            arr = arrays[k]
            if type(arr) is not np.ndarray:
                arr = np.asarray(arr)
            if arr.dtype != spec.np_dtype:
                raise ArgumentError(f"input %{spec.name}: expected dtype {spec.type.dtype} "
                                    f"({spec.type}), found {arr.dtype}")
            if arr.ndim != spec.rank:
                raise ArgumentError(f"input %{spec.name}: expected rank {spec.rank} "
                                    f"({spec.type}), found an array of shape {arr.shape}")
            shape = arr.shape
            for axis, (kind, payload) in enumerate(spec.axes):
                n = shape[axis]
                if kind == STATIC:
                    if n != payload:
                        raise ArgumentError(f"input %{spec.name}: expected {spec.type}, found "
                                            f"shape {shape} (axis {axis} should be {payload})")
                elif kind == BIND:
                    if env[payload] is None:
                        env[payload] = n
                        bound_by[payload] = (spec.name, axis)
                    elif env[payload] != n:
                        other, other_axis = bound_by[payload]
                        raise ArgumentError(
                            f"symbolic dim {self.symbols[payload]} is bound inconsistently: "
                            f"input %{other} has {self.symbols[payload]}={env[payload]} (axis "
                            f"{other_axis}) but input %{spec.name} has "
                            f"{self.symbols[payload]}={n} (axis {axis}, shape {shape})")
                else:
                    deferred.append((spec, axis, payload, shape))
            if arr.flags.num & _DENSE_AND_ALIGNED != _DENSE_AND_ALIGNED:
                arr = np.array(arr, order="C", copy=True)
            arrays[k] = arr
        if deferred:
            binding = dict(zip(self.symbols, env))
            for spec, axis, dim, shape in deferred:
                want = evaluate(dim, binding)
                if shape[axis] != want:
                    text = ", ".join(f"{s}={v}" for s, v in binding.items())
                    raise ArgumentError(f"input %{spec.name}: expected shape "
                                        f"{format_shape(spec.type.shape)} with {text}, found "
                                        f"{shape} (axis {axis} should be {want})")
        if self.constraints:
            binding = {s: v for s, v in zip(self.symbols, env) if v is not None}
            check_dim_constraints(self.constraints, binding, self.graph_name)
        return tuple(env)


def check_out_array(name: str, arr, np_dtype, shape: tuple, others: Sequence) -> np.ndarray:
    """Validate a caller-provided output array: exact dtype and shape, dense, aligned,
    writeable, and sharing no memory with any input, parameter or other output."""
    if type(arr) is not np.ndarray:
        raise ArgumentError(f"out[{name!r}]: expected a numpy array, found {type(arr).__name__}")
    if arr.dtype != np_dtype or arr.shape != shape:
        raise ArgumentError(f"out[{name!r}]: expected a {np.dtype(np_dtype)} array of shape "
                            f"{shape}, found {arr.dtype} {arr.shape}")
    if not (arr.flags.c_contiguous and arr.flags.aligned and arr.flags.writeable):
        raise ArgumentError(f"out[{name!r}]: the array must be C-contiguous, aligned and "
                            "writeable")
    for other in others:
        if np.may_share_memory(arr, other):
            raise ArgumentError(f"out[{name!r}] overlaps an input, parameter or another output;"
                                " native code needs it to be separate memory")
    return arr
