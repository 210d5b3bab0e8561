"""2-D pooling on NCHW tensors and the gradients of pooling.

Window placement follows PyTorch/ONNX: out = floor((H + pad_top + pad_bottom - K) / s) + 1, or
ceil with ceil_mode, where a last window that would start past the input and top padding is
dropped. max_pool2d pads with -inf; its gradient sends dy to the first maximum of each window
(scan order, a NaN counting as the maximum, padding never winning a tie). avg_pool2d divides
by the window area clipped to the padded input (count_include_pad) or to the real input (not
count_include_pad).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import ShapeError
from ..opdef import Cost, OpDef, register
from ..symbolic import product
from ..types import TensorType
from ._common import require_dtype, require_rank, require_same_dtype, require_static

POOL_ATTRS = {
    "kernel": AttrSpec("ints", doc="(KH, KW)"),
    "stride": AttrSpec("ints", (1, 1), "(sh, sw)"),
    "padding": AttrSpec("ints", (0, 0, 0, 0), "(top, left, bottom, right)"),
    "ceil_mode": AttrSpec("bool", False),
}
AVG_ATTRS = dict(POOL_ATTRS, count_include_pad=AttrSpec("bool", True))


def pool_out_size(op, size, k, s, lo, hi, ceil_mode, operands=None):
    span = size + lo + hi - k
    if span < 0:
        found = f" (operand {', '.join(map(str, operands))})" if operands else ""
        raise ShapeError(f"{op}: the {k}-wide window is larger than the padded input "
                         f"({size + lo + hi}){found}")
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + lo:
        out -= 1
    return out


def pool_output_hw(op, hw, attrs, operands=None):
    k, s, p, c = attrs["kernel"], attrs["stride"], attrs["padding"], attrs["ceil_mode"]
    if len(k) != 2 or min(k) < 1:
        raise ShapeError(f"{op}: kernel must be two positive ints, found {k}")
    if len(s) != 2 or min(s) < 1:
        raise ShapeError(f"{op}: stride must be two positive ints, found {s}")
    if len(p) != 4 or min(p) < 0:
        raise ShapeError(f"{op}: padding must be four non-negative ints, found {p}")
    return (pool_out_size(op, hw[0], k[0], s[0], p[0], p[2], c, operands),
            pool_out_size(op, hw[1], k[1], s[1], p[1], p[3], c, operands))


def _check_input(op, x):
    require_rank(op, x, 4, "input (N, C, H, W)")
    require_dtype(op, x, dt.FLOAT_DTYPES, "pooling")
    require_static(op, x.shape[2:], "spatial dims", [x])


def _pool_infer(op):
    def infer(ins, attrs):
        x = ins[0]
        _check_input(op, x)
        oh, ow = pool_output_hw(op, x.shape[2:], attrs, [x])
        return [TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)]
    return infer


def _extent(size, lo, out, k, s):
    """Padded extent that covers every window, and the extra padding past `hi` it needs."""
    return (out - 1) * s + k


def _padded(x, attrs, out_hw, fill):
    p, k, s = attrs["padding"], attrs["kernel"], attrs["stride"]
    eh = max(_extent(x.shape[2], p[0], out_hw[0], k[0], s[0]), x.shape[2] + p[0] + p[2])
    ew = max(_extent(x.shape[3], p[1], out_hw[1], k[1], s[1]), x.shape[3] + p[1] + p[3])
    out = np.full(x.shape[:2] + (eh, ew), fill, x.dtype)
    out[:, :, p[0]:p[0] + x.shape[2], p[1]:p[1] + x.shape[3]] = x
    return out


def _windows(attrs, out_hw):
    """(i, j, index expression) for every kernel position."""
    k, s = attrs["kernel"], attrs["stride"]
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, (slice(None), slice(None),
                         slice(i, i + s[0] * (out_hw[0] - 1) + 1, s[0]),
                         slice(j, j + s[1] * (out_hw[1] - 1) + 1, s[1]))


def _crop(xp, x_shape, attrs):
    p = attrs["padding"]
    return np.ascontiguousarray(xp[:, :, p[0]:p[0] + x_shape[2], p[1]:p[1] + x_shape[3]])


def max_pool2d_reference(x, attrs):
    out_hw = pool_output_hw("max_pool2d", x.shape[2:], attrs)
    xp = _padded(x, attrs, out_hw, -np.inf)
    out = np.full(x.shape[:2] + out_hw, -np.inf, x.dtype)
    for _, _, idx in _windows(attrs, out_hw):
        out = np.maximum(out, xp[idx])     # np.maximum propagates NaN
    return out


def _avg_divisor(x_shape, attrs, out_hw, dtype):
    p = attrs["padding"]
    mask = np.zeros((1, 1) + tuple(x_shape[2:]), dtype)
    if attrs["count_include_pad"]:
        hp, wp = x_shape[2] + p[0] + p[2], x_shape[3] + p[1] + p[3]
        full = np.zeros((1, 1, max(hp, (out_hw[0] - 1) * attrs["stride"][0] + attrs["kernel"][0]),
                         max(wp, (out_hw[1] - 1) * attrs["stride"][1] + attrs["kernel"][1])), dtype)
        full[:, :, :hp, :wp] = 1
    else:
        full = _padded(mask + 1, attrs, out_hw, 0)
    div = np.zeros((1, 1) + out_hw, dtype)
    for _, _, idx in _windows(attrs, out_hw):
        div += full[idx]
    return div


def avg_pool2d_reference(x, attrs):
    out_hw = pool_output_hw("avg_pool2d", x.shape[2:], attrs)
    xp = _padded(x, attrs, out_hw, 0)
    acc = np.zeros(x.shape[:2] + out_hw, x.dtype)
    for _, _, idx in _windows(attrs, out_hw):
        acc += xp[idx]
    return (acc / _avg_divisor(x.shape, attrs, out_hw, x.dtype)).astype(x.dtype)


def _pool_cost(ins, outs, attrs):
    k = attrs["kernel"]
    return Cost(product(outs[0].shape) * k[0] * k[1],
                sum((t.nbytes for t in list(ins) + list(outs)), 0))


register(OpDef("max_pool2d", ("x",), dict(POOL_ATTRS), _pool_infer("max_pool2d"),
               lambda ins, a: max_pool2d_reference(ins[0], a), fusion="opaque", cost=_pool_cost,
               doc="maximum over each window (padding is -inf)"))
register(OpDef("avg_pool2d", ("x",), dict(AVG_ATTRS), _pool_infer("avg_pool2d"),
               lambda ins, a: avg_pool2d_reference(ins[0], a), fusion="opaque", cost=_pool_cost,
               doc="mean over each window"))


# -- gradients ---------------------------------------------------------------------------------
def _max_grad_infer(ins, attrs):
    x, dy = ins
    op = "max_pool2d_grad"
    _check_input(op, x)
    require_same_dtype(op, ins)
    oh, ow = pool_output_hw(op, x.shape[2:], attrs, ins)
    expect = (x.shape[0], x.shape[1], oh, ow)
    if tuple(dy.shape) != expect:
        raise ShapeError(f"{op}: input {x} pools to {TensorType(expect, x.dtype)}, but the "
                         f"gradient is {dy}")
    return [x]


def max_pool2d_grad_reference(x, dy, attrs):
    out_hw = tuple(dy.shape[2:])
    xp = _padded(x, attrs, out_hw, -np.inf)
    real = _padded(np.ones((1, 1) + x.shape[2:], bool), attrs, out_hw, False)
    stacked = np.stack([xp[idx] for _, _, idx in _windows(attrs, out_hw)], axis=-1)
    in_x = np.stack([np.broadcast_to(real[idx], stacked.shape[:-1])
                     for _, _, idx in _windows(attrs, out_hw)], axis=-1)
    # The first real position holding the window's maximum (or its first NaN). Padding never
    # wins a tie, so a window of -inf values still sends dy to an element of x.
    top = np.max(np.where(in_x, stacked, -np.inf), axis=-1, keepdims=True)
    first_max = np.argmax(in_x & ((stacked == top) | np.isnan(stacked)), axis=-1)
    dxp = np.zeros_like(xp)
    for pos, (_, _, idx) in enumerate(_windows(attrs, out_hw)):
        dxp[idx] += np.where(first_max == pos, dy, 0).astype(x.dtype)
    return _crop(dxp, x.shape, attrs)


def _avg_grad_infer(ins, attrs):
    (dy,) = ins
    op = "avg_pool2d_grad"
    require_rank(op, dy, 4, "output gradient (N, C, OH, OW)")
    require_dtype(op, dy, dt.FLOAT_DTYPES, "pooling")
    hw = attrs["input_hw"]
    if len(hw) != 2:
        raise ShapeError(f"{op}: input_hw must be (H, W), found {hw}")
    oh, ow = pool_output_hw(op, hw, attrs, ins)
    if (oh, ow) != tuple(dy.shape[2:]):
        raise ShapeError(f"{op}: an input of {hw[0]}x{hw[1]} pools to {oh}x{ow}, but the "
                         f"gradient is {dy}")
    require_static(op, dy.shape[2:], "spatial dims", [dy])
    return [TensorType((dy.shape[0], dy.shape[1], hw[0], hw[1]), dy.dtype)]


def avg_pool2d_grad_reference(dy, attrs):
    hw = tuple(attrs["input_hw"])
    out_hw = tuple(dy.shape[2:])
    x_shape = dy.shape[:2] + hw
    scaled = dy / _avg_divisor(x_shape, attrs, out_hw, dy.dtype)
    dxp = _padded(np.zeros(x_shape, dy.dtype), attrs, out_hw, 0)
    for _, _, idx in _windows(attrs, out_hw):
        dxp[idx] += scaled
    return _crop(dxp, x_shape, attrs)


register(OpDef("max_pool2d_grad", ("x", "dy"), dict(POOL_ATTRS), _max_grad_infer,
               lambda ins, a: max_pool2d_grad_reference(ins[0], ins[1], a), fusion="opaque",
               cost=_pool_cost, doc="dL/dx of max_pool2d: dy goes to each window's first max"))
register(OpDef("avg_pool2d_grad", ("dy",),
               dict(AVG_ATTRS, input_hw=AttrSpec("ints", doc="(H, W) of the forward input")),
               _avg_grad_infer, lambda ins, a: avg_pool2d_grad_reference(ins[0], a),
               fusion="opaque", cost=_pool_cost,
               doc="dL/dx of avg_pool2d: dy / window size spread over each window"))
