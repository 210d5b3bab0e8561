"""VJP rules for conv2d, its two gradient forms, and pooling with its gradients.

conv2d is bilinear in (x, w) and its gradient forms are its adjoints, so the three ops close
under differentiation (double backward, e.g. a WGAN-GP gradient penalty, needs this):
    conv2d(x, w)               dx = conv2d_grad_input(dy, w)     dw = conv2d_grad_filter(x, dy)
    conv2d_grad_input(dy, w)   d(dy) = conv2d(g, w)              dw = conv2d_grad_filter(g, dy)
    conv2d_grad_filter(x, dy)  dx = conv2d_grad_input(dy, G)     d(dy) = conv2d(x, G)
(g, G: the cotangents of the gradient forms' outputs), all with the forward's stride, padding,
dilation and groups.

Pooling: max_pool2d -> max_pool2d_grad; avg_pool2d <-> avg_pool2d_grad (each is the other's
adjoint: same windows, same divisors). max_pool2d_grad(x, dy) is linear in dy; its adjoint
reads, for every window, the cotangent at the window's first maximum (the same rule as
max_pool2d_grad's reference: scan order, a NaN counting as the maximum, padding never winning a
tie). There is no primitive for that, so it is built from slices: one equal/select per kernel
position, plus a constant mask where a position can fall in the padding. Its dependence on x
is piecewise constant (x only picks which element is the maximum), so x gets no gradient from
it: that is the exact derivative wherever the window maxima are unique.
"""
from __future__ import annotations

import math

import numpy as np

CONV_KEYS = ("stride", "padding", "dilation", "groups")
POOL_KEYS = ("kernel", "stride", "padding", "ceil_mode")


def _conv_attrs(node):
    return {k: node.attrs[k] for k in CONV_KEYS}


def _conv2d(ctx, node, dy, needs):
    x, w = node.inputs
    attrs = _conv_attrs(node)
    dx = dw = None
    if needs[0]:
        dx = ctx.emit("conv2d_grad_input", [dy, w], input_hw=x.shape[2:], **attrs)
    if needs[1]:
        dw = ctx.emit("conv2d_grad_filter", [x, dy], kernel_hw=w.shape[2:], **attrs)
    return (dx, dw)


def _conv2d_grad_input(ctx, node, g, needs):
    dy, w = node.inputs
    attrs = _conv_attrs(node)
    d_dy = dw = None
    if needs[0]:
        d_dy = ctx.emit("conv2d", [g, w], **attrs)
    if needs[1]:
        dw = ctx.emit("conv2d_grad_filter", [g, dy], kernel_hw=w.shape[2:], **attrs)
    return (d_dy, dw)


def _conv2d_grad_filter(ctx, node, g, needs):
    x, dy = node.inputs
    attrs = _conv_attrs(node)
    dx = d_dy = None
    if needs[0]:
        dx = ctx.emit("conv2d_grad_input", [dy, g], input_hw=x.shape[2:], **attrs)
    if needs[1]:
        d_dy = ctx.emit("conv2d", [x, g], **attrs)
    return (dx, d_dy)


def _pool_attrs(node):
    return {k: node.attrs[k] for k in POOL_KEYS}


def _max_pool2d(ctx, node, dy, needs):
    (x,) = node.inputs
    return (ctx.emit("max_pool2d_grad", [x, dy], **_pool_attrs(node)),)


def _avg_pool2d(ctx, node, dy, needs):
    (x,) = node.inputs
    return (ctx.emit("avg_pool2d_grad", [dy], input_hw=x.shape[2:],
                     count_include_pad=node.attrs["count_include_pad"], **_pool_attrs(node)),)


def _avg_pool2d_grad(ctx, node, g, needs):
    return (ctx.emit("avg_pool2d", [g], count_include_pad=node.attrs["count_include_pad"],
                     **_pool_attrs(node)),)


def _max_pool2d_grad(ctx, node, g, needs):
    """d(dy)[window] = g at the window's first maximum of x; x gets nothing (see docstring)."""
    x, dy = node.inputs
    if not needs[1]:
        return (None, None)
    attrs = _pool_attrs(node)
    (kh, kw), (sh, sw), pad = attrs["kernel"], attrs["stride"], attrs["padding"]
    n, c, h, w = x.shape
    oh, ow = dy.shape[2], dy.shape[3]
    # The padded extent that covers every window (ceil_mode windows may run past the padding),
    # exactly as the max_pool2d reference lays it out.
    eh = max((oh - 1) * sh + kh, h + pad[0] + pad[2])
    ew = max((ow - 1) * sw + kw, w + pad[1] + pad[3])
    low, high = (0, 0, pad[0], pad[1]), (0, 0, eh - h - pad[0], ew - w - pad[1])
    xp = ctx.pad(x, low, high, value=-math.inf)
    gp = ctx.pad(g, low, high, value=0.0)
    peak = ctx.emit("max_pool2d", [x], **attrs)
    out = ctx.zeros(dy.type)
    # Later kernel positions first, so the first maximum in scan order is written last.
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            starts = (0, 0, i, j)
            stops = (n, c, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1)
            steps = (1, 1, sh, sw)
            xs = ctx.slice(xp, starts, stops, steps)
            gs = ctx.slice(gp, starts, stops, steps)
            is_max = ctx.emit("equal", [xs, peak])
            is_nan = ctx.emit("not_equal", [xs, xs])   # a NaN is the maximum of its window
            hit = ctx.emit("logical_or", [is_max, is_nan])
            real = _real_positions(i, j, attrs, h, w, oh, ow)
            if real is not None:                         # padding never wins a tie
                mask = ctx.emit("constant", [], value=real)
                hit = ctx.emit("logical_and", [hit, ctx.broadcast(mask, dy.shape, range(4))])
            out = ctx.select(hit, gs, out)
    return (None, out)


def _real_positions(i, j, attrs, h, w, oh, ow):
    """bool[1,1,OH,OW]: which windows have kernel position (i, j) inside x rather than in its
    padding; None when all do (no mask needed). Static: it depends only on shapes and attrs."""
    (sh, sw), pad = attrs["stride"], attrs["padding"]
    rows = pad[0] <= i + sh * np.arange(oh)
    rows &= i + sh * np.arange(oh) < pad[0] + h
    cols = pad[1] <= j + sw * np.arange(ow)
    cols &= j + sw * np.arange(ow) < pad[1] + w
    if rows.all() and cols.all():
        return None
    return np.logical_and.outer(rows, cols).reshape(1, 1, oh, ow)


RULES = {
    "conv2d": _conv2d, "conv2d_grad_input": _conv2d_grad_input,
    "conv2d_grad_filter": _conv2d_grad_filter,
    "max_pool2d": _max_pool2d, "max_pool2d_grad": _max_pool2d_grad,
    "avg_pool2d": _avg_pool2d, "avg_pool2d_grad": _avg_pool2d_grad,
}
