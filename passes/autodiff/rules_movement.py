"""VJP rules for data-movement ops: broadcast, reshape, transpose, slice, pad, concat, gather.

Each is linear, so each gradient is the adjoint movement: broadcast -> reduce_sum, slice ->
zero padding, pad -> slice, concat -> slices, gather -> scatter-add. Dims may be symbolic;
paddings the `pad` op cannot express (its widths are static ints) fall back to concatenating
broadcast zeros, which works for any dim.
"""
from __future__ import annotations

from ir.symbolic import product


def _broadcast(ctx, node, dy, needs):
    (x,) = node.inputs
    shape, dims = node.attrs["shape"], node.attrs["dims"]
    new_axes = [a for a in range(len(shape)) if a not in dims]
    stretched = [d for i, d in enumerate(dims) if x.shape[i] == 1 and shape[d] != 1]
    if not new_axes:                           # only size-1 axes stretched: keep them
        return (ctx.reduce_sum(dy, stretched, keepdims=True),)
    summed = ctx.reduce_sum(dy, new_axes + stretched)
    return (ctx.reshape(summed, x.shape),)     # puts back the size-1 axes that stretched


def _reshape(ctx, node, dy, needs):
    return (ctx.reshape(dy, node.inputs[0].shape),)


def _transpose(ctx, node, dy, needs):
    perm = node.attrs["perm"]
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (ctx.transpose(dy, inverse),)


def _place(ctx, g, low, high):
    """Surround `g` with `low`/`high` zeros per axis. Static widths use one `pad`; symbolic ones
    (e.g. a slice starting at N-2) concatenate broadcast zeros, which any dim allows."""
    static = [isinstance(lo, int) and isinstance(hi, int) for lo, hi in zip(low, high)]
    g = ctx.pad(g, [lo if s else 0 for lo, s in zip(low, static)],
                [hi if s else 0 for hi, s in zip(high, static)])
    for axis, is_static in enumerate(static):
        if is_static:
            continue
        parts = []
        for width, before in ((low[axis], True), (high[axis], False)):
            if width == 0:
                continue
            shape = list(g.shape)
            shape[axis] = width
            parts.append((before, ctx.zeros(g.type.with_shape(shape))))
        pieces = [z for before, z in parts if before] + [g] + [z for b, z in parts if not b]
        g = ctx.emit("concat", pieces, axis=axis)
    return g


def _slice(ctx, node, dy, needs):
    (x,) = node.inputs
    starts, stops, steps = node.attrs["starts"], node.attrs["stops"], node.attrs["steps"]
    if any(d == 0 for d in dy.shape):
        return (ctx.zeros(x.type),)            # an empty slice: nothing flows back
    g = dy
    strided = [a for a, st in enumerate(steps) if st > 1]
    extents = list(dy.shape)                   # extent covered in x after spreading
    if strided:
        # Spread each strided axis: element k lands at k*step, zeros between (pad a new
        # size-1 axis to `step`, then merge it back).
        split = []
        for a, d in enumerate(dy.shape):
            split += [d, 1] if a in strided else [d]
        g = ctx.reshape(g, split)
        low = [0] * len(split)
        high = [0] * len(split)
        merged = []
        pos = 0
        for a, d in enumerate(dy.shape):
            if a in strided:
                high[pos + 1] = steps[a] - 1
                merged.append(d * steps[a])
                pos += 2
            else:
                merged.append(d)
                pos += 1
        g = ctx.reshape(ctx.pad(g, low, high), merged)
        extents = merged
        # The last element's trailing zeros may run past the end of x: trim them.
        trim = list(extents)
        for a in strided:
            room = x.shape[a] - starts[a] - extents[a]
            if not (isinstance(room, int) and room >= 0):
                trim[a] = (dy.shape[a] - 1) * steps[a] + 1
        if trim != extents:
            g = ctx.slice(g, [0] * len(trim), trim)
            extents = trim
    low = list(starts)
    high = [d - lo - e for d, lo, e in zip(x.shape, starts, extents)]
    return (_place(ctx, g, low, high),)


def _pad(ctx, node, dy, needs):
    (x,) = node.inputs
    low = node.attrs["low"]
    return (ctx.slice(dy, low, [lo + d for lo, d in zip(low, x.shape)]),)


def _concat(ctx, node, dy, needs):
    axis = node.attrs["axis"] % dy.type.rank
    grads = []
    offset = 0
    for x, need in zip(node.inputs, needs):
        size = x.shape[axis]
        if need:
            starts = [0] * dy.type.rank
            stops = list(dy.shape)
            starts[axis], stops[axis] = offset, offset + size
            grads.append(ctx.slice(dy, starts, stops))
        else:
            grads.append(None)
        offset = offset + size
    return tuple(grads)


def _gather(ctx, node, dy, needs):
    """Scatter-add built from primitives: one_hot(indices)^T @ dy.

    With data [pre..., n, post...] and indices of I elements, dy is viewed as [P, I, Q] and the
    gradient is onehot[I, n]^T contracted over I, then viewed as data's shape. It costs an I x n
    one-hot matrix, fine for the class/embedding sizes graphc targets; a dedicated scatter-add
    primitive would avoid it (not added: every op needs a reference, lowering and rules)."""
    data, indices = node.inputs
    axis = node.attrs["axis"] % data.type.rank
    n = data.shape[axis]
    pre, post = data.shape[:axis], data.shape[axis + 1:]
    count, p, q = product(indices.shape), product(pre), product(post)
    flat = ctx.reshape(indices, (count,))
    positions = ctx.emit("iota", [], shape=(count, n), axis=1, dtype=indices.dtype)
    hits = ctx.emit("equal", [ctx.broadcast(flat, (count, n), (0,)), positions])
    one_hot = ctx.cast(hits, data.dtype)
    if p == 1:
        grad = ctx.emit("matmul", [one_hot, ctx.reshape(dy, (count, q))], transpose_a=True)
    else:
        batched = ctx.broadcast(one_hot, (p, count, n), (1, 2))
        grad = ctx.emit("matmul", [batched, ctx.reshape(dy, (p, count, q))], transpose_a=True)
    return (ctx.reshape(grad, data.shape), None)


RULES = {
    "broadcast": _broadcast, "reshape": _reshape, "transpose": _transpose, "slice": _slice,
    "pad": _pad, "concat": _concat, "gather": _gather,
}
