"""Small helpers shared by the op handlers."""
from __future__ import annotations

import numpy as np

from ir import dtypes as dt
from ir.symbolic import SymDim

from ...tensor import constant, emit
from ..values import Const


def norm_axis(ctx, axis: int, rank: int, what: str = "axis") -> int:
    """An ONNX axis (negative counts from the end) as a non-negative int, checked."""
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        ctx.unsupported(f"{what} {axis} is out of range for rank {rank}")
    return axis % max(rank, 1)


def norm_axes(ctx, axes, rank: int, what: str = "axes") -> list:
    out = [norm_axis(ctx, a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        ctx.unsupported(f"{what} {list(axes)} repeat an axis")
    return out


def symbolic_const(ctx, i: int) -> bool:
    """Input i is a Const holding symbolic dims (so shape handlers compute it with numpy)."""
    v = ctx.value(i) if ctx.has(i) else None
    return isinstance(v, Const) and v.symbolic


def any_symbolic(ctx) -> bool:
    return any(symbolic_const(ctx, i) for i in range(ctx.n_inputs))


def object_array(arr: np.ndarray) -> np.ndarray:
    """`arr` as an object array of Python ints / SymDims (for symbolic shape arithmetic)."""
    if arr.dtype == object:
        return arr
    out = np.empty(arr.shape, object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = int(v)
    return out


def is_int_dim(d) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool)


def static_dims(ctx, shape, what: str) -> tuple:
    """The shape as ints; unsupported error naming `what` when a dim is symbolic."""
    if any(isinstance(d, SymDim) for d in shape):
        ctx.unsupported(f"{what} needs static dims, found a symbolic shape "
                        f"[{', '.join(str(d) for d in shape)}]")
    return tuple(int(d) for d in shape)


def dim_scalar(d, dtype=None):
    """A scalar Tensor holding dim d: a constant, or the runtime value of a symbolic dim."""
    dtype = dtype or dt.i64
    if isinstance(d, SymDim):
        return emit("dim_value", [], {"dim": d, "dtype": dtype})
    return constant(np.array(int(d), dtype.np_dtype))
