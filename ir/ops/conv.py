"""2-D convolution (NCHW activations, OIHW filters) and its two gradient forms.

conv2d(x[N,C,H,W], w[O,C/g,KH,KW]) with stride, padding (top, left, bottom, right), dilation
and groups. conv2d_grad_input(dy, w) gives dL/dx (it needs the input's H, W: several input
sizes give one output size when stride > 1); conv2d_grad_filter(x, dy) gives dL/dw. The numpy
references loop over kernel positions and contract channels with einsum: simple, exact and
fast enough to be the oracle.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import ShapeError
from ..opdef import Cost, OpDef, register
from ..symbolic import product
from ..types import TensorType
from ._common import (require_dim_equal, require_dtype, require_rank, require_same_dtype,
                      require_static)

CONV_ATTRS = {
    "stride": AttrSpec("ints", (1, 1), "(sh, sw)"),
    "padding": AttrSpec("ints", (0, 0, 0, 0), "(top, left, bottom, right)"),
    "dilation": AttrSpec("ints", (1, 1), "(dh, dw)"),
    "groups": AttrSpec("int", 1),
}


def check_conv_attrs(op, attrs):
    s, p, d, g = attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"]
    if len(s) != 2 or min(s) < 1:
        raise ShapeError(f"{op}: stride must be two positive ints, found {s}")
    if len(p) != 4 or min(p) < 0:
        raise ShapeError(f"{op}: padding must be four non-negative ints "
                         f"(top, left, bottom, right), found {p}")
    if len(d) != 2 or min(d) < 1:
        raise ShapeError(f"{op}: dilation must be two positive ints, found {d}")
    if g < 1:
        raise ShapeError(f"{op}: groups must be positive, found {g}")


def conv_out_size(op, size, k, stride, pad_lo, pad_hi, dilation, axis_name, operands=None):
    eff = dilation * (k - 1) + 1
    span = size + pad_lo + pad_hi - eff
    if span < 0:
        found = f" (operands {', '.join(map(str, operands))})" if operands else ""
        raise ShapeError(f"{op}: the {axis_name} window ({eff} with dilation) is larger than the "
                         f"padded input ({size + pad_lo + pad_hi}){found}")
    return span // stride + 1


def conv_output_hw(op, hw, khw, attrs, operands=None):
    s, p, d = attrs["stride"], attrs["padding"], attrs["dilation"]
    return (conv_out_size(op, hw[0], khw[0], s[0], p[0], p[2], d[0], "height", operands),
            conv_out_size(op, hw[1], khw[1], s[1], p[1], p[3], d[1], "width", operands))


def _check_groups(op, c, o, g, types):
    if c % g or o % g:
        raise ShapeError(f"{op}: groups={g} must divide input channels {c} and output channels "
                         f"{o} (operands {', '.join(map(str, types))})")


def _conv2d_infer(ins, attrs):
    x, w = ins
    check_conv_attrs("conv2d", attrs)
    require_rank("conv2d", x, 4, "input (N, C, H, W)")
    require_rank("conv2d", w, 4, "filter (O, C/groups, KH, KW)")
    require_same_dtype("conv2d", ins)
    require_dtype("conv2d", x, dt.FLOAT_DTYPES, "convolution")
    require_static("conv2d", x.shape[1:] + w.shape, "channel and spatial dims", ins)
    g = attrs["groups"]
    _check_groups("conv2d", x.shape[1], w.shape[0], g, ins)
    require_dim_equal("conv2d", x.shape[1] // g, w.shape[1], "input channels / groups and the "
                      "filter's channel dim", ins)
    oh, ow = conv_output_hw("conv2d", x.shape[2:], w.shape[2:], attrs, ins)
    return [TensorType((x.shape[0], w.shape[0], oh, ow), x.dtype)]


def _window_slices(k_index, dilation, stride, count):
    start = k_index * dilation
    return slice(start, start + stride * (count - 1) + 1, stride)


def _pad_nchw(x, p, fill=0.0):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])), constant_values=fill)


def conv2d_reference(x, w, stride, padding, dilation, groups):
    n, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    g = groups
    oh, ow = conv_output_hw("conv2d", x.shape[2:], (kh, kw),
                            {"stride": stride, "padding": padding, "dilation": dilation})
    xp = _pad_nchw(x, padding).reshape(n, g, cg, x.shape[2] + padding[0] + padding[2],
                                       x.shape[3] + padding[1] + padding[3])
    wg = w.reshape(g, o // g, cg, kh, kw)
    out = np.zeros((n, g, o // g, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, :, _window_slices(i, dilation[0], stride[0], oh),
                       _window_slices(j, dilation[1], stride[1], ow)]
            out += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, i, j])
    return out.reshape(n, o, oh, ow)


register(OpDef("conv2d", ("x", "w"), dict(CONV_ATTRS), _conv2d_infer,
               lambda ins, a: conv2d_reference(ins[0], ins[1], a["stride"], a["padding"],
                                               a["dilation"], a["groups"]),
               fusion="contraction",
               cost=lambda i, o, a: Cost(2 * product(o[0].shape) * product(i[1].shape[1:]),
                                         i[0].nbytes + i[1].nbytes + o[0].nbytes),
               doc="2-D cross-correlation, NCHW x OIHW -> NOHW"))


# -- gradient with respect to the input --------------------------------------------------------
def _grad_input_infer(ins, attrs):
    dy, w = ins
    check_conv_attrs("conv2d_grad_input", attrs)
    require_rank("conv2d_grad_input", dy, 4, "output gradient (N, O, OH, OW)")
    require_rank("conv2d_grad_input", w, 4, "filter (O, C/groups, KH, KW)")
    require_same_dtype("conv2d_grad_input", ins)
    require_dtype("conv2d_grad_input", dy, dt.FLOAT_DTYPES, "convolution")
    require_static("conv2d_grad_input", dy.shape[1:] + w.shape, "channel and spatial dims",
                   ins)
    hw = attrs["input_hw"]
    if len(hw) != 2:
        raise ShapeError(f"conv2d_grad_input: input_hw must be (H, W), found {hw}")
    g = attrs["groups"]
    require_dim_equal("conv2d_grad_input", dy.shape[1], w.shape[0], "output channels", ins)
    if w.shape[0] % g:
        raise ShapeError(f"conv2d_grad_input: groups={g} must divide output channels {w.shape[0]}")
    oh, ow = conv_output_hw("conv2d_grad_input", hw, w.shape[2:], attrs, ins)
    if (oh, ow) != tuple(dy.shape[2:]):
        raise ShapeError(f"conv2d_grad_input: an input of {hw[0]}x{hw[1]} gives a {oh}x{ow} "
                         f"output, but the gradient is {dy}")
    return [TensorType((dy.shape[0], w.shape[1] * g, hw[0], hw[1]), dy.dtype)]


def conv2d_grad_input_reference(dy, w, input_hw, stride, padding, dilation, groups):
    n, o, oh, ow = dy.shape
    _, cg, kh, kw = w.shape
    g = groups
    hp, wp = input_hw[0] + padding[0] + padding[2], input_hw[1] + padding[1] + padding[3]
    dxp = np.zeros((n, g, cg, hp, wp), dy.dtype)
    dyg = dy.reshape(n, g, o // g, oh, ow)
    wg = w.reshape(g, o // g, cg, kh, kw)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, :, _window_slices(i, dilation[0], stride[0], oh),
                _window_slices(j, dilation[1], stride[1], ow)] += \
                np.einsum("ngohw,goc->ngchw", dyg, wg[:, :, :, i, j])
    dxp = dxp.reshape(n, g * cg, hp, wp)
    return np.ascontiguousarray(dxp[:, :, padding[0]:padding[0] + input_hw[0],
                                    padding[1]:padding[1] + input_hw[1]])


register(OpDef("conv2d_grad_input", ("dy", "w"),
               dict(CONV_ATTRS, input_hw=AttrSpec("ints", doc="(H, W) of the forward input")),
               _grad_input_infer,
               lambda ins, a: conv2d_grad_input_reference(ins[0], ins[1], a["input_hw"],
                                                          a["stride"], a["padding"],
                                                          a["dilation"], a["groups"]),
               fusion="contraction",
               cost=lambda i, o, a: Cost(2 * product(i[0].shape) * product(i[1].shape[1:]),
                                         i[0].nbytes + i[1].nbytes + o[0].nbytes),
               doc="dL/dx of conv2d given dL/dy and the filter (a transposed convolution)"))


# -- gradient with respect to the filter -------------------------------------------------------
def _grad_filter_infer(ins, attrs):
    x, dy = ins
    op = "conv2d_grad_filter"
    check_conv_attrs(op, attrs)
    require_rank(op, x, 4, "input (N, C, H, W)")
    require_rank(op, dy, 4, "output gradient (N, O, OH, OW)")
    require_same_dtype(op, ins)
    require_dtype(op, x, dt.FLOAT_DTYPES, "convolution")
    require_static(op, x.shape[1:] + dy.shape[1:], "channel and spatial dims", ins)
    require_dim_equal(op, x.shape[0], dy.shape[0], "batch dims", ins)
    khw, g = attrs["kernel_hw"], attrs["groups"]
    if len(khw) != 2 or min(khw) < 1:
        raise ShapeError(f"{op}: kernel_hw must be two positive ints, found {khw}")
    _check_groups(op, x.shape[1], dy.shape[1], g, ins)
    oh, ow = conv_output_hw(op, x.shape[2:], khw, attrs, ins)
    if (oh, ow) != tuple(dy.shape[2:]):
        raise ShapeError(f"{op}: input {x} with a {khw[0]}x{khw[1]} kernel gives a {oh}x{ow} "
                         f"output, but the gradient is {dy}")
    return [TensorType((dy.shape[1], x.shape[1] // g, khw[0], khw[1]), x.dtype)]


def conv2d_grad_filter_reference(x, dy, kernel_hw, stride, padding, dilation, groups):
    n, c, _, _ = x.shape
    _, o, oh, ow = dy.shape
    g, cg = groups, c // groups
    kh, kw = kernel_hw
    xp = _pad_nchw(x, padding)
    xp = xp.reshape(n, g, cg, xp.shape[2], xp.shape[3])
    dyg = dy.reshape(n, g, o // g, oh, ow)
    dw = np.zeros((g, o // g, cg, kh, kw), x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, :, _window_slices(i, dilation[0], stride[0], oh),
                       _window_slices(j, dilation[1], stride[1], ow)]
            dw[:, :, :, i, j] = np.einsum("ngohw,ngchw->goc", dyg, patch)
    return dw.reshape(o, cg, kh, kw)


register(OpDef("conv2d_grad_filter", ("x", "dy"),
               dict(CONV_ATTRS, kernel_hw=AttrSpec("ints", doc="(KH, KW) of the filter")),
               _grad_filter_infer,
               lambda ins, a: conv2d_grad_filter_reference(ins[0], ins[1], a["kernel_hw"],
                                                           a["stride"], a["padding"],
                                                           a["dilation"], a["groups"]),
               fusion="contraction",
               cost=lambda i, o, a: Cost(2 * product(i[1].shape) * product(o[0].shape[1:]),
                                         i[0].nbytes + i[1].nbytes + o[0].nbytes),
               doc="dL/dw of conv2d given the input and dL/dy"))
