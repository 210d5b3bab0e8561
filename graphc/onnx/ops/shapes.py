"""Shape and data-movement ONNX ops: Shape, Size, Reshape, Flatten, Transpose, Squeeze,
Unsqueeze, Concat, Split, Slice, Gather, Expand, Tile, Pad, ConstantOfShape, Constant, Range.

Shape operands must be import-time constants (ctx.const raises a clear DataDependentError
otherwise). When the data operand itself is a Const holding symbolic dims (the output of
Shape), the op is computed here with numpy on the object array of dims, so shape arithmetic
folds completely; any other all-constant node is folded by the importer.
"""
from __future__ import annotations

import numpy as np

from ir import dtypes as dt
from ir.symbolic import SymDim, product

from ... import functional as F
from ...tensor import constant as const_tensor
from ...tensor import emit
from ..context import onnx_op
from ..values import Const, dims_array
from .common import dim_scalar, is_int_dim, norm_axes, norm_axis, static_dims, symbolic_const

BIG = 1 << 31      # ONNX models write INT64_MAX (or INT32_MAX) for "to the end"


def _data(ctx, i=0):
    """(Const or None, shape) of data input i: the Const when it holds symbolic dims."""
    v = ctx.value(i)
    if isinstance(v, Const) and v.symbolic:
        return v, v.shape
    t = ctx.tensor(i)
    return None, tuple(t.shape)


# -- shapes as values --------------------------------------------------------------------------
@onnx_op("Shape", versions=(1, 13, 15, 19, 21, 23, 24, 25))
def shape(ctx):
    v = ctx.value(0)
    dims = v.shape if isinstance(v, Const) else tuple(v.shape)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    return Const(dims_array(dims[slice(start, end)]), np.int64)


@onnx_op("Size", versions=(1, 13, 19, 21, 23, 24, 25))
def size(ctx):
    v = ctx.value(0)
    dims = v.shape if isinstance(v, Const) else tuple(v.shape)
    n = product(dims)
    arr = np.empty((), object)
    arr[()] = n
    return Const(arr, np.int64)


# -- reshaping ---------------------------------------------------------------------------------
def _reshape(ctx, i, new_shape):
    c, _ = _data(ctx, i)
    if c is not None:
        return Const(c.array.reshape(static_dims(ctx, new_shape, "reshaping a shape value")),
                     c.dtype)
    return F.reshape(ctx.tensor(i), tuple(new_shape))


@onnx_op("Reshape", versions=(5, 13, 14, 19, 21, 23, 24, 25))
def reshape(ctx):
    _, in_shape = _data(ctx)
    target = ctx.const_ints(1, "the target shape")
    allow_zero = ctx.attr("allowzero", 0) if ctx.version >= 14 else 0
    out = []
    for i, d in enumerate(target):
        if is_int_dim(d) and d == 0 and not allow_zero:
            if i >= len(in_shape):
                ctx.unsupported(f"shape entry {i} is 0 (copy the input dim) but the input has "
                                f"rank {len(in_shape)}")
            out.append(in_shape[i])
        elif is_int_dim(d) and d < -1:
            ctx.unsupported(f"shape entry {d} is invalid (only -1 may be negative)")
        else:
            out.append(d)
    if any(isinstance(d, int) and d == -1 for d in out):
        known = product(d for d in out if not (isinstance(d, int) and d == -1))
        if known == 0:
            ctx.unsupported(f"cannot infer the -1 entry of {target}: the other dims are empty")
    return _reshape(ctx, 0, out)


@onnx_op("Flatten", versions=(1, 9, 11, 13, 21, 23, 24, 25))
def flatten(ctx):
    _, in_shape = _data(ctx)
    rank = len(in_shape)
    axis = ctx.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        ctx.unsupported(f"axis {ctx.attr('axis', 1)} is out of range for rank {rank}")
    return _reshape(ctx, 0, (product(in_shape[:axis]), product(in_shape[axis:])))


@onnx_op("Squeeze", versions=(1, 11, 13, 21, 23, 24, 25))
def squeeze(ctx):
    _, in_shape = _data(ctx)
    if ctx.version < 13:
        axes = ctx.attr("axes", None)
    else:
        axes = ctx.const_ints(1, "axes") if ctx.has(1) else None
    if axes is None:
        axes = [i for i, d in enumerate(in_shape) if d == 1]
    axes = norm_axes(ctx, axes, len(in_shape))
    for a in axes:
        if in_shape[a] != 1:
            ctx.unsupported(f"axis {a} has size {in_shape[a]}, not 1")
    return _reshape(ctx, 0, [d for i, d in enumerate(in_shape) if i not in axes])


