"""Pooling ONNX ops: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

2-D pooling without dilation maps onto graphc's pooling primitives (1-D pooling too, over a
height of 1). Other forms (3-D, dilated) are built from one strided slice per kernel position
combined with maximum/add, after padding the input so every window is in range; the average's
divisor is a constant computed here (windows are boxes, so it is a product of per-axis counts).
Window placement follows ONNX: out = floor or ceil((in + pads - dilated kernel) / stride) + 1,
and with ceil_mode a last window that would start past the input and its begin padding is
dropped.
"""
from __future__ import annotations

import itertools

import numpy as np

from ir import dtypes as dt

from ... import functional as F
from ...tensor import emit
from ..context import onnx_op
from .common import static_dims
from .nn import conv_geometry


def _out_size(size, k, s, d, lo, hi, ceil_mode):
    eff = (k - 1) * d + 1
    span = size + lo + hi - eff
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + lo:
        out -= 1
    return out


def _pool(ctx, kind: str):
    x = ctx.tensor(0)
    n = x.ndim - 2
    if n < 1:
        ctx.unsupported(f"the input must be (N, C, spatial...), found {x.type}")
    spatial = static_dims(ctx, x.shape[2:], f"{ctx.op_type}'s spatial axes")
    kernel = list(ctx.attr("kernel_shape"))
    if len(kernel) != n:
        ctx.unsupported(f"kernel_shape {kernel} does not fit {n} spatial axes")
    strides, dilations, pads = conv_geometry(ctx, spatial, kernel)
    ceil_mode = bool(ctx.attr("ceil_mode", 0)) if ctx.version >= 10 else False
    include_pad = bool(ctx.attr("count_include_pad", 0)) if kind == "avg" else False
    order = ctx.attr("storage_order", 0) if kind == "max" else 0
    if kind == "max" and ctx.wants(1):
        return _max_with_indices(x, spatial, kernel, strides, dilations, pads, ceil_mode,
                                 order)
    if n <= 2 and all(d == 1 for d in dilations):
        return _primitive(x, n, kind, kernel, strides, pads, ceil_mode, include_pad)
    return _by_slices(x, spatial, kind, kernel, strides, dilations, pads, ceil_mode,
                      include_pad)


def _primitive(x, n, kind, kernel, strides, pads, ceil_mode, include_pad):
    if n == 1:
        x = F.reshape(x, tuple(x.shape[:2]) + (1, x.shape[2]))
        kernel, strides, pads = [1] + kernel, [1] + strides, [0, pads[0], 0, pads[1]]
    if kind == "max":
        y = F.max_pool2d(x, tuple(kernel), tuple(strides), tuple(pads), ceil_mode)
    else:
        y = F.avg_pool2d(x, tuple(kernel), tuple(strides), tuple(pads), ceil_mode, include_pad)
    return F.reshape(y, tuple(y.shape[:2]) + (y.shape[3],)) if n == 1 else y


def _windows(x, spatial, kernel, strides, dilations, pads, ceil_mode, fill):
    """(output sizes, [(kernel offsets, strided slice of the padded input)] per position)."""
    n = len(spatial)
    outs = [_out_size(spatial[i], kernel[i], strides[i], dilations[i], pads[i], pads[i + n],
                      ceil_mode) for i in range(n)]
    extent = [max((outs[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1,
                  spatial[i] + pads[i] + pads[i + n]) for i in range(n)]
    widths = [(0, 0), (0, 0)] + [(pads[i], extent[i] - spatial[i] - pads[i]) for i in range(n)]
    xp = F.pad(x, widths, fill)
    parts = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None), slice(None)) + tuple(
            slice(j * d, j * d + (o - 1) * s + 1, s)
            for j, d, o, s in zip(offsets, dilations, outs, strides))
        parts.append((offsets, F.getitem(xp, index)))
    return outs, parts


def _max_with_indices(x, spatial, kernel, strides, dilations, pads, ceil_mode, order):
    """MaxPool with its Indices output: the flat index (into x, row-major, or column-major over
    the spatial axes when storage_order=1) of each window's first maximum."""
    n = len(spatial)
    outs, parts = _windows(x, spatial, kernel, strides, dilations, pads, ceil_mode,
                           float("-inf"))
    if order:
        weights = [int(np.prod(spatial[:i])) for i in range(n)]
    else:
        weights = [int(np.prod(spatial[i + 1:])) for i in range(n)]
    best = idx = None
    for offsets, part in parts:
        pos = np.zeros(tuple(outs), np.int64)
        for i in range(n):
            p = np.arange(outs[i]) * strides[i] + offsets[i] * dilations[i] - pads[i]
            shape = [1] * n
            shape[i] = outs[i]
            pos = pos + (p * weights[i]).reshape(shape)
        if best is None:
            best, idx = part, F.broadcast_to(pos, tuple(part.shape))
            continue
        take = F.greater(part, best)
        best = F.where(take, part, best)
        idx = F.where(take, pos, idx)
    shape = tuple(best.shape)
    size = int(np.prod(spatial))
    n_idx = emit("iota", [], {"shape": shape, "axis": 0, "dtype": dt.i64})
    c_idx = emit("iota", [], {"shape": shape, "axis": 1, "dtype": dt.i64})
    base = F.multiply(F.add(F.multiply(n_idx, x.shape[1]), c_idx), size)
    return [best, F.add(base, idx)]


def _by_slices(x, spatial, kind, kernel, strides, dilations, pads, ceil_mode, include_pad):
    n = len(spatial)
    outs, parts = _windows(x, spatial, kernel, strides, dilations, pads, ceil_mode,
                           float("-inf") if kind == "max" else 0.0)
    acc = None
    for _, part in parts:
        acc = part if acc is None else (F.maximum(acc, part) if kind == "max"
                                        else F.add(acc, part))
    if kind == "max":
        return acc
    divisor = np.ones((), np.float64)
    for i in range(n):
        lo, hi = (-pads[i], spatial[i] + pads[i + n]) if include_pad else (0, spatial[i])
        start = np.arange(outs[i]) * strides[i] - pads[i]
        pos = start[:, None] + np.arange(kernel[i])[None, :] * dilations[i]
        count = ((pos >= lo) & (pos < hi)).sum(axis=1)
        divisor = np.multiply.outer(divisor, count)
    return F.divide(acc, divisor.astype(x.dtype.np_dtype))


@onnx_op("MaxPool", versions=(8, 10, 11, 12, 22))
def max_pool(ctx):
    return _pool(ctx, "max")


@onnx_op("AveragePool", versions=(7, 10, 11, 19, 22))
def average_pool(ctx):
    return _pool(ctx, "avg")


@onnx_op("GlobalAveragePool", "GlobalMaxPool", versions=(1, 22))
def global_pool(ctx):
    x = ctx.tensor(0)
    axes = tuple(range(2, x.ndim))
    fn = F.mean if ctx.op_type == "GlobalAveragePool" else F.max
    return fn(x, axes, keepdims=True)
