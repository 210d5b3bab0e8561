"""Reduction ONNX ops: ReduceSum/Mean/Max/Min (and the L1/L2/LogSum/LogSumExp/SumSquare
compositions), ArgMax/ArgMin, Softmax, LogSoftmax.

Older versions take `axes` as an attribute, newer ones as an optional input (ReduceSum from
13, the others from 18); with no axes the whole tensor is reduced, unless
noop_with_empty_axes=1 makes the op an identity.
"""
from __future__ import annotations

import numpy as np

from ir.symbolic import product

from ... import functional as F
from ..context import onnx_op
from .common import norm_axes, norm_axis

# version from which `axes` is an input
_AXES_INPUT_SINCE = {"ReduceSum": 13}


def _axes(ctx, rank: int):
    """The reduced axes (sorted), or None for 'no reduction at all'."""
    if ctx.version >= _AXES_INPUT_SINCE.get(ctx.op_type, 18):
        axes = ctx.const_ints(1, "axes") if ctx.has(1) else []
        noop = ctx.attr("noop_with_empty_axes", 0)
        if not axes:
            return None if noop else list(range(rank))
    else:
        axes = ctx.attr("axes", None)
        if axes is None:
            return list(range(rank))
    return sorted(norm_axes(ctx, axes, rank))


def _reduce(ctx, fn, x):
    axes = _axes(ctx, x.ndim)
    keep = bool(ctx.attr("keepdims", 1))
    if axes is None:
        return x
    if not axes:
        return x
    return fn(x, tuple(axes), keep)


@onnx_op("ReduceSum", versions=(1, 11, 13))
@onnx_op("ReduceMean", versions=(1, 11, 13, 18))
@onnx_op("ReduceMax", "ReduceMin", versions=(1, 11, 12, 13, 18, 20))
@onnx_op("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
         versions=(1, 11, 13, 18))
def reduce(ctx):
    x = ctx.tensor(0)
    op = ctx.op_type
    if op == "ReduceMean" and not x.dtype.is_float:
        ctx.unsupported(f"ReduceMean of {x.type} (graphc averages float tensors)")
    if op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"):
        fn = {"ReduceSum": F.sum, "ReduceMean": F.mean, "ReduceMax": F.max,
              "ReduceMin": F.min}[op]
        return _reduce(ctx, fn, x)
    if op == "ReduceL1":
        return _reduce(ctx, F.sum, F.abs(x))
    if op == "ReduceSumSquare":
        return _reduce(ctx, F.sum, F.multiply(x, x))
    if op == "ReduceL2":
        return F.sqrt(_reduce(ctx, F.sum, F.multiply(x, x)))
    if op == "ReduceLogSum":
        return F.log(_reduce(ctx, F.sum, x))
    return _reduce(ctx, F.logsumexp, x)


@onnx_op("ArgMax", "ArgMin", versions=(1, 11, 12, 13))
def argmax(ctx):
    x = ctx.tensor(0)
    axis = norm_axis(ctx, ctx.attr("axis", 0), x.ndim)
    keep = bool(ctx.attr("keepdims", 1))
    last = ctx.attr("select_last_index", 0)
    if ctx.op_type == "ArgMin":
        x = F.negative(x)
    if not last:
        return F.argmax(x, axis, keep)
    n = x.shape[axis]
    if not isinstance(n, int):
        ctx.unsupported("select_last_index=1 on a symbolic axis")
    flipped = F.take(x, np.arange(n - 1, -1, -1, dtype=np.int64), axis)
    return F.subtract(n - 1, F.argmax(flipped, axis, keep))


def _softmax(ctx, fn):
    x = ctx.tensor(0)
    if ctx.version >= 13:
        return fn(x, norm_axis(ctx, ctx.attr("axis", -1), x.ndim))
    # before opset 13 the input is viewed as 2-D [prod(shape[:axis]), prod(shape[axis:])]
    axis = norm_axis(ctx, ctx.attr("axis", 1), x.ndim)
    flat = F.reshape(x, (product(x.shape[:axis]), product(x.shape[axis:])))
    return F.reshape(fn(flat, 1), tuple(x.shape))


@onnx_op("Softmax", versions=(1, 11, 13))
def softmax(ctx):
    return _softmax(ctx, F.softmax)


@onnx_op("LogSoftmax", versions=(1, 11, 13))
def log_softmax(ctx):
    return _softmax(ctx, F.log_softmax)