@onnx_op("Unsqueeze", versions=(1, 11, 13, 21, 23, 24, 25))
def unsqueeze(ctx):
    _, in_shape = _data(ctx)
    axes = ctx.attr("axes") if ctx.version < 13 else ctx.const_ints(1, "axes")
    rank = len(in_shape) + len(axes)
    axes = set(norm_axes(ctx, axes, rank))
    rest = iter(in_shape)
    return _reshape(ctx, 0, [1 if i in axes else next(rest) for i in range(rank)])


@onnx_op("Transpose", versions=(1, 13, 21, 23, 24, 25))
def transpose(ctx):
    c, in_shape = _data(ctx)
    perm = ctx.attr("perm", None)
    perm = list(reversed(range(len(in_shape)))) if perm is None else list(perm)
    if c is not None:
        return Const(np.transpose(c.array, perm), c.dtype)
    return F.transpose(ctx.tensor(0), perm)


# -- joining and splitting ---------------------------------------------------------------------
@onnx_op("Concat", versions=(4, 11, 13))
def concat(ctx):
    idx = [i for i in range(ctx.n_inputs) if ctx.has(i)]
    first = ctx.value(idx[0])
    rank = first.ndim if isinstance(first, Const) else len(first.shape)
    axis = norm_axis(ctx, ctx.attr("axis"), rank)
    if ctx.all_const() and any(symbolic_const(ctx, i) for i in idx):
        return Const(np.concatenate([ctx.value(i).array for i in idx], axis=axis),
                     first.dtype)
    return F.concat([ctx.tensor(i) for i in idx], axis)


