"""How each graphc primitive becomes ONNX nodes (the exporter's op table).

A rule gets the Exporter, the graphc node and the ONNX names of its operands, and appends ONNX
nodes whose final outputs carry the names of the node's results (`out`).
"""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ir import dtypes as dt
from ir.ops.elementwise import cast_array

from .exporter import onnx_dtype

_UNARY = {"neg": "Neg", "abs": "Abs", "sign": "Sign", "relu": "Relu", "exp": "Exp",
          "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal", "tanh": "Tanh",
          "sigmoid": "Sigmoid", "erf": "Erf"}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
           "maximum": "Max", "minimum": "Min", "less": "Less", "less_equal": "LessOrEqual",
           "greater": "Greater", "greater_equal": "GreaterOrEqual", "equal": "Equal",
           "logical_and": "And", "logical_or": "Or"}

RULES: dict = {}


def rule(*ops):
    def register(fn):
        for op in ops:
            RULES[op] = fn
        return fn
    return register


def export_node(ex, node) -> None:
    if node.op == "fused":
        ex.inline(node.attrs["body"], [ex.name_of(v) for v in node.inputs],
                  [ex.name_of(v) for v in node.outputs])
        return
    fn = RULES.get(node.op)
    if fn is None:
        ex.unsupported(_NO_EQUIVALENT.get(node.op, f"graphc op {node.op} has no ONNX mapping"))
    fn(ex, node, [ex.name_of(v) for v in node.inputs], [ex.name_of(v) for v in node.outputs])


_NO_EQUIVALENT = {
    "random_uniform": "random_uniform's counter-based random numbers have no ONNX equivalent "
                      "that gives the same values; export inference graphs (dropout with "
                      "training=False adds no node)",
    "max_pool2d_grad": "pooling gradients have no ONNX op; export inference graphs",
    "avg_pool2d_grad": "pooling gradients have no ONNX op; export inference graphs",
}


# -- elementwise -------------------------------------------------------------------------------
@rule(*_UNARY)
def unary(ex, node, ins, out):
    ex.add(_UNARY[node.op], ins, outputs=out)


@rule(*_BINARY)
def binary(ex, node, ins, out):
    ex.add(_BINARY[node.op], ins, outputs=out)


@rule("log1p")
def log1p(ex, node, ins, out):
    one = ex.const(np.array(1, node.inputs[0].dtype.np_dtype), "_one")
    ex.add("Log", [ex.add("Add", [ins[0], one])[0]], outputs=out)


@rule("rsqrt")
def rsqrt(ex, node, ins, out):
    ex.add("Reciprocal", ex.add("Sqrt", ins), outputs=out)


@rule("not_equal")
def not_equal(ex, node, ins, out):
    ex.add("Not", ex.add("Equal", ins), outputs=out)


@rule("logical_not")
def logical_not(ex, node, ins, out):
    ex.add("Not", ins, outputs=out)


@rule("select")
def select(ex, node, ins, out):
    ex.add("Where", ins, outputs=out)


@rule("cast")
def cast(ex, node, ins, out):
    ex.add("Cast", ins, outputs=out, to=onnx_dtype(node.attrs["dtype"]))


# -- values without operands -------------------------------------------------------------------
@rule("constant")
def constant(ex, node, ins, out):
    ex.add("Constant", [], outputs=out,
           value=numpy_helper.from_array(np.asarray(node.attrs["value"])))


@rule("iota")
def iota(ex, node, ins, out):
    shape, axis, dtype = node.attrs["shape"], node.attrs["axis"], node.attrs["dtype"]
    shape = [ex.outer(d) for d in shape]
    if all(isinstance(d, int) for d in shape):
        line = np.arange(shape[axis], dtype=dtype.np_dtype).reshape(
            [shape[axis] if i == axis else 1 for i in range(len(shape))])
        ex.add("Constant", [], outputs=out, value=numpy_helper.from_array(
            np.broadcast_to(line, shape).copy()))
        return
    zero, one = ex.const(np.array(0, np.int64), "_zero"), ex.const(np.array(1, np.int64), "_one")
    line = ex.add("Range", [zero, ex.dim_scalar(shape[axis]), one])[0]
    others = [i for i in range(len(shape)) if i != axis]
    if others:
        line = ex.add("Unsqueeze", [line, ex.ints(others)])[0]
    full = ex.add("Expand", [line, ex.shape_tensor(shape)])[0]
    ex.add("Cast", [full], outputs=out, to=onnx_dtype(dtype))


@rule("dim_value")
def dim_value(ex, node, ins, out):
    ex.add("Cast", [ex.dim_scalar(node.attrs["dim"])], outputs=out,
           to=onnx_dtype(node.attrs["dtype"]))


