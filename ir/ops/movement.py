"""Data-movement primitives: constant, iota, dim_value, broadcast, reshape, transpose, slice,
pad, concat, gather. None does arithmetic; fusion treats broadcast and the index-remapping
ops as free inside a loop (`broadcast` / `injective`)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import ShapeError
from ..opdef import Cost, OpDef, register
from ..symbolic import SymDim, format_dim, format_shape, product
from ..types import TensorType
from ._common import (elementwise_cost, movement_cost, normalise_axes, require_dtype,
                      require_same_dtype, shapes_text)


def _constant_infer(ins, attrs):
    v = attrs["value"]
    return [TensorType(v.shape, dt.dtype(v.dtype))]


register(OpDef("constant", (), {"value": AttrSpec("tensor", doc="the array")}, _constant_infer,
               lambda ins, attrs: attrs["value"], fusion="elementwise",
               cost=lambda i, o, a: Cost(0, 0), doc="a literal array"))


def _iota_infer(ins, attrs):
    shape, axis = attrs["shape"], attrs["axis"]
    if not 0 <= axis < max(len(shape), 1) or (not shape):
        raise ShapeError(f"iota: axis {axis} out of range for shape {format_shape(shape)}")
    return [TensorType(shape, attrs["dtype"])]


def _iota_ref(ins, attrs):
    shape, axis = attrs["shape"], attrs["axis"]
    line = np.arange(shape[axis]).astype(attrs["dtype"].np_dtype)   # arange rejects bool > 2
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return np.broadcast_to(line.reshape(view), shape).copy()


register(OpDef("iota", (), {"shape": AttrSpec("dims"), "axis": AttrSpec("int", 0),
                            "dtype": AttrSpec("dtype", dt.i64)},
               _iota_infer, _iota_ref, fusion="elementwise", cost=elementwise_cost(0),
               doc="0, 1, 2, ... along `axis`, constant along the others (for one-hot)"))


def _dim_value_infer(ins, attrs):
    return [TensorType((), attrs["dtype"])]


register(OpDef("dim_value", (), {"dim": AttrSpec("dim"), "dtype": AttrSpec("dtype", dt.i64)},
               _dim_value_infer,
               lambda ins, attrs: np.array(attrs["dim"], attrs["dtype"].np_dtype),
               fusion="elementwise", cost=elementwise_cost(0),
               doc="a scalar holding the runtime value of a (symbolic) dim, e.g. the batch size"))


# -- broadcast ---------------------------------------------------------------------------------
def _broadcast_infer(ins, attrs):
    (x,), shape, dims = ins, attrs["shape"], attrs["dims"]
    if len(dims) != x.rank:
        raise ShapeError(f"broadcast: dims {dims} must name one output axis per operand axis "
                         f"(operand {x}, target {format_shape(shape)})")
    if any(not 0 <= d < len(shape) for d in dims) or list(dims) != sorted(set(dims)):
        raise ShapeError(f"broadcast: dims {dims} must be increasing axes of the target "
                         f"(operand {x}, target {format_shape(shape)})")
    for i, d in enumerate(dims):
        if x.shape[i] != 1 and x.shape[i] != shape[d]:
            raise ShapeError(f"broadcast: operand axis {i} has size {format_dim(x.shape[i])}, "
                             f"which is neither 1 nor target axis {d} size "
                             f"{format_dim(shape[d])} (operand {x}, target {format_shape(shape)})")
    return [TensorType(shape, x.dtype)]


def _broadcast_ref(ins, attrs):
    x, shape, dims = ins[0], attrs["shape"], attrs["dims"]
    view = [1] * len(shape)
    for i, d in enumerate(dims):
        view[d] = x.shape[i]
    return np.broadcast_to(x.reshape(view), shape).copy()


register(OpDef("broadcast", ("x",),
               {"shape": AttrSpec("dims", doc="result shape"),
                "dims": AttrSpec("ints", doc="result axis of each operand axis")},
               _broadcast_infer, _broadcast_ref, fusion="broadcast", cost=movement_cost,
               doc="replicate x into `shape`; operand axis i maps to result axis dims[i] "
                   "(size 1 stretches)"))


# -- reshape / transpose -----------------------------------------------------------------------
def _reshape_infer(ins, attrs):
    (x,), shape = ins, attrs["shape"]
    if product(x.shape) != product(shape):
        raise ShapeError(f"reshape: cannot reshape {x} ({format_dim(product(x.shape))} elements) "
                         f"to {format_shape(shape)} ({format_dim(product(shape))} elements)")
    return [TensorType(shape, x.dtype)]


register(OpDef("reshape", ("x",), {"shape": AttrSpec("dims")}, _reshape_infer,
               lambda ins, attrs: ins[0].reshape(attrs["shape"]), fusion="injective",
               cost=movement_cost, doc="same elements (row-major order), new shape"))


def _transpose_infer(ins, attrs):
    (x,), perm = ins, attrs["perm"]
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"transpose: perm {perm} is not a permutation of the axes of {x}")
    return [TensorType(tuple(x.shape[p] for p in perm), x.dtype)]


register(OpDef("transpose", ("x",), {"perm": AttrSpec("ints")}, _transpose_infer,
               # copy(order="C"), not ascontiguousarray: that turns a 0-d result into 1-d
               lambda ins, attrs: np.transpose(ins[0], attrs["perm"]).copy(order="C"),
               fusion="injective", cost=movement_cost,
               doc="result axis i is operand axis perm[i]"))


# -- slice -------------------------------------------------------------------------------------
def _nonneg_int(d) -> bool:
    return isinstance(d, int) and d >= 0


def _provably_nonneg(d) -> bool:
    """True when d >= 0 for every value of its symbols (dims are >= 0): an int >= 0 or a
    polynomial with non-negative coefficients, e.g. the N+3 left after slicing N rows from
    2*N+3 (concat's gradient slices its operands back out this way)."""
    if isinstance(d, SymDim):
        return all(c >= 0 for _, c in d.terms)
    return _nonneg_int(d)


def _slice_infer(ins, attrs):
    x = ins[0]
    starts, stops, steps = attrs["starts"], attrs["stops"], attrs["steps"]
    if not len(starts) == len(stops) == len(steps) == x.rank:
        raise ShapeError(f"slice: starts/stops/steps need one entry per axis of {x}, found "
                         f"{len(starts)}/{len(stops)}/{len(steps)}")
    out = []
    for axis, (lo, hi, st, d) in enumerate(zip(starts, stops, steps, x.shape)):
        where = f"slice axis {axis} [{format_dim(lo)}:{format_dim(hi)}:{st}] of {x}"
        if st <= 0:
            raise ShapeError(f"{where}: step must be positive")
        if not (_nonneg_int(lo) or _provably_nonneg(d - lo)):
            raise ShapeError(f"{where}: cannot prove 0 <= start <= size")
        if not (_provably_nonneg(d - hi) and (isinstance(hi, SymDim) or hi >= 0)):
            raise ShapeError(f"{where}: cannot prove stop <= size")
        length = hi - lo
        if isinstance(length, int):
            if length < 0:
                raise ShapeError(f"{where}: start is after stop")
            out.append(-(-length // st))
        elif st == 1:
            out.append(length)
        else:
            raise ShapeError(f"{where}: a strided slice of a symbolic extent is not supported")
    return [TensorType(tuple(out), x.dtype)]


def _slice_ref(ins, attrs):
    idx = tuple(slice(a, b, s) for a, b, s in zip(attrs["starts"], attrs["stops"], attrs["steps"]))
    return ins[0][idx].copy()


register(OpDef("slice", ("x",), {"starts": AttrSpec("dims"), "stops": AttrSpec("dims"),
                                 "steps": AttrSpec("ints")},
               _slice_infer, _slice_ref, fusion="injective", cost=movement_cost,
               doc="x[start:stop:step] on every axis (0 <= start <= stop <= size, step > 0)"))


# -- pad ---------------------------------------------------------------------------------------
def _pad_infer(ins, attrs):
    x, low, high = ins[0], attrs["low"], attrs["high"]
    if not len(low) == len(high) == x.rank:
        raise ShapeError(f"pad: low/high need one entry per axis of {x}, found {low}/{high}")
    if any(p < 0 for p in low + high):
        raise ShapeError(f"pad: padding must be non-negative, found low={low} high={high} "
                         f"for {x}")
    return [TensorType(tuple(d + a + b for d, a, b in zip(x.shape, low, high)), x.dtype)]


def _pad_ref(ins, attrs):
    x = ins[0]
    if x.ndim == 0:           # np.pad rejects an empty pad_width
        return x.copy()
    # the float attr converts like `cast` (saturating, NaN -> 0), not numpy's undefined astype
    from .elementwise import cast_array
    return np.pad(x, list(zip(attrs["low"], attrs["high"])), constant_values=
                  cast_array(np.array(attrs["value"]), x.dtype))


register(OpDef("pad", ("x",), {"low": AttrSpec("ints"), "high": AttrSpec("ints"),
                               "value": AttrSpec("float", 0.0)},
               _pad_infer, _pad_ref, fusion="injective", cost=movement_cost,
               doc="constant padding before (low) and after (high) each axis"))


# -- concat ------------------------------------------------------------------------------------
def _concat_infer(ins, attrs):
    first = ins[0]
    require_same_dtype("concat", ins)
    if any(t.rank != first.rank for t in ins):
        raise ShapeError(f"concat needs operands of one rank, found {shapes_text(ins)}")
    (axis,) = normalise_axes("concat", (attrs["axis"],), first.rank, ins)
    total = 0
    for t in ins:
        for i, (a, b) in enumerate(zip(t.shape, first.shape)):
            if i != axis and a != b:
                raise ShapeError(f"concat on axis {axis}: axis {i} differs, found "
                                 f"{shapes_text(ins)}")
        total = total + t.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return [TensorType(tuple(shape), first.dtype)]


register(OpDef("concat", ("xs*",), {"axis": AttrSpec("int")}, _concat_infer,
               lambda ins, attrs: np.concatenate(ins, axis=attrs["axis"]),
               fusion="injective", cost=movement_cost, doc="join operands along `axis`"))


# -- gather ------------------------------------------------------------------------------------
def _gather_infer(ins, attrs):
    data, idx = ins
    require_dtype("gather", idx, dt.INT_DTYPES, "indices", "second operand")
    (axis,) = normalise_axes("gather", (attrs["axis"],), data.rank, [data])
    shape = data.shape[:axis] + idx.shape + data.shape[axis + 1:]
    return [TensorType(shape, data.dtype)]


def _gather_ref(ins, attrs):
    data, idx = ins
    axis = attrs["axis"] % data.ndim
    n = data.shape[axis]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        from ..errors import InterpreterError
        bad = idx[(idx < 0) | (idx >= n)].flat[0]
        raise InterpreterError(f"gather: index {bad} is out of range [0, {n}) on axis {axis}")
    return np.take(data, idx, axis=axis)


register(OpDef("gather", ("data", "indices"), {"axis": AttrSpec("int", 0)}, _gather_infer,
               _gather_ref, fusion="injective", cost=movement_cost,
               doc="np.take(data, indices, axis); every index must be in [0, size)"))