def _split_sizes(ctx, dim, n_out: int) -> list:
    if ctx.version < 13:
        sizes = ctx.attr("split", None)
    else:
        sizes = ctx.const_ints(1, "split sizes") if ctx.has(1) else None
    num = ctx.attr("num_outputs", None) if ctx.version >= 18 else None
    if sizes is not None:
        if len(sizes) != n_out:
            ctx.unsupported(f"{len(sizes)} split sizes for {n_out} outputs")
        return list(sizes)
    n = num if num is not None else n_out
    if isinstance(dim, SymDim):
        try:
            return [dim // n] * n
        except Exception:
            ctx.unsupported(f"cannot split the symbolic dim {dim} into {n} equal parts")
    if num is None:
        if dim % n:
            ctx.unsupported(f"cannot split a dim of {dim} into {n} equal parts")
        return [dim // n] * n
    chunk = -(-dim // n)
    return [chunk] * (n - 1) + [dim - chunk * (n - 1)]


@onnx_op("Split", versions=(2, 11, 13, 18))
def split(ctx):
    c, in_shape = _data(ctx)
    axis = norm_axis(ctx, ctx.attr("axis", 0), len(in_shape))
    sizes = _split_sizes(ctx, in_shape[axis], ctx.n_outputs)
    outs, start = [], 0
    for s in sizes:
        if c is not None:
            index = [slice(None)] * len(in_shape)
            index[axis] = slice(start, start + s)
            outs.append(Const(c.array[tuple(index)], c.dtype))
        else:
            outs.append(_slice_tensor(ctx.tensor(0), axis, start, start + s))
        start = start + s
    return outs


def _slice_tensor(x, axis, lo, hi):
    """x[lo:hi] along `axis`, dims possibly symbolic (through the slice primitive)."""
    if lo == 0 and hi == x.shape[axis]:
        return x
    index = [slice(None)] * x.ndim
    d = x.shape[axis]
    if isinstance(d, SymDim) or isinstance(lo, SymDim) or isinstance(hi, SymDim):
        starts = [0] * x.ndim
        stops = list(x.shape)
        starts[axis], stops[axis] = lo, hi
        return emit("slice", [x], {"starts": starts, "stops": stops, "steps": [1] * x.ndim})
    index[axis] = slice(lo, hi)
    return F.getitem(x, tuple(index))


# -- slicing and gathering ---------------------------------------------------------------------
@onnx_op("Slice", versions=(1, 10, 11, 13))
def slice_(ctx):
    c, in_shape = _data(ctx)
    rank = len(in_shape)
    if ctx.version < 10:
        starts, ends = ctx.attr("starts"), ctx.attr("ends")
        axes, steps = ctx.attr("axes", None), None
    else:
        starts = ctx.const_ints(1, "starts")
        ends = ctx.const_ints(2, "ends")
        axes = ctx.const_ints(3, "axes") if ctx.has(3) else None
        steps = ctx.const_ints(4, "steps") if ctx.has(4) else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        ctx.unsupported(f"starts/ends/axes/steps have different lengths "
                        f"({len(starts)}/{len(ends)}/{len(axes)}/{len(steps)})")
    axes = norm_axes(ctx, axes, rank)
    bounds = {a: (s, e, int(st)) for a, s, e, st in zip(axes, starts, ends, steps)}
    if any(st == 0 for _, _, st in bounds.values()):
        ctx.unsupported(f"a zero step in steps {steps}")
    symbolic = any(isinstance(v, SymDim) for a, (s, e, _) in bounds.items()
                   for v in (s, e, in_shape[a]))
    if c is not None or not symbolic:
        index = [slice(None)] * rank
        for a, (s, e, st) in bounds.items():
            index[a] = slice(int(s), int(e), st)
        if c is not None:
            return Const(c.array[tuple(index)], c.dtype)
        x = ctx.tensor(0)
        # negative steps: gather the index list; positive steps: one slice node
        for a in range(rank):
            sl = index[a]
            if sl.step is not None and sl.step < 0:
                x = F.take(x, np.arange(*sl.indices(in_shape[a]), dtype=np.int64), a)
                index[a] = slice(None)
        return F.getitem(x, tuple(index))
    # symbolic dims or bounds: ONNX's clamping cannot be evaluated, so the bounds must be
    # provably in range (the slice primitive checks): negative ints count from the end and
    # INT_MAX-like ends mean "to the end"
    starts, stops, strides = [0] * rank, list(in_shape), [1] * rank
    for a, (s, e, st) in bounds.items():
        if st < 0:
            ctx.unsupported(f"a negative step on axis {a} with symbolic dims or bounds")
        d = in_shape[a]
        starts[a] = d + s if isinstance(s, int) and s < 0 else s
        if isinstance(e, int):
            e = d if e >= BIG else (d + e if e < 0 else e)
        stops[a], strides[a] = e, st
    return emit("slice", [ctx.tensor(0)], {"starts": starts, "stops": stops, "steps": strides})


def _symbolic_bounds(ctx, sl: slice, axis: int) -> slice:
    """A positive-step slice of a symbolic axis: INT_MAX ends mean 'to the end'."""
    start = sl.start
    stop = None if sl.stop is None or sl.stop >= BIG else sl.stop
    if start is not None and start >= BIG:
        ctx.unsupported(f"start {start} on the symbolic axis {axis}")
    return slice(start, stop, sl.step)


@onnx_op("Gather", versions=(1, 11, 13))
def gather(ctx):
    c, in_shape = _data(ctx)
    axis = norm_axis(ctx, ctx.attr("axis", 0), len(in_shape))
    d = in_shape[axis]
    if ctx.is_const(1):
        idx = ctx.const(1, "indices")
        if idx.dtype == object:
            ctx.unsupported("gathering with symbolic indices")
        if c is not None:
            return Const(np.take(c.array, np.where(idx < 0, idx + d, idx), axis=axis),
                         c.dtype)
        if isinstance(d, int) or not (idx < 0).any():
            return F.take(ctx.tensor(0), idx, axis)
    x, idx = ctx.tensor(0), ctx.tensor(1)
    if not idx.dtype.is_int:
        ctx.unsupported(f"indices must be integers, found {idx.type}")
    fixed = F.where(F.less(idx, F.zeros((), idx.dtype)), F.add(idx, dim_scalar(d, idx.dtype)),
                    idx)
    return F.take(x, fixed, axis)


# -- broadcasting and tiling -------------------------------------------------------------------
@onnx_op("Expand", versions=(8, 13))
def expand(ctx):
    c, in_shape = _data(ctx)
    target = ctx.const_ints(1, "the target shape")
    out = F.broadcast_shapes("broadcast", tuple(in_shape), tuple(target))
    if c is not None:
        return Const(np.broadcast_to(c.array, static_dims(ctx, out, "expanding a shape value")
                                     ).copy(), c.dtype)
    return F.broadcast_to(ctx.tensor(0), out)


@onnx_op("Tile", versions=(6, 13))
def tile(ctx):
    x = ctx.tensor(0)
    reps = ctx.const_ints(1, "repeats")
    if len(reps) != x.ndim:
        ctx.unsupported(f"{len(reps)} repeats for a rank-{x.ndim} input")
    spread = F.reshape(x, tuple(v for d in x.shape for v in (1, d)))
    big = F.broadcast_to(spread, tuple(v for r, d in zip(reps, x.shape) for v in (r, d)))
    return F.reshape(big, tuple(r * d for r, d in zip(reps, x.shape)))


# -- padding -----------------------------------------------------------------------------------
def _pad_indices(mode: str, d: int, lo: int, hi: int) -> np.ndarray:
    i = np.arange(-lo, d + hi)
    if mode == "edge":
        return np.clip(i, 0, d - 1)
    if mode == "wrap":
        return np.mod(i, d)
    if d == 1:                                   # reflect
        return np.zeros_like(i)
    period = 2 * (d - 1)
    j = np.mod(i, period)
    return np.where(j >= d, period - j, j)


@onnx_op("Pad", versions=(2, 11, 13, 18, 19, 21, 23, 24, 25))
def pad(ctx):
    x = ctx.tensor(0)
    rank = x.ndim
    mode = ctx.attr("mode", "constant")
    if ctx.version < 11:
        pads, value, axes = ctx.attr("pads"), ctx.attr("value", 0.0), None
    else:
        pads = ctx.const_ints(1, "pads")
        value = ctx.const(2, "the padding value").reshape(-1) if ctx.has(2) else [0]
        value = value[0] if len(value) else 0
        axes = ctx.const_ints(3, "axes") if ctx.has(3) else None
    axes = list(range(rank)) if axes is None else norm_axes(ctx, axes, rank)
    if len(pads) != 2 * len(axes):
        ctx.unsupported(f"{len(pads)} pads for {len(axes)} axes (expected {2 * len(axes)})")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        ctx.unsupported(f"mode={mode!r}")
    lo = [0] * rank
    hi = [0] * rank
    for k, a in enumerate(axes):
        lo[a], hi[a] = pads[k], pads[k + len(axes)]
    if any(isinstance(p, SymDim) for p in lo + hi):
        ctx.unsupported("symbolic pads")
    # negative pads crop
    crop = [slice(-p if p < 0 else None, (x.shape[a] + q if q < 0 else None))
            for a, (p, q) in enumerate(zip(lo, hi))]
    if any(p < 0 for p in lo + hi):
        for a, (p, q) in enumerate(zip(lo, hi)):
            if (p < 0 or q < 0) and isinstance(x.shape[a], SymDim):
                crop[a] = _symbolic_bounds(ctx, slice(-p if p < 0 else 0,
                                                      q if q < 0 else None, 1), a)
        x = F.getitem(x, tuple(crop))
    lo = [max(p, 0) for p in lo]
    hi = [max(q, 0) for q in hi]
    if mode == "constant":
        if not x.dtype.is_float:
            value = int(value)
        return F.pad(x, list(zip(lo, hi)), float(value))
    for a in range(rank):
        if lo[a] or hi[a]:
            d = static_dims(ctx, (x.shape[a],), f"mode={mode!r} padding of axis {a}")[0]
            if d == 0:
                ctx.unsupported(f"mode={mode!r} padding of the empty axis {a}")
            x = F.take(x, _pad_indices(mode, d, lo[a], hi[a]), a)
    return x


# -- constants ---------------------------------------------------------------------------------
@onnx_op("Constant", versions=(1, 9, 11, 12, 13, 19, 21, 23, 24, 25))
def constant(ctx):
    kinds = {"value": None, "value_float": np.float32, "value_floats": np.float32,
             "value_int": np.int64, "value_ints": np.int64}
    for name, np_dtype in kinds.items():
        if ctx.has_attr(name):
            v = ctx.attr(name)
            return Const(np.array(v, np_dtype) if np_dtype is not None else np.asarray(v))
    for name in ("sparse_value", "value_string", "value_strings"):
        if ctx.has_attr(name):
            ctx.unsupported(f"attribute {name} (graphc has no sparse or string tensors)")
    ctx.unsupported("it has no value attribute")


@onnx_op("ConstantOfShape", versions=(9, 20, 21, 23, 24, 25))
def constant_of_shape(ctx):
    dims = ctx.const_ints(0, "the shape")
    value = ctx.attr("value", None)
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    if len(value) != 1:
        ctx.unsupported(f"value must hold one element, found {len(value)}")
    if all(is_int_dim(d) for d in dims) and product(dims) <= 4096:
        return Const(np.full(tuple(dims), value[0], value.dtype))
    return F.broadcast_to(const_tensor(value.reshape(())), tuple(dims))


@onnx_op("Range", versions=(11,))
def range_(ctx):
    start, limit, delta = (ctx.const(i, name).reshape(()) for i, name in
                           enumerate(("start", "limit", "delta")))
    if all(v.dtype != object for v in (start, limit, delta)):
        return Const(np.arange(start, limit, delta, dtype=start.dtype))
    # a symbolic bound: with unit steps the length is a (symbolic) dim, so an iota does it
    s, lim, step = (v[()] for v in (start, limit, delta))
    if isinstance(s, SymDim) or isinstance(step, SymDim) or step != 1:
        ctx.unsupported("a Range with symbolic bounds needs an int start and a step of 1")
    dtype = graphc_dtype_of(ctx, ctx.value(0).dtype)
    line = emit("iota", [], {"shape": (lim - int(s),), "axis": 0, "dtype": dtype})
    return line if int(s) == 0 else F.add(line, int(s))


def graphc_dtype_of(ctx, np_dtype):
    try:
        return dt.dtype(np_dtype)
    except Exception:
        ctx.unsupported(f"dtype {np_dtype}")
