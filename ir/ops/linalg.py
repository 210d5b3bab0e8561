"""matmul: 2-D or batched, with transpose flags absorbed (no transpose copies needed)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import ShapeError
from ..opdef import Cost, OpDef, register
from ..symbolic import product
from ..types import TensorType
from ._common import require_dim_equal, require_dtype, require_same_dtype, shapes_text

NUMERIC = dt.FLOAT_DTYPES + dt.INT_DTYPES


def matmul_dims(a, b, ta, tb):
    """(batch, M, K, N) of a matmul, checking the contraction and batch dims."""
    if a.rank < 2 or b.rank < 2 or a.rank != b.rank:
        raise ShapeError(f"matmul needs two operands of one rank >= 2 (batched matmul broadcasts "
                         f"in the front end), found {shapes_text([a, b])}")
    m, k = (a.shape[-1], a.shape[-2]) if ta else (a.shape[-2], a.shape[-1])
    k2, n = (b.shape[-1], b.shape[-2]) if tb else (b.shape[-2], b.shape[-1])
    require_dim_equal("matmul", k, k2, "the contracted dims (columns of a, rows of b)", [a, b])
    for i, (da, db) in enumerate(zip(a.shape[:-2], b.shape[:-2])):
        require_dim_equal("matmul", da, db, f"batch dim {i}", [a, b])
    return a.shape[:-2], m, k, n


def _matmul_infer(ins, attrs):
    a, b = ins
    require_same_dtype("matmul", ins)
    require_dtype("matmul", a, NUMERIC, "matrix product")
    batch, m, _, n = matmul_dims(a, b, attrs["transpose_a"], attrs["transpose_b"])
    return [TensorType(batch + (m, n), a.dtype)]


def _matmul_ref(ins, attrs):
    a, b = ins
    if attrs["transpose_a"]:
        a = np.swapaxes(a, -1, -2)
    if attrs["transpose_b"]:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def _matmul_cost(ins, outs, attrs):
    batch, m, k, n = matmul_dims(ins[0], ins[1], attrs["transpose_a"], attrs["transpose_b"])
    return Cost(2 * product(batch) * m * k * n, ins[0].nbytes + ins[1].nbytes + outs[0].nbytes)


register(OpDef("matmul", ("a", "b"),
               {"transpose_a": AttrSpec("bool", False), "transpose_b": AttrSpec("bool", False)},
               _matmul_infer, _matmul_ref, fusion="contraction", cost=_matmul_cost,
               doc="a @ b over the last two axes (a^T / b^T when flagged); leading axes are "
                   "batch axes and must match"))