# -- data movement -----------------------------------------------------------------------------
@rule("broadcast")
def broadcast(ex, node, ins, out):
    shape, dims = node.attrs["shape"], list(node.attrs["dims"])
    x = ins[0]
    missing = [i for i in range(len(shape)) if i not in dims]
    if missing:
        x = ex.add("Unsqueeze", [x, ex.ints(missing)])[0]
    ex.add("Expand", [x, ex.shape_tensor(shape)], outputs=out)


@rule("reshape")
def reshape(ex, node, ins, out):
    shape = node.attrs["shape"]
    zero = any(isinstance(d, int) and d == 0 for d in shape)
    ex.add("Reshape", [ins[0], ex.shape_tensor(shape)], outputs=out,
           allowzero=1 if zero else None)


@rule("transpose")
def transpose(ex, node, ins, out):
    perm = list(node.attrs["perm"])
    if perm == sorted(perm):               # the identity (including 0-d and 1-d operands)
        ex.add("Identity", ins, outputs=out)
        return
    ex.add("Transpose", ins, outputs=out, perm=perm)


@rule("slice")
def slice_(ex, node, ins, out):
    a = node.attrs
    rank = len(a["starts"])
    if rank == 0:
        ex.add("Identity", ins, outputs=out)
        return
    ex.add("Slice", [ins[0], ex.shape_tensor(a["starts"]), ex.shape_tensor(a["stops"]),
                     ex.ints(range(rank)), ex.ints(a["steps"])], outputs=out)


@rule("pad")
def pad(ex, node, ins, out):
    a = node.attrs
    if not a["low"]:                 # a 0-d operand: nothing to pad (onnxruntime refuses it)
        ex.add("Identity", ins, outputs=out)
        return
    value = cast_array(np.array(a["value"]), node.inputs[0].dtype)
    ex.add("Pad", [ins[0], ex.ints(list(a["low"]) + list(a["high"])),
                   ex.const(np.asarray(value), "_pad_value")], outputs=out, mode="constant")


@rule("concat")
def concat(ex, node, ins, out):
    ex.add("Concat", ins, outputs=out, axis=node.attrs["axis"])


@rule("gather")
def gather(ex, node, ins, out):
    ex.add("Gather", ins, outputs=out, axis=node.attrs["axis"])


# -- reductions --------------------------------------------------------------------------------
@rule("reduce_sum", "reduce_max", "reduce_min")
def reduce(ex, node, ins, out):
    op = {"reduce_sum": "ReduceSum", "reduce_max": "ReduceMax", "reduce_min": "ReduceMin"}
    axes = list(node.attrs["axes"])
    keep = int(node.attrs["keepdims"])
    since = 13 if node.op == "reduce_sum" else 18
    if not axes:
        ex.add("Identity", ins, outputs=out)
    elif ex.opset >= since:
        ex.add(op[node.op], [ins[0], ex.ints(axes)], outputs=out, keepdims=keep)
    else:
        ex.add(op[node.op], ins, outputs=out, axes=axes, keepdims=keep)


@rule("argmax")
def argmax(ex, node, ins, out):
    ex.add("ArgMax", ins, outputs=out, axis=node.attrs["axis"],
           keepdims=int(node.attrs["keepdims"]))


# -- contractions ------------------------------------------------------------------------------
def _swap_last(ex, name, rank):
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return ex.add("Transpose", [name], perm=perm)[0]


@rule("matmul")
def matmul(ex, node, ins, out):
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    rank = node.inputs[0].type.rank
    if rank == 2 and node.inputs[0].dtype in (dt.f32, dt.f64):
        ex.add("Gemm", ins, outputs=out, transA=int(ta) or None, transB=int(tb) or None)
        return
    a = _swap_last(ex, ins[0], rank) if ta else ins[0]
    b = _swap_last(ex, ins[1], rank) if tb else ins[1]
    ex.add("MatMul", [a, b], outputs=out)


def _conv_attrs(a):
    return dict(strides=list(a["stride"]), pads=list(a["padding"]),
                dilations=list(a["dilation"]), group=a["groups"])


@rule("conv2d")
def conv2d(ex, node, ins, out):
    kernel = list(node.inputs[1].type.shape[2:])
    ex.add("Conv", ins, outputs=out, kernel_shape=kernel, **_conv_attrs(node.attrs))


@rule("conv2d_grad_input")
def conv2d_grad_input(ex, node, ins, out):
    a = node.attrs
    dy, w = node.inputs
    out_pad = []
    for i in range(2):
        full = ((dy.type.shape[2 + i] - 1) * a["stride"][i] - a["padding"][i]
                - a["padding"][i + 2] + a["dilation"][i] * (w.type.shape[2 + i] - 1) + 1)
        out_pad.append(a["input_hw"][i] - full)
    ex.add("ConvTranspose", ins, outputs=out, kernel_shape=list(w.type.shape[2:]),
           output_padding=out_pad if any(out_pad) else None, **_conv_attrs(a))


