"""Reductions and the normalising functions built on them (softmax, logsumexp, var, std).

`axis` is None (every axis), an int or a tuple of ints, negative counting from the end.
`mean` divides by the number of reduced elements: a constant when the reduced dims are static,
else a `dim_value` node (the runtime value of e.g. N) cast to the tensor's float dtype, so one
graph serves every batch size.
"""
from __future__ import annotations

import numpy as np

from ir import dtypes as _dt
from ir.errors import DTypeError, ShapeError
from ir.location import user_frame_loc
from ir.symbolic import product

from ..scope import node_path
from ..tensor import Tensor, as_tensor, emit
from .elementwise import (abs, add, cast, divide, exp, less, log, multiply, sqrt, subtract,
                          where)


def normalise_axes(op: str, x: Tensor, axis) -> tuple:
    """Sorted non-negative axes of `x` named by `axis` (None: all of them)."""
    if axis is None:
        return tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise ShapeError(f"{op}: an axis must be an int, found {a!r}",
                             user_frame_loc(node_path(op)))
        if not -x.ndim <= a < x.ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for {x.type} (rank {x.ndim})",
                             user_frame_loc(node_path(op)))
        out.append(int(a) % x.ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: axis {axis} repeats an axis of {x.type}",
                         user_frame_loc(node_path(op)))
    return tuple(sorted(out))


def _reduce(op: str, x, axis, keepdims: bool) -> Tensor:
    x = as_tensor(x, op=op)
    axes = normalise_axes(op, x, axis)
    if not axes:
        return x
    return emit(op, [x], {"axes": axes, "keepdims": bool(keepdims)})


def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over `axis` (None: all axes)."""
    return _reduce("reduce_sum", x, axis, keepdims)


def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over `axis` (None: all axes); NaN propagates."""
    return _reduce("reduce_max", x, axis, keepdims)


def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over `axis` (None: all axes); NaN propagates."""
    return _reduce("reduce_min", x, axis, keepdims)


def count_of(x: Tensor, axes: tuple) -> Tensor:
    """The number of elements in `axes` of x as a scalar of x's dtype: a constant when those
    dims are static, else the runtime value of the symbolic product (dim_value + cast)."""
    n = product(x.shape[a] for a in axes)
    if isinstance(n, int):
        return as_tensor(float(n) if x.dtype.is_float else n, x)
    return cast(emit("dim_value", [], {"dim": n, "dtype": _dt.i64}), x.dtype)


def _float_input(op: str, x) -> Tensor:
    x = as_tensor(x, op=op)
    if not x.dtype.is_float:
        raise DTypeError(f"{op} needs a float tensor, found {x.type}; cast it first with "
                         ".astype('f32')", user_frame_loc(node_path(op)))
    return x


def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over `axis` (float tensors)."""
    x = _float_input("mean", x)
    axes = normalise_axes("mean", x, axis)
    if not axes:
        return x
    return divide(sum(x, axes, keepdims), count_of(x, axes))


def var(x, axis=None, keepdims: bool = False) -> Tensor:
    """Population variance mean((x - mean(x))**2): the two-pass form, which does not lose
    precision the way mean(x**2) - mean(x)**2 does."""
    x = _float_input("var", x)
    axes = normalise_axes("var", x, axis)
    centred = subtract(x, mean(x, axes, keepdims=True))
    return mean(multiply(centred, centred), axes, keepdims)


def std(x, axis=None, keepdims: bool = False) -> Tensor:
    """Population standard deviation sqrt(var(x))."""
    return sqrt(var(x, axis, keepdims))


def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index (i64) of the first maximum along `axis`; None searches the flattened tensor."""
    x = as_tensor(x, op="argmax")
    if axis is None:
        flat = emit("reshape", [x], {"shape": (product(x.shape),)}) if x.ndim != 1 else x
        out = emit("argmax", [flat], {"axis": 0, "keepdims": False})
        if keepdims:
            out = emit("reshape", [out], {"shape": (1,) * x.ndim})
        return out
    (a,) = normalise_axes("argmax", x, (axis,))
    return emit("argmax", [x], {"axis": a, "keepdims": bool(keepdims)})


def softmax(x, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, with the max subtracted first so exp never
    overflows."""
    x = _float_input("softmax", x)
    e = exp(subtract(x, max(x, axis, keepdims=True)))
    return divide(e, sum(e, axis, keepdims=True))


def log_softmax(x, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed stably: (x - max) - log(sum(exp(x - max)))."""
    x = _float_input("log_softmax", x)
    shifted = subtract(x, max(x, axis, keepdims=True))
    return subtract(shifted, log(sum(exp(shifted), axis, keepdims=True)))


def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) along `axis`, stable: the max is subtracted first, and an infinite or
    NaN max is replaced by 0 so a slice of all -inf gives -inf (not NaN)."""
    x = _float_input("logsumexp", x)
    axes = normalise_axes("logsumexp", x, axis)
    if not axes:
        return x
    m = max(x, axes, keepdims=True)
    m = where(less(abs(m), np.inf), m, 0.0)
    out = add(log(sum(exp(subtract(x, m)), axes, keepdims=True)), m)
    if keepdims:
        return out
    kept = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return emit("reshape", [out], {"shape": kept})
