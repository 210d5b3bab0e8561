"""3-D convolutions built from graphc's 2-D primitives.

graphc's convolution primitives are 2-D. A 3-D convolution is a sum over the kernel's depth
taps: for tap kd, the input depth slices kd*dilation, kd*dilation + stride, ... fold into the
batch and meet the 2-D kernel slice w[:, :, kd] in one conv2d. A 3-D transposed convolution
runs one 2-D transposed convolution per tap over every input depth slice and places its
results at depth id*stride + kd*dilation (zeros interleaved for the stride, padding for the
tap's offset), then sums the taps and crops the padding.
"""
from __future__ import annotations

from ... import functional as F
from ...tensor import emit

_DEPTH_FIRST = (0, 2, 1, 3, 4)      # (N, C, D, H, W) <-> (N, D, C, H, W)


def _tap(w, kd):
    return F.getitem(w, (slice(None), slice(None), kd))


def conv3d(ctx, x, w, b, strides, dilations, pads, group):
    """pads: [d_begin, h_begin, w_begin, d_end, h_end, w_end] (ONNX order)."""
    n, c, depth, h, wd = x.shape
    kd_count = w.shape[2]
    sd, dd = strides[0], dilations[0]
    if pads[0] or pads[3]:
        x = F.pad(x, [(0, 0), (0, 0), (pads[0], pads[3]), (0, 0), (0, 0)])
    out_d = (depth + pads[0] + pads[3] - (kd_count - 1) * dd - 1) // sd + 1
    if out_d < 1:
        ctx.unsupported(f"the depth window is larger than the padded input ({depth})")
    acc = None
    for kd in range(kd_count):
        start = kd * dd
        xs = F.getitem(x, (slice(None), slice(None), slice(start, start + (out_d - 1) * sd + 1,
                                                          sd)))
        xs = F.reshape(F.transpose(xs, _DEPTH_FIRST), (n * out_d, c, h, wd))
        y = F.conv2d(xs, _tap(w, kd), None, stride=tuple(strides[1:]),
                     padding=(pads[1], pads[2], pads[4], pads[5]),
                     dilation=tuple(dilations[1:]), groups=group)
        acc = y if acc is None else F.add(acc, y)
    y = F.transpose(F.reshape(acc, (n, out_d) + tuple(acc.shape[1:])), _DEPTH_FIRST)
    return y if b is None else F.add(y, emit("broadcast", [b], {"shape": y.shape, "dims": (1,)}))


def conv_transpose3d(x, w, b, strides, dilations, pads, out_sizes, group):
    """pads (non-negative, ONNX order) and out_sizes (OD, OH, OW) resolved by the caller."""
    n, c, depth, h, wd = x.shape
    kd_count = w.shape[2]
    sd, dd = strides[0], dilations[0]
    xs = F.reshape(F.transpose(x, _DEPTH_FIRST), (n * depth, c, h, wd))
    span = (depth - 1) * sd + 1
    length = max(span + (kd_count - 1) * dd, pads[0] + out_sizes[0])
    acc = None
    for kd in range(kd_count):
        z = emit("conv2d_grad_input", [xs, _tap(w, kd)],
                 {"stride": tuple(strides[1:]), "padding": (pads[1], pads[2], pads[4], pads[5]),
                  "dilation": tuple(dilations[1:]), "groups": group,
                  "input_hw": tuple(out_sizes[1:])})
        rest = tuple(z.shape[1:])
        z = F.reshape(z, (n, depth) + rest)
        if sd > 1:      # interleave stride-1 zero slices after every input depth slice
            gaps = F.zeros((n, depth, sd - 1) + rest, z.dtype)
            z = F.concat([F.expand_dims(z, 2), gaps], 2)
            z = F.getitem(F.reshape(z, (n, depth * sd) + rest), (slice(None), slice(0, span)))
        z = F.pad(z, [(0, 0), (kd * dd, length - kd * dd - span)] + [(0, 0)] * 3)
        acc = z if acc is None else F.add(acc, z)
    acc = F.getitem(acc, (slice(None), slice(pads[0], pads[0] + out_sizes[0])))
    y = F.transpose(acc, _DEPTH_FIRST)
    return y if b is None else F.add(y, emit("broadcast", [b], {"shape": y.shape, "dims": (1,)}))
