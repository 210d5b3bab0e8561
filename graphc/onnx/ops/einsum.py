"""Einsum, lowered to graphc primitives.

Each operand first loses its repeated labels (a diagonal: transpose the pair last, flatten it,
gather the i*(n+1) entries) and the labels nobody else needs (a reduce_sum). Operands are then
contracted left to right: labels shared by both sides that are still needed are batch axes,
shared ones no longer needed are contracted, the rest are kept, so every contraction is one
batched matmul between two reshaped, transposed operands. The result is summed over leftover
labels and transposed into the output order. '...' stands for broadcast axes (size-1 axes
are expanded to match).
"""
from __future__ import annotations

import numpy as np

from ir.symbolic import product

from ... import functional as F
from ...tensor import emit
from ..context import onnx_op

_ELLIPSIS_LABELS = [chr(0x3B1 + i) for i in range(24)]     # Greek letters, never in equations


def _parse(ctx, equation: str, ranks: list):
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        ctx.unsupported(f"equation {equation!r} has {len(terms)} operand terms for "
                        f"{len(ranks)} inputs")
    counts_ell = []
    for term, rank in zip(terms, ranks):
        n = rank - (len(term) - 3) if "..." in term else 0
        if ("..." in term and n < 0) or ("..." not in term and len(term) != rank):
            ctx.unsupported(f"term {term!r} does not fit a rank-{rank} input")
        counts_ell.append(n)
    ell_rank = max(counts_ell, default=0)
    labels = []
    for term, n in zip(terms, counts_ell):
        before, dots, after = term.partition("...")
        middle = _ELLIPSIS_LABELS[ell_rank - n:ell_rank] if dots else []
        labels.append(list(before) + middle + list(after))
    for ls in labels:
        for ch in ls:
            if not (ch.isalpha()):
                ctx.unsupported(f"equation {equation!r}: {ch!r} is not a label")
    ell = _ELLIPSIS_LABELS[:ell_rank]
    if arrow:
        out = list(rhs.replace("...", "\0"))
        out = [x for ch in out for x in (ell if ch == "\0" else [ch])]
    else:
        counts = {}
        for ls in labels:
            for ch in ls:
                counts[ch] = counts.get(ch, 0) + 1
        out = ell + sorted(ch for ch, c in counts.items() if c == 1 and ch not in ell)
    return labels, out


def _diagonals(x, labels):
    """Remove repeated labels by taking diagonals."""
    while True:
        dup = next((ch for ch in labels if labels.count(ch) > 1), None)
        if dup is None:
            return x, labels
        a = labels.index(dup)
        b = labels.index(dup, a + 1)
        n = x.shape[a]
        rest = [i for i in range(x.ndim) if i not in (a, b)]
        x = F.transpose(x, rest + [a, b])
        x = F.reshape(x, tuple(x.shape[:-2]) + (n * n,))
        x = F.take(x, np.arange(n, dtype=np.int64) * (n + 1), x.ndim - 1)
        labels = [labels[i] for i in rest] + [dup]


def _sum_out(x, labels, keep):
    axes = [i for i, ch in enumerate(labels) if ch not in keep]
    if not axes:
        return x, labels
    return F.sum(x, tuple(axes)), [ch for ch in labels if ch in keep]


def _contract(a, la, b, lb, keep):
    sizes = {}
    for t, ls in ((a, la), (b, lb)):
        for ch, d in zip(ls, t.shape):
            if sizes.get(ch, 1) == 1:
                sizes[ch] = d
    a = F.broadcast_to(a, tuple(sizes[ch] for ch in la))
    b = F.broadcast_to(b, tuple(sizes[ch] for ch in lb))
    batch = [ch for ch in la if ch in lb and ch in keep]
    summed = [ch for ch in la if ch in lb and ch not in keep]
    a_only = [ch for ch in la if ch not in lb]
    b_only = [ch for ch in lb if ch not in la]
    a = F.transpose(a, [la.index(ch) for ch in batch + a_only + summed])
    b = F.transpose(b, [lb.index(ch) for ch in batch + summed + b_only])

    def size(chs):
        return product(sizes[ch] for ch in chs)
    a = F.reshape(a, (size(batch), size(a_only), size(summed)))
    b = F.reshape(b, (size(batch), size(summed), size(b_only)))
    y = emit("matmul", [a, b])
    out_labels = batch + a_only + b_only
    return F.reshape(y, tuple(sizes[ch] for ch in out_labels)), out_labels


@onnx_op("Einsum", versions=(12, 28))
def einsum(ctx):
    xs = [ctx.tensor(i) for i in range(ctx.n_inputs)]
    labels, out = _parse(ctx, ctx.attr("equation"), [x.ndim for x in xs])
    if len(set(out)) != len(out):
        ctx.unsupported(f"output labels {''.join(out)} repeat a label")
    prepared = []
    for k, (x, ls) in enumerate(zip(xs, labels)):
        x, ls = _diagonals(x, ls)
        others = set(out).union(*(set(l2) for j, l2 in enumerate(labels) if j != k))
        x, ls = _sum_out(x, ls, others)
        prepared.append((x, ls))
    x, ls = prepared[0]
    for k in range(1, len(prepared)):
        y, ly = prepared[k]
        later = set(out).union(*(set(l2) for _, l2 in prepared[k + 1:]))
        x, ls = _contract(x, ls, y, ly, later)
    x, ls = _sum_out(x, ls, set(out))
    missing = [ch for ch in out if ch not in ls]
    if missing:
        ctx.unsupported(f"output labels {''.join(missing)} appear in no operand")
    return F.transpose(x, [ls.index(ch) for ch in out])
