"""Shape and data-movement ops: reshape, transpose, flatten, indexing, concat, stack, pad,
take, one_hot, and tensors filled with one value.

Ops whose result would equal their input (a reshape to the same shape, the identity
permutation, a full slice) return the input itself rather than a do-nothing node.
"""
from __future__ import annotations

import numbers

import numpy as np

from ir.errors import DTypeError, ShapeError
from ir.location import user_frame_loc
from ir.symbolic import SymDim, as_dim, as_shape, dim_div_exact, format_dim, product

from ..scope import node_path
from ..tensor import Tensor, TraceError, as_tensor, constant, emit
from .broadcasting import broadcast_to, require_same_dtype, tensor_operands
from .elementwise import cast, equal


def _err(op: str, message: str) -> ShapeError:
    return ShapeError(f"{op}: {message}", user_frame_loc(node_path(op)))


def _axis(op: str, axis, rank: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise _err(op, f"an axis must be an int, found {axis!r}")
    if not -rank <= axis < rank:
        raise _err(op, f"axis {axis} is out of range for rank {rank}")
    return int(axis) % rank


# -- reshape / transpose / flatten -------------------------------------------------------------
def reshape(x, shape) -> Tensor:
    """x with a new shape holding the same elements in row-major order. One entry may be -1:
    it is solved from the element count, symbolic dims included ((N,28,28) -> (-1,784) gives
    (N,784)). Entries may be ints, symbol names ('N') or symbolic dims."""
    x = as_tensor(x, op="reshape")
    if isinstance(shape, (int, str, SymDim, np.integer)):
        shape = (shape,)
    shape = list(shape)
    holes = [i for i, d in enumerate(shape) if isinstance(d, (int, np.integer)) and d == -1]
    if len(holes) > 1:
        raise _err("reshape", f"only one dim may be -1, found {tuple(shape)}")
    try:
        for i, d in enumerate(shape):
            if i not in holes:
                shape[i] = as_dim(d)
    except ShapeError as e:
        raise _err("reshape", e.message) from None
    total = product(x.shape)
    if holes:
        known = product(d for i, d in enumerate(shape) if i not in holes)
        try:
            if known == 0:
                raise ShapeError("the other dims have no elements")
            shape[holes[0]] = dim_div_exact(total, known)
        except ShapeError:
            raise _err("reshape", f"cannot reshape {x.type} ({format_dim(total)} elements) to "
                       f"{_shape_text(shape)}: {format_dim(total)} is not a multiple of "
                       f"{format_dim(known)}") from None
    shape = tuple(shape)
    if shape == tuple(x.shape):
        return x
    return emit("reshape", [x], {"shape": shape})


def _shape_text(shape) -> str:
    return "[" + ",".join("-1" if d == -1 else format_dim(d) for d in shape) + "]"


def transpose(x, perm=None) -> Tensor:
    """Permute axes: result axis i is axis perm[i] of x (None: reverse the axes)."""
    x = as_tensor(x, op="transpose")
    if perm is None:
        perm = tuple(reversed(range(x.ndim)))
    perm = tuple(_axis("transpose", p, x.ndim) for p in perm)
    if sorted(perm) != list(range(x.ndim)):
        raise _err("transpose", f"{perm} is not a permutation of the {x.ndim} axes of {x.type}")
    if perm == tuple(range(x.ndim)):
        return x
    return emit("transpose", [x], {"perm": perm})


def flatten(x, start_dim: int = 1, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim (inclusive) into one: (N,C,H,W) -> (N, C*H*W)."""
    x = as_tensor(x, op="flatten")
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = _axis("flatten", start_dim, x.ndim), _axis("flatten", end_dim, x.ndim)
    if s > e:
        raise _err("flatten", f"start_dim {start_dim} comes after end_dim {end_dim} for {x.type}")
    shape = x.shape[:s] + (product(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return reshape(x, shape)


def expand_dims(x, axis: int) -> Tensor:
    """x with a new size-1 axis inserted at `axis` (of the result)."""
    x = as_tensor(x, op="reshape")
    a = _axis("expand_dims", axis, x.ndim + 1)
    return reshape(x, x.shape[:a] + (1,) + x.shape[a:])


def squeeze(x, axis=None) -> Tensor:
    """x without size-1 axes (all of them, or the ones named by `axis`)."""
    x = as_tensor(x, op="reshape")
    if axis is None:
        axes = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        axes = {_axis("squeeze", a, x.ndim) for a in ((axis,) if np.ndim(axis) == 0 else axis)}
        for a in axes:
            if x.shape[a] != 1:
                raise _err("squeeze", f"axis {a} of {x.type} has size {format_dim(x.shape[a])}, "
                           "not 1")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


# -- indexing ----------------------------------------------------------------------------------
def _resolve_bound(b, d, default):
    if b is None:
        return default
    b = int(b)
    return d + b if b < 0 else b


def _resolve_slice(item: slice, d, axis: int):
    """(start, stop, step) of a basic slice on a dim of size d (an int or a SymDim)."""
    for part in (item.start, item.stop, item.step):
        if part is not None and (isinstance(part, bool) or
                                 not isinstance(part, (int, np.integer))):
            raise _err("slice", f"slice bounds must be ints or None, found {item} on axis {axis}")
    step = 1 if item.step is None else int(item.step)
    if step <= 0:
        raise _err("slice", f"only positive steps are supported, found {item} on axis {axis}")
    if isinstance(d, int):
        start, stop, _ = item.indices(d)
        return start, max(start, stop), step
    # symbolic extent: negative bounds count from the end; provability is the primitive's job
    return _resolve_bound(item.start, d, 0), _resolve_bound(item.stop, d, d), step


def getitem(x, index) -> Tensor:
    """Basic numpy indexing: ints (drop the axis; negative counts from the end), slices with
    positive steps and negative/None bounds, Ellipsis, and None (a new size-1 axis). Lowered
    to at most one `slice` and one `reshape`. For gathering by an index tensor use take()."""
    x = as_tensor(x, op="slice")
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if not (it is None or it is Ellipsis or isinstance(it, slice) or
                (isinstance(it, (int, np.integer)) and not isinstance(it, bool))):
            hint = " (use graphc.take(x, indices, axis) to gather)" \
                if isinstance(it, (Tensor, list, np.ndarray)) else ""
            raise TraceError(f"index {it!r} ({type(it).__name__}) is not supported: use ints, "
                             f"slices, ..., or None{hint}", user_frame_loc(node_path("slice")))
    if sum(it is Ellipsis for it in items) > 1:
        raise _err("slice", "an index can only have a single Ellipsis (...)")
    used = sum(it is not None and it is not Ellipsis for it in items)
    if used > x.ndim:
        raise _err("slice", f"too many indices for {x.type}: {used} given for rank {x.ndim}")
    fill = (slice(None),) * (x.ndim - used)
    k = next((i for i, it in enumerate(items) if it is Ellipsis), None)
    items = items + fill if k is None else items[:k] + fill + items[k + 1:]
    starts, stops, steps = [], [], []
    axis = 0
    for it in items:
        if it is None:
            continue
        d = x.shape[axis]
        if isinstance(it, slice):
            lo, hi, st = _resolve_slice(it, d, axis)
        else:
            i = int(it)
            if isinstance(d, int):
                if not -d <= i < d:
                    raise _err("slice", f"index {i} is out of range for axis {axis} of size {d} "
                               f"({x.type})")
                i %= d
            lo = d + i if i < 0 else i
            hi, st = lo + 1, 1
        starts.append(lo)
        stops.append(hi)
        steps.append(st)
        axis += 1
    full = all(lo == 0 and hi == d and st == 1
               for lo, hi, st, d in zip(starts, stops, steps, x.shape))
    try:
        sliced = x if full else emit("slice", [x], {"starts": starts, "stops": stops,
                                                    "steps": steps})
    except ShapeError as e:
        if not any(isinstance(d, SymDim) for d in x.shape):
            raise
        raise ShapeError(e.message + " (on a symbolic axis graphc can only prove positions "
                         "counted from the end, like x[-1] or x[-3:], and slices x[k:] with "
                         "k >= 0)", e.loc) from None
    shape, axis = [], 0
    for it in items:
        if it is None:
            shape.append(1)
            continue
        if isinstance(it, slice):
            shape.append(sliced.shape[axis])
        axis += 1
    return reshape(sliced, tuple(shape))


# -- joining -----------------------------------------------------------------------------------
def concat(xs, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (all other dims must match)."""
    xs = list(xs)
    if not xs:
        raise _err("concat", "needs at least one tensor")
    ts = tensor_operands("concat", *xs)
    require_same_dtype("concat", *ts)
    if len(ts) == 1:
        return ts[0]
    return emit("concat", ts, {"axis": axis})


def stack(xs, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    xs = list(xs)
    if not xs:
        raise _err("stack", "needs at least one tensor")
    ts = tensor_operands("concat", *xs)
    a = _axis("stack", axis, ts[0].ndim + 1)
    for t in ts[1:]:
        if tuple(t.shape) != tuple(ts[0].shape):
            raise _err("stack", "needs tensors of one shape, found "
                       + ", ".join(str(u.type) for u in ts))
    return concat([expand_dims(t, a) for t in ts], a)


def pad(x, pad_width, value=0.0) -> Tensor:
    """Constant padding, numpy-style: pad_width is an int (every side of every axis), a pair
    (before, after) for every axis, or one pair per axis."""
    x = as_tensor(x, op="pad")
    pw = np.asarray(pad_width)
    if pw.dtype.kind not in "iu" or pw.ndim > 2:
        raise _err("pad", f"pad_width must be ints: n, (before, after) or one pair per axis, "
                   f"found {pad_width!r}")
    try:
        pairs = np.broadcast_to(pw, (x.ndim, 2))
    except ValueError:
        raise _err("pad", f"pad_width {pad_width!r} does not fit the {x.ndim} axes of "
                   f"{x.type}") from None
    if (pairs < 0).any():
        raise _err("pad", f"padding must be non-negative, found {pad_width!r}")
    if not x.dtype.is_float and float(value) != int(value):
        raise DTypeError(f"pad: the value {value!r} is not an integer but {x.type} is",
                         user_frame_loc(node_path("pad")))
    if not pairs.any():
        return x
    return emit("pad", [x], {"low": [int(p) for p in pairs[:, 0]],
                             "high": [int(p) for p in pairs[:, 1]], "value": float(value)})


# -- gathering ---------------------------------------------------------------------------------
def take(x, indices, axis: int = 0) -> Tensor:
    """numpy.take: pick entries of x along `axis` by integer indices (a Tensor, or an int /
    list / array, whose negative entries count from the end when the axis is static). The
    result shape is x.shape[:axis] + indices.shape + x.shape[axis+1:]."""
    x = as_tensor(x, op="gather")
    a = _axis("gather", axis, x.ndim)
    if not isinstance(indices, Tensor):
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise DTypeError(f"gather: indices must be integers, found {idx.dtype}",
                             user_frame_loc(node_path("gather")))
        d = x.shape[a]
        if isinstance(d, int) and idx.size:
            if idx.min() < -d or idx.max() >= d:
                raise _err("gather", f"index {idx[(idx < -d) | (idx >= d)].flat[0]} is out of "
                           f"range for axis {a} of {x.type}")
            idx = np.where(idx < 0, idx + d, idx)
        indices = constant(idx.astype(np.int64))
    return emit("gather", [x, indices], {"axis": a})


gather = take


def one_hot(labels, num_classes: int, dtype="f32") -> Tensor:
    """labels (ints, any shape S) -> S + (num_classes,) with 1 at each label and 0 elsewhere.
    Built as iota == broadcast(labels) then cast; a label outside [0, num_classes) gives an
    all-zero row."""
    labels = as_tensor(labels, op="one_hot")
    if not labels.dtype.is_int:
        raise DTypeError(f"one_hot: labels must be an int tensor, found {labels.type}",
                         user_frame_loc(node_path("iota")))
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise _err("one_hot", f"num_classes must be a positive int, found {num_classes!r}")
    shape = tuple(labels.shape) + (int(num_classes),)
    classes = emit("iota", [], {"shape": shape, "axis": labels.ndim, "dtype": labels.dtype})
    spread = emit("broadcast", [labels], {"shape": shape, "dims": tuple(range(labels.ndim))})
    return cast(equal(classes, spread), dtype)


# -- filled tensors ----------------------------------------------------------------------------
def full(shape, value, dtype="f32") -> Tensor:
    """A tensor of `shape` (symbolic dims allowed) filled with `value`."""
    try:
        dims = as_shape(shape)
    except ShapeError as e:
        raise _err("broadcast", e.message) from None
    return broadcast_to(constant(value, dtype), dims)


def zeros(shape, dtype="f32") -> Tensor:
    """A tensor of zeros of `shape` (symbolic dims allowed)."""
    return full(shape, 0, dtype)


def ones(shape, dtype="f32") -> Tensor:
    """A tensor of ones of `shape` (symbolic dims allowed)."""
    return full(shape, 1, dtype)


def zeros_like(x) -> Tensor:
    """Zeros with the shape and dtype of x."""
    x = as_tensor(x, op="broadcast")
    return full(x.shape, 0, x.dtype)


def ones_like(x) -> Tensor:
    """Ones with the shape and dtype of x."""
    x = as_tensor(x, op="broadcast")
    return full(x.shape, 1, x.dtype)

