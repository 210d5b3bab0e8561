"""Neural-network ops: matmul, linear, convolutions, pooling, dropout.

matmul follows numpy: 2-D, batched with broadcast batch dims, 1-D operands promoted to a
matrix and the added axis removed afterwards. A batched left operand times a 2-D weight folds
the batch axes into the rows (one 2-D matmul, no copy of the weight per batch entry).
Convolution and pooling are NCHW with OIHW filters, like the primitives.
"""
from __future__ import annotations

import numbers

import numpy as np

from ir import dtypes as _dt
from ir.errors import AttrError, DTypeError, ShapeError
from ir.location import user_frame_loc
from ir.symbolic import format_dim

from ..scope import node_path
from ..tensor import Tensor, as_tensor, current_trace, emit
from .broadcasting import broadcast_shapes, broadcast_to, require_same_dtype, tensor_operands
from .elementwise import add, greater_equal, multiply, where
from .reductions import mean
from .shapes import reshape


# -- matmul ------------------------------------------------------------------------------------
def matmul(a, b) -> Tensor:
    """a @ b with numpy semantics (see the module docstring)."""
    a, b = tensor_operands("matmul", a, b)
    require_same_dtype("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands need rank >= 1, found {a.type} @ {b.type} (use * to "
                         "scale by a scalar)", user_frame_loc(node_path("matmul")))
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ShapeError(f"matmul: the last dim of a ({format_dim(k_a)}) must equal the "
                         f"{'only' if b.ndim == 1 else 'second-to-last'} dim of b "
                         f"({format_dim(k_b)}), found {a.type} @ {b.type}",
                         user_frame_loc(node_path("matmul")))
    a_vec, b_vec = a.ndim == 1, b.ndim == 1
    if a_vec:
        a = reshape(a, (1, k_a))
    if b_vec:
        b = reshape(b, (k_b, 1))
    if b.ndim == 2 and a.ndim > 2:
        rows = a.shape[:-1]
        y = emit("matmul", [reshape(a, (-1, k_a)), b])
        y = reshape(y, rows + (b.shape[-1],))
    elif a.ndim == 2 and b.ndim == 2:
        y = emit("matmul", [a, b])
    else:
        try:
            batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
        except ShapeError as e:
            raise ShapeError(f"matmul: the batch dims of {a.type} @ {b.type} do not broadcast "
                             f"({e.message.split(': ', 2)[-1]})", e.loc) from None
        a = broadcast_to(a, batch + a.shape[-2:])
        b = broadcast_to(b, batch + b.shape[-2:])
        y = emit("matmul", [a, b])
    if a_vec or b_vec:
        shape = y.shape[:-2] + (() if a_vec else y.shape[-2:-1]) + (() if b_vec else y.shape[-1:])
        y = reshape(y, shape)
    return y


def linear(x, w, b=None) -> Tensor:
    """x @ w (+ b): w is (in_features, out_features), b is (out_features,)."""
    y = matmul(x, w)
    return y if b is None else add(y, b)


# -- argument parsing --------------------------------------------------------------------------
def _ints(op: str, name: str, value, n: int, allowed=(1,)) -> tuple:
    """An int expanded to n copies, or a tuple of one of the `allowed` lengths."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and all(
            isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)
            for v in value) and len(value) in allowed:
        return tuple(int(v) for v in value)
    lengths = " or ".join(str(k) for k in (1,) + tuple(allowed) if k != 1)
    raise AttrError(f"{op}: {name} must be an int or a tuple of {lengths} ints, found {value!r}",
                    user_frame_loc(node_path(op)))


def _pair(op, name, value):
    return _ints(op, name, value, 2, (2,))


def _padding4(op: str, value) -> tuple:
    """padding as (top, left, bottom, right) from p, (ph, pw) or (t, l, b, r)."""
    p = _ints(op, "padding", value, 4, (2, 4))
    return (p[0], p[1], p[0], p[1]) if len(p) == 2 else p


def _same_padding(hw, khw, stride, dilation) -> tuple:
    """TensorFlow-style "same": output ceil(H / stride); any odd padding goes bottom/right."""
    pads = []
    for size, k, s, d in zip(hw, khw, stride, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _nchw(op: str, x: Tensor, what: str = "input (N, C, H, W)") -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op} needs a rank-4 {what}, found {x.type}",
                         user_frame_loc(node_path(op)))


def _add_channel_bias(op: str, y: Tensor, b) -> Tensor:
    """y + b with b (C,) added along axis 1 of an NCHW tensor."""
    b = as_tensor(b, y, op)
    channels = y.shape[1]
    if tuple(b.shape) != (channels,):
        raise ShapeError(f"{op}: the bias must have shape [{format_dim(channels)}] (one value per "
                         f"output channel), found {b.type}", user_frame_loc(node_path("add")))
    require_same_dtype("add", y, b)
    spread = emit("broadcast", [b], {"shape": y.shape, "dims": (1,)})
    return emit("add", [y, spread])


# -- convolution -------------------------------------------------------------------------------
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of x (N, C, H, W) with filters w (O, C/groups, KH, KW), plus an
    optional bias b (O,). padding: p, (ph, pw), (top, left, bottom, right), "valid" (none) or
    "same" (output H/stride rounded up, extra padding at the bottom/right)."""
    x, w = tensor_operands("conv2d", x, w)
    _nchw("conv2d", x)
    _nchw("conv2d", w, "filter (O, C/groups, KH, KW)")
    stride, dilation = _pair("conv2d", "stride", stride), _pair("conv2d", "dilation", dilation)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            padding = (0, 0, 0, 0)
        elif mode == "same":
            if not all(isinstance(d, int) for d in x.shape[2:]):
                raise ShapeError(f"conv2d: padding='same' needs static H and W, found {x.type}",
                                 user_frame_loc(node_path("conv2d")))
            padding = _same_padding(x.shape[2:], w.shape[2:], stride, dilation)
        else:
            raise AttrError(f"conv2d: padding must be an int, a tuple, 'same' or 'valid', found "
                            f"{padding!r}", user_frame_loc(node_path("conv2d")))
    else:
        padding = _padding4("conv2d", padding)
    y = emit("conv2d", [x, w], {"stride": stride, "padding": padding, "dilation": dilation,
                                "groups": groups})
    return y if b is None else _add_channel_bias("conv2d", y, b)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1,
                     groups: int = 1) -> Tensor:
    """Transposed convolution (the gradient of conv2d with respect to its input), PyTorch's
    conventions: x (N, C_in, H, W), w (C_in, C_out/groups, KH, KW), b (C_out,); output size
    (H - 1) * stride - pad_top - pad_bottom + dilation * (KH - 1) + output_padding + 1.
    Lowered to the conv2d_grad_input primitive."""
    x, w = tensor_operands("conv2d_grad_input", x, w)
    op = "conv_transpose2d"
    _nchw(op, x)
    _nchw(op, w, "filter (C_in, C_out/groups, KH, KW)")
    stride, dilation = _pair(op, "stride", stride), _pair(op, "dilation", dilation)
    pad = _padding4(op, padding)
    out_pad = _pair(op, "output_padding", output_padding)
    for o, s, d in zip(out_pad, stride, dilation):
        if not 0 <= o < max(s, d):
            raise AttrError(f"{op}: output_padding {out_pad} must be non-negative and smaller "
                            f"than the stride {stride} or the dilation {dilation}",
                            user_frame_loc(node_path(op)))
    hw = []
    for i in range(2):
        size = x.shape[2 + i]
        if not isinstance(size, int):
            raise ShapeError(f"{op} needs static H and W, found {x.type}",
                             user_frame_loc(node_path(op)))
        out = ((size - 1) * stride[i] - pad[i] - pad[i + 2] + dilation[i] * (w.shape[2 + i] - 1)
               + out_pad[i] + 1)
        if out < 1:
            raise ShapeError(f"{op}: {x.type} with a {w.shape[2]}x{w.shape[3]} filter and "
                             f"padding {pad} gives an empty output", user_frame_loc(node_path(op)))
        hw.append(out)
    y = emit("conv2d_grad_input", [x, w], {"stride": stride, "padding": pad,
                                            "dilation": dilation, "groups": groups,
                                            "input_hw": tuple(hw)})
    return y if b is None else _add_channel_bias(op, y, b)


