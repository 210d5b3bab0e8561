"""Neural-network ONNX ops: Gemm, MatMul, Conv, ConvTranspose, BatchNormalization,
LayerNormalization, InstanceNormalization, Dropout.

Convolutions are 2-D primitives in graphc; a 1-D convolution is imported as a 2-D one over a
height of 1, a 3-D one as a sum of 2-D ones over the kernel's depth (conv3d.py). ONNX pads are
[x1_begin, x2_begin, x1_end, x2_end], which for 2-D is graphc's (top, left, bottom, right).
"""
from __future__ import annotations

from ir import dtypes as dt

from ... import functional as F
from ...tensor import current_graph, emit
from ..context import onnx_op
from .common import norm_axis, static_dims
from .conv3d import conv3d, conv_transpose3d


# -- matrix products ---------------------------------------------------------------------------
@onnx_op("Gemm", versions=(7, 9, 11, 13))
def gemm(ctx):
    a, b = ctx.tensor(0), ctx.tensor(1)
    if a.ndim != 2 or b.ndim != 2:
        ctx.unsupported(f"Gemm needs 2-D A and B, found {a.type} and {b.type}")
    y = emit("matmul", [a, b], {"transpose_a": bool(ctx.attr("transA", 0)),
                                "transpose_b": bool(ctx.attr("transB", 0))})
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha != 1.0:
        y = F.multiply(y, alpha)
    if ctx.has(2) and beta != 0.0:
        c = ctx.tensor(2)
        if beta != 1.0:
            c = F.multiply(c, beta)
        y = F.add(y, c)
    return y


@onnx_op("MatMul", versions=(1, 9, 13))
def matmul(ctx):
    return F.matmul(ctx.tensor(0), ctx.tensor(1))


