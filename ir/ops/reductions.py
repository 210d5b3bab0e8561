"""Reductions: reduce_sum, reduce_max, reduce_min over any set of axes, and argmax.

reduce_max/min propagate NaN (like numpy). Reducing an empty extent gives the identity
(0 for sum, -inf/+inf for max/min on floats). argmax returns the first index of the maximum,
and the index of the first NaN if there is one (numpy's rule)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import InterpreterError, ShapeError
from ..opdef import Cost, OpDef, register
from ..symbolic import product
from ..types import TensorType
from ._common import normalise_axes, require_dtype

NUMERIC = dt.FLOAT_DTYPES + dt.INT_DTYPES


def reduced_shape(shape, axes, keepdims):
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_infer(name):
    def infer(ins, attrs):
        x = ins[0]
        require_dtype(name, x, NUMERIC, "a reduction")
        axes = normalise_axes(name, attrs["axes"], x.rank, [x])
        return [TensorType(reduced_shape(x.shape, axes, attrs["keepdims"]), x.dtype)]
    return infer


def _reduce_cost(ins, outs, attrs):
    return Cost(product(ins[0].shape), ins[0].nbytes + outs[0].nbytes)


def _identity_fill(fn, x, axes, keepdims, identity):
    if x.size == 0:
        shape = reduced_shape(x.shape, axes, keepdims)
        return np.full(shape, identity, x.dtype)
    return fn(x, axis=axes, keepdims=keepdims)


def _ref(name):
    def ref(ins, attrs):
        x = ins[0]
        axes = tuple(a % max(x.ndim, 1) for a in attrs["axes"])
        keep = attrs["keepdims"]
        if name == "reduce_sum":
            return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype)
        big = np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).max
        if name == "reduce_max":
            return _identity_fill(np.max, x, axes, keep, -big if x.dtype.kind == "f"
                                  else np.iinfo(x.dtype).min)
        return _identity_fill(np.min, x, axes, keep, big)
    return ref


_AXES = {"axes": AttrSpec("ints", doc="axes to reduce"),
         "keepdims": AttrSpec("bool", False, doc="keep reduced axes as size 1")}

for _name in ("reduce_sum", "reduce_max", "reduce_min"):
    register(OpDef(_name, ("x",), dict(_AXES), _reduce_infer(_name), _ref(_name),
                   fusion="reduction", cost=_reduce_cost, tags=frozenset({"reduce"}),
                   doc=f"{_name[7:]} over `axes`"))


def _argmax_infer(ins, attrs):
    x = ins[0]
    require_dtype("argmax", x, NUMERIC, "argmax")
    (axis,) = normalise_axes("argmax", (attrs["axis"],), x.rank, [x])
    if x.shape[axis] == 0:
        raise ShapeError(f"argmax: axis {axis} of {x} is empty; there is no maximum to index")
    return [TensorType(reduced_shape(x.shape, (axis,), attrs["keepdims"]), dt.i64)]


def _argmax_ref(ins, attrs):
    x = ins[0]
    if x.shape[attrs["axis"] % x.ndim] == 0:    # a symbolic dim bound to 0
        raise InterpreterError(f"argmax: axis {attrs['axis'] % x.ndim} of an array of shape "
                               f"{x.shape} is empty; there is no maximum to index")
    out = np.argmax(x, axis=attrs["axis"] % x.ndim, keepdims=attrs["keepdims"])
    return out.astype(np.int64)


register(OpDef("argmax", ("x",), {"axis": AttrSpec("int"), "keepdims": AttrSpec("bool", False)},
               _argmax_infer, _argmax_ref, fusion="reduction", cost=_reduce_cost,
               tags=frozenset({"reduce"}),
               doc="index (i64) of the first maximum along `axis`; a NaN counts as the maximum"))