# -- pooling -----------------------------------------------------------------------------------
def _pool_attrs(op, kernel, stride, padding, ceil_mode) -> dict:
    kernel = _pair(op, "kernel", kernel)
    stride = kernel if stride is None else _pair(op, "stride", stride)
    return {"kernel": kernel, "stride": stride, "padding": _padding4(op, padding),
            "ceil_mode": bool(ceil_mode)}


def max_pool2d(x, kernel, stride=None, padding=0, ceil_mode: bool = False) -> Tensor:
    """Maximum over kernel windows of an NCHW tensor (stride defaults to the kernel; padding
    p, (ph, pw) or (top, left, bottom, right) counts as -inf)."""
    x = as_tensor(x, op="max_pool2d")
    return emit("max_pool2d", [x], _pool_attrs("max_pool2d", kernel, stride, padding, ceil_mode))


def avg_pool2d(x, kernel, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over kernel windows of an NCHW tensor; count_include_pad decides whether padded
    positions count in the divisor."""
    x = as_tensor(x, op="avg_pool2d")
    attrs = _pool_attrs("avg_pool2d", kernel, stride, padding, ceil_mode)
    attrs["count_include_pad"] = bool(count_include_pad)
    return emit("avg_pool2d", [x], attrs)


def global_avg_pool2d(x, keepdims: bool = False) -> Tensor:
    """Mean over H and W of an NCHW tensor: (N, C) (or (N, C, 1, 1) with keepdims)."""
    x = as_tensor(x, op="global_avg_pool2d")
    _nchw("global_avg_pool2d", x)
    return mean(x, (2, 3), keepdims)


# -- dropout -----------------------------------------------------------------------------------
def dropout(x, rate: float, training: bool = True, seed=None, counter=None) -> Tensor:
    """Zero each element with probability `rate` and scale the rest by 1 / (1 - rate), so the
    expected value is unchanged. Identity when not training or rate is 0.

    The mask comes from `random_uniform` (counter-based: a pure function of seed, counter and
    element index). seed=None takes the next seed of this graph (0, 1, 2, ... in call order),
    so every dropout in a graph differs but retracing gives the same masks. `counter` (an int
    scalar Tensor such as the step number, or an int) changes the mask from call to call."""
    x = as_tensor(x, op="dropout")
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise AttrError(f"dropout: rate must be a number in [0, 1), found {rate!r}",
                        user_frame_loc(node_path("random_uniform")))
    if not training or rate == 0:
        return x
    if not x.dtype.is_float:
        raise DTypeError(f"dropout needs a float tensor, found {x.type}",
                         user_frame_loc(node_path("random_uniform")))
    if seed is None:
        seed = current_trace().take_seed()
    inputs = [] if counter is None else [as_tensor(counter, _dt.i64, "random_uniform")]
    u = emit("random_uniform", inputs, {"shape": x.shape, "seed": seed, "dtype": x.dtype})
    keep = greater_equal(u, float(rate))
    return where(keep, multiply(x, 1.0 / (1.0 - float(rate))), 0.0)