@rule("conv2d_grad_filter")
def conv2d_grad_filter(ex, node, ins, out):
    """dW = a convolution of x (channels as the batch) with dy (as filters), strides and
    dilations swapped, cropped to the kernel."""
    a = node.attrs
    if a["groups"] != 1:
        ex.unsupported("a grouped conv2d_grad_filter has no single ONNX op")
    xt = ex.add("Transpose", [ins[0]], perm=[1, 0, 2, 3])[0]
    dyt = ex.add("Transpose", [ins[1]], perm=[1, 0, 2, 3])[0]
    full = ex.add("Conv", [xt, dyt], strides=list(a["dilation"]), dilations=list(a["stride"]),
                  pads=list(a["padding"]))[0]
    kh, kw = a["kernel_hw"]
    crop = ex.add("Slice", [full, ex.ints([0, 0]), ex.ints([kh, kw]), ex.ints([2, 3])])[0]
    ex.add("Transpose", [crop], outputs=out, perm=[1, 0, 2, 3])


# -- pooling -----------------------------------------------------------------------------------
@rule("max_pool2d", "avg_pool2d")
def pool(ex, node, ins, out):
    a = node.attrs
    pads = list(a["padding"])
    ceil = bool(a["ceil_mode"])
    if ceil:
        layout = _ceil_layout(node, pads)
        if layout is None:
            _explicit_pool(ex, node, ins, out)
            return
        ceil, pads = layout
    attrs = dict(kernel_shape=list(a["kernel"]), strides=list(a["stride"]), pads=pads,
                 ceil_mode=int(ceil))
    if node.op == "max_pool2d":
        ex.add("MaxPool", ins, outputs=out, **attrs)
    else:
        ex.add("AveragePool", ins, outputs=out, count_include_pad=int(a["count_include_pad"]),
               **attrs)


def _axis_layouts(node, pads):
    """Per spatial axis: (graphc's window count, floor count, ceil count, padding the last
    graphc window reaches past the end padding)."""
    a = node.attrs
    shape = node.inputs[0].type.shape
    out = []
    for i in range(2):
        size, k, s = shape[2 + i], a["kernel"][i], a["stride"][i]
        lo, hi = pads[i], pads[i + 2]
        span = size + lo + hi - k
        floor, ceil = span // s + 1, -(-span // s) + 1
        graphc = ceil - 1 if (ceil - 1) * s >= size + lo else ceil
        out.append((graphc, floor, ceil, max((graphc - 1) * s + k - (size + lo + hi), 0)))
    return out


def _ceil_layout(node, pads):
    """(ceil_mode, pads) giving graphc's ceil-mode windows in ONNX, or None.

    graphc (like PyTorch and ONNX's reference) drops a last window that would start past the
    input and its begin padding; ONNX shape inference and onnxruntime keep it, and ceil_mode is
    one flag for both axes. Axes needing the drop use floor mode; if another axis needs a
    ceil window, its end padding grows so the floor count reaches it, which is exact for max
    (padding is -inf) and for an average without count_include_pad (padding is not counted).
    """
    axes = _axis_layouts(node, pads)
    if all(g == c for g, _, c, _ in axes):
        return True, pads
    if node.op == "avg_pool2d" and node.attrs["count_include_pad"] and \
            any(g != f for g, f, _, _ in axes):
        return None
    pads = list(pads)
    for i, (graphc, floor, _, extra) in enumerate(axes):
        if graphc != floor:
            pads[i + 2] += extra
    return False, pads


def _explicit_pool(ex, node, ins, out):
    """An average with count_include_pad over graphc's ceil windows: pad explicitly, average
    over whole windows, then rescale each output by (window area / graphc's divisor)."""
    a = node.attrs
    shape = node.inputs[0].type.shape
    pads = list(a["padding"])
    axes = _axis_layouts(node, pads)
    widths = [0, 0, pads[0], pads[1], 0, 0, pads[2] + axes[0][3], pads[3] + axes[1][3]]
    zero = ex.const(np.array(0, node.inputs[0].dtype.np_dtype), "_zero")
    padded = ex.add("Pad", [ins[0], ex.ints(widths), zero], mode="constant")[0]
    avg = ex.add("AveragePool", [padded], kernel_shape=list(a["kernel"]),
                 strides=list(a["stride"]), count_include_pad=1)[0]
    scale = np.ones((), np.float64)
    for i in range(2):
        size, k, s = shape[2 + i], a["kernel"][i], a["stride"][i]
        start = np.arange(axes[i][0]) * s
        end = np.minimum(start + k, size + pads[i] + pads[i + 2])
        scale = np.multiply.outer(scale, k / (end - start))
    factor = ex.const(scale.astype(node.inputs[0].dtype.np_dtype), "_pool_scale")
    ex.add("Mul", [avg, factor], outputs=out)
