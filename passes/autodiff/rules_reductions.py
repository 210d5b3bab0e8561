"""VJP rules for reductions (reduce_sum, reduce_max, reduce_min) and matmul.

reduce_max/min at ties: the gradient is shared equally by every element that attains the
extremum (dy / count to each), the symmetric subgradient (JAX and TensorFlow do the same).
Where the extremum is unique (almost everywhere) this is the exact derivative. An input with a
NaN in a reduced slice gives a NaN gradient for that slice.

matmul uses the transpose flags, never transpose nodes: for C = op(A) op(B),
    dA = dC op(B)^T   (or its transpose when A is transposed)
    dB = op(A)^T dC   (or its transpose when B is transposed)
and batched operands work unchanged (the leading axes are batch axes on both sides).
"""
from __future__ import annotations


def _reduce_axes(node):
    rank = node.inputs[0].type.rank     # the shape rule already checked the axes are valid
    return tuple(sorted(a % rank for a in node.attrs["axes"]))


def _expand(ctx, node, v):
    """Broadcast a reduced value (shape of the node's output) back to the input's shape."""
    x = node.inputs[0]
    axes = _reduce_axes(node)
    if node.attrs["keepdims"]:
        dims = range(x.type.rank)
    else:
        dims = [a for a in range(x.type.rank) if a not in axes]
    return ctx.broadcast(v, x.shape, dims)


def _reduce_sum(ctx, node, dy, needs):
    return (_expand(ctx, node, dy),)


def _reduce_extremum(ctx, node, dy, needs):
    x = node.inputs[0]
    y = node.outputs[0]
    axes = _reduce_axes(node)
    if not axes:
        return (dy,)
    hits = ctx.cast(ctx.emit("equal", [x, _expand(ctx, node, y)]), x.dtype)
    count = ctx.emit("reduce_sum", [hits], axes=axes, keepdims=node.attrs["keepdims"])
    return (ctx.mul(hits, _expand(ctx, node, ctx.div(dy, count))),)


def _matmul(ctx, node, dy, needs):
    a, b = node.inputs
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    da = db = None
    if needs[0]:
        if ta:      # A^T = dC op(B)^T  ->  A = op(B) dC^T
            da = ctx.emit("matmul", [b, dy], transpose_a=tb, transpose_b=True)
        else:       # A = dC op(B)^T
            da = ctx.emit("matmul", [dy, b], transpose_a=False, transpose_b=not tb)
    if needs[1]:
        if tb:      # B^T = op(A)^T dC  ->  B = dC^T op(A)
            db = ctx.emit("matmul", [dy, a], transpose_a=True, transpose_b=ta)
        else:       # B = op(A)^T dC
            db = ctx.emit("matmul", [a, dy], transpose_a=not ta, transpose_b=False)
    return (da, db)


RULES = {
    "reduce_sum": _reduce_sum, "reduce_max": _reduce_extremum, "reduce_min": _reduce_extremum,
    "matmul": _matmul,
}
