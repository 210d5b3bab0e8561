"""Convolution and pooling layers (NCHW, like the primitives).

Conv2D's weight is (out_channels, in_channels / groups, KH, KW) with in_channels inferred from
the first input; its bias is (out_channels,). Padding is an int, a pair, (top, left, bottom,
right), or "same" / "valid" in any case (tinynn writes "SAME"). For pooling, "same" pads so
the output is ceil(H / stride) (padding counts as -inf for MaxPool2D and is left out of the
average for AvgPool2D, as in TensorFlow).
"""
from __future__ import annotations

import numbers
from typing import Optional

from ir.errors import AttrError, ShapeError
from ir.location import user_frame_loc

from .. import functional as F
from .. import init as _init
from .layers import _float_input, _positive_int
from .module import Module


def _pair(value, what: str) -> tuple:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise AttrError(f"{what} must be an int or a pair of ints, found {value!r}",
                        user_frame_loc())
    return tuple(_positive_int(v, what) for v in value)


def _padding_mode(padding):
    """'same' / 'valid' (lower case) for a string, else the numeric padding unchanged."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("same", "valid"):
            raise AttrError(f"padding must be an int, a tuple, 'same' or 'valid', found "
                            f"{padding!r}", user_frame_loc())
        return mode
    return padding


def _same_pool_padding(layer: Module, x, kernel, stride) -> tuple:
    hw = x.shape[2:]
    if not all(isinstance(d, int) for d in hw):
        raise ShapeError(f"{layer.path}: padding='same' needs static H and W, found {x.type}",
                         user_frame_loc())
    pads = []
    for size, k, s in zip(hw, kernel, stride):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _nchw(layer: Module, x) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{layer.path}: {type(layer).__name__} needs an NCHW input (N, C, H, W), "
                         f"found {x.type}", user_frame_loc())


class Conv2D(Module):
    """2-D convolution: Conv2D(out_channels, kernel_size, stride=1, padding=0)."""

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, w_init=_init.XavierUniform(), b_init=_init.Zeros(),
                 use_bias: bool = True, name: Optional[str] = None):
        super().__init__(name)
        self.out_channels = _positive_int(out_channels, "Conv2D: out_channels")
        self.kernel_size = _pair(kernel_size, "Conv2D: kernel_size")
        self.stride = _pair(stride, "Conv2D: stride")
        self.dilation = _pair(dilation, "Conv2D: dilation")
        self.padding = _padding_mode(padding)
        self.groups = _positive_int(groups, "Conv2D: groups")
        if self.out_channels % self.groups:
            raise AttrError(f"Conv2D: out_channels {out_channels} must be a multiple of groups "
                            f"{groups}", user_frame_loc())
        self.w_init = _init.get(w_init)
        self.b_init = _init.get(b_init)
        self.use_bias = bool(use_bias)

    def forward(self, x):
        x = _float_input(self, x)
        _nchw(self, x)
        channels = x.shape[1]
        if not isinstance(channels, int) or channels % self.groups:
            raise ShapeError(f"{self.path}: the channel dim of {x.type} must be static and a "
                             f"multiple of groups={self.groups}", user_frame_loc())
        w = self.param("w", (self.out_channels, channels // self.groups) + self.kernel_size,
                       self.w_init, dtype=x.dtype)
        b = self.param("b", (self.out_channels,), self.b_init, dtype=x.dtype) \
            if self.use_bias else None
        return F.conv2d(x, w, b, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)

    def extra_repr(self):
        return (f"{self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}")


class _Pool2D(Module):
    def __init__(self, pool_size, stride=None, padding=0, name: Optional[str] = None):
        super().__init__(name)
        self.pool_size = _pair(pool_size, f"{type(self).__name__}: pool_size")
        self.stride = self.pool_size if stride is None else \
            _pair(stride, f"{type(self).__name__}: stride")
        self.padding = _padding_mode(padding)

    def _pads(self, x):
        if self.padding == "same":
            return _same_pool_padding(self, x, self.pool_size, self.stride)
        if self.padding == "valid":
            return 0
        return self.padding

    def extra_repr(self):
        return f"pool_size={self.pool_size}, stride={self.stride}, padding={self.padding!r}"


class MaxPool2D(_Pool2D):
    """Maximum over pool_size windows; stride defaults to pool_size (tinynn: pool_size,
    stride, padding="VALID")."""

    def forward(self, x):
        x = _float_input(self, x)
        _nchw(self, x)
        return F.max_pool2d(x, self.pool_size, self.stride, self._pads(x))


class AvgPool2D(_Pool2D):
    """Mean over pool_size windows; padded positions count in the divisor only when
    count_include_pad (never for padding='same')."""

    def __init__(self, pool_size, stride=None, padding=0, count_include_pad: bool = True,
                 name: Optional[str] = None):
        super().__init__(pool_size, stride, padding, name)
        self.count_include_pad = bool(count_include_pad) and self.padding != "same"

    def forward(self, x):
        x = _float_input(self, x)
        _nchw(self, x)
        return F.avg_pool2d(x, self.pool_size, self.stride, self._pads(x),
                            count_include_pad=self.count_include_pad)