# -- convolution -------------------------------------------------------------------------------
def conv_geometry(ctx, spatial, kernel):
    """(strides, dilations, pads as [begins..., ends...]) with auto_pad resolved."""
    n = len(spatial)
    strides = list(ctx.attr("strides", [1] * n))
    dilations = list(ctx.attr("dilations", [1] * n))
    pads = list(ctx.attr("pads", [0] * (2 * n)))
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        ctx.unsupported(f"strides {strides}, dilations {dilations} and pads {pads} do not fit "
                        f"{n} spatial axes")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * n)
        for i in range(n):
            out = -(-spatial[i] // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                        - spatial[i], 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + n] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    elif auto_pad != "NOTSET":
        ctx.unsupported(f"auto_pad={auto_pad!r}")
    return strides, dilations, pads


def lift_1d(x):
    """A rank-3 (N, C, L) tensor viewed as (N, C, 1, L) so 2-D primitives apply."""
    return F.reshape(x, tuple(x.shape[:2]) + (1, x.shape[2]))


def _spatial_rank(ctx, x, what: str) -> int:
    n = x.ndim - 2
    if n not in (1, 2, 3):
        ctx.unsupported(f"{n}-D {what} (graphc has 1-D, 2-D and 3-D {what})")
    return n


@onnx_op("Conv", versions=(1, 11, 22))
def conv(ctx):
    x, w = ctx.tensor(0), ctx.tensor(1)
    n = _spatial_rank(ctx, x, "convolution")
    spatial = static_dims(ctx, x.shape[2:], "Conv's spatial axes")
    kernel = static_dims(ctx, w.shape[2:], "Conv's kernel")
    ks = ctx.attr("kernel_shape", None)
    if ks is not None and list(ks) != list(kernel):
        ctx.unsupported(f"kernel_shape {list(ks)} differs from the weight's {list(kernel)}")
    strides, dilations, pads = conv_geometry(ctx, spatial, kernel)
    group = ctx.attr("group", 1)
    b = ctx.tensor(2) if ctx.has(2) else None
    if n == 3:
        return conv3d(ctx, x, w, b, strides, dilations, pads, group)
    if n == 1:
        x, w = lift_1d(x), lift_1d(w)
        strides, dilations, pads = [1] + strides, [1] + dilations, [0, pads[0], 0, pads[1]]
    y = F.conv2d(x, w, b, stride=tuple(strides), padding=tuple(pads),
                 dilation=tuple(dilations), groups=group)
    return F.reshape(y, tuple(y.shape[:2]) + (y.shape[3],)) if n == 1 else y


@onnx_op("ConvTranspose", versions=(1, 11, 22))
def conv_transpose(ctx):
    x, w = ctx.tensor(0), ctx.tensor(1)
    n = _spatial_rank(ctx, x, "transposed convolution")
    spatial = static_dims(ctx, x.shape[2:], "ConvTranspose's spatial axes")
    kernel = static_dims(ctx, w.shape[2:], "ConvTranspose's kernel")
    ks = ctx.attr("kernel_shape", None)
    if ks is not None and list(ks) != list(kernel):
        ctx.unsupported(f"kernel_shape {list(ks)} differs from the weight's {list(kernel)}")
    strides = list(ctx.attr("strides", [1] * n))
    dilations = list(ctx.attr("dilations", [1] * n))
    out_pad = list(ctx.attr("output_padding", [0] * n))
    pads = list(ctx.attr("pads", [0] * (2 * n)))
    out_shape = ctx.attr("output_shape", None)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    group = ctx.attr("group", 1)
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        ctx.unsupported(f"auto_pad={auto_pad!r}")
    if out_shape is not None:
        out_shape = list(out_shape)[-n:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [spatial[i] * strides[i] for i in range(n)]
    if auto_pad == "VALID":
        pads = [0] * (2 * n)
    full = [strides[i] * (spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
            for i in range(n)]
    if out_shape is not None:
        # the ONNX rule: the total padding is split evenly, the odd unit goes to the end for
        # SAME_UPPER and to the beginning otherwise
        pads = [0] * (2 * n)
        for i in range(n):
            total = full[i] - out_shape[i]
            half = total // 2
            pads[i], pads[i + n] = ((half, total - half) if auto_pad == "SAME_UPPER"
                                    else (total - half, half))
    # a negative end pad asks for rows past the full output: they get no contribution (zero)
    hw = [full[i] - pads[i] - pads[i + n] for i in range(n)]
    if min(pads[:n]) < 0:
        ctx.unsupported(f"the begin pads {pads[:n]} are negative")
    pads = [max(p, 0) for p in pads]
    if min(hw) < 1:
        ctx.unsupported(f"the output would be empty ({hw})")
    b = ctx.tensor(2) if ctx.has(2) else None
    if n == 3:
        return conv_transpose3d(x, w, b, strides, dilations, pads, hw, group)
    if n == 1:
        x, w = lift_1d(x), lift_1d(w)
        strides, dilations, hw = [1] + strides, [1] + dilations, [1] + hw
        pads = [0, pads[0], 0, pads[1]]
    y = emit("conv2d_grad_input", [x, w],
             {"stride": tuple(strides), "padding": tuple(pads), "dilation": tuple(dilations),
              "groups": group, "input_hw": tuple(hw)})
    if b is not None:
        y = F.add(y, emit("broadcast", [b], {"shape": y.shape, "dims": (1,)}))
    return F.reshape(y, tuple(y.shape[:2]) + (y.shape[3],)) if n == 1 else y


# -- normalisation -----------------------------------------------------------------------------
def per_channel(v, like):
    """A (C,) vector spread along axis 1 of `like` (N, C, ...)."""
    return emit("broadcast", [v], {"shape": like.shape, "dims": (1,)})


@onnx_op("BatchNormalization", versions=(6, 7, 9, 14, 15))
def batch_norm(ctx):
    x, scale, bias, mean, var = (ctx.tensor(i) for i in range(5))
    eps = ctx.attr("epsilon", 1e-5)
    momentum = ctx.attr("momentum", 0.9)
    if ctx.version < 9:
        if ctx.attr("spatial", 1) != 1:
            ctx.unsupported("spatial=0 (per-activation statistics)")
    if ctx.version == 6:
        ctx.attr("is_test", 0)
    training = ctx.attr("training_mode", 0) if ctx.version >= 14 else 0
    if x.ndim < 2:
        ctx.unsupported(f"the input must be (N, C, ...), found {x.type}")
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        batch_mean = F.mean(x, axes)
        centred = F.subtract(x, per_channel(batch_mean, x))
        batch_var = F.mean(F.multiply(centred, centred), axes)
        y = _normalise(x, scale, bias, batch_mean, batch_var, eps)
        run_mean = F.add(F.multiply(mean, momentum), F.multiply(batch_mean, 1.0 - momentum))
        run_var = F.add(F.multiply(var, momentum), F.multiply(batch_var, 1.0 - momentum))
        return [y, run_mean, run_var]
    if ctx.n_outputs > 1 and any(ctx.wants(i) for i in range(1, ctx.n_outputs)):
        ctx.unsupported("the running statistics outputs outside training mode")
    return _normalise(x, scale, bias, mean, var, eps)


def _normalise(x, scale, bias, mean, var, eps: float):
    factor = F.divide(scale, F.sqrt(F.add(var, eps)))
    y = F.multiply(F.subtract(x, per_channel(mean, x)), per_channel(factor, x))
    return F.add(y, per_channel(bias, x))


@onnx_op("LayerNormalization", versions=(17,))
def layer_norm(ctx):
    x = ctx.tensor(0)
    axis = norm_axis(ctx, ctx.attr("axis", -1), x.ndim)
    eps = ctx.attr("epsilon", 1e-5)
    if ctx.attr("stash_type", 1) != 1:
        ctx.unsupported("stash_type other than 1 (float32 statistics)")
    axes = tuple(range(axis, x.ndim))
    mean = F.mean(x, axes, keepdims=True)
    diff = F.subtract(x, mean)
    var = F.mean(F.multiply(diff, diff), axes, keepdims=True)
    inv_std = F.reciprocal(F.sqrt(F.add(var, eps)))
    y = F.multiply(F.multiply(diff, inv_std), ctx.tensor(1))
    if ctx.has(2):
        y = F.add(y, ctx.tensor(2))
    return [y, mean, inv_std]


@onnx_op("InstanceNormalization", versions=(6, 22))
def instance_norm(ctx):
    x, scale, bias = (ctx.tensor(i) for i in range(3))
    eps = ctx.attr("epsilon", 1e-5)
    axes = tuple(range(2, x.ndim))
    mean = F.mean(x, axes, keepdims=True)
    diff = F.subtract(x, mean)
    var = F.mean(F.multiply(diff, diff), axes, keepdims=True)
    y = F.divide(diff, F.sqrt(F.add(var, eps)))
    return F.add(F.multiply(y, per_channel(scale, x)), per_channel(bias, x))


# -- dropout -----------------------------------------------------------------------------------
@onnx_op("Dropout", versions=(7, 10, 12, 13, 22))
def dropout(ctx):
    x = ctx.tensor(0)
    seed = ctx.attr("seed", None)
    if ctx.version < 12:
        ratio, training = ctx.attr("ratio", 0.5), False      # inference-only before 12
    else:
        ratio = float(ctx.const(1, "ratio").reshape(())) if ctx.has(1) else 0.5
        training = bool(ctx.const(2, "training_mode").reshape(())) if ctx.has(2) else False
    if not 0 <= ratio < 1:
        ctx.unsupported(f"ratio {ratio} (expected 0 <= ratio < 1)")
    if not training or ratio == 0:
        mask = F.full(tuple(x.shape), True, dt.bool_) if ctx.wants(1) else None
        return [x, mask]
    if seed is None:
        seed = len(current_graph().nodes)       # deterministic per node position
    u = emit("random_uniform", [], {"shape": x.shape, "seed": int(seed), "dtype": x.dtype})
    keep = F.greater_equal(u, float(ratio))
    return [F.where(keep, F.multiply(x, 1.0 / (1.0 - ratio)), 0.0), keep]
