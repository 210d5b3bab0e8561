"""Helpers shared by the op definitions: shape checks with good messages, cost formulas."""
from __future__ import annotations

from ..errors import DTypeError, ShapeError
from ..opdef import Cost
from ..symbolic import format_dim, format_shape, product
from ..types import TensorType


def shapes_text(types) -> str:
    return ", ".join(str(t) for t in types)


def require_same_shape(op: str, types) -> tuple:
    first = types[0].shape
    for t in types[1:]:
        if t.shape != first:
            raise ShapeError(f"{op} needs operands of one shape (the front end inserts explicit "
                             f"broadcasts), found {shapes_text(types)}")
    return first


def require_same_dtype(op: str, types):
    first = types[0].dtype
    for t in types[1:]:
        if t.dtype != first:
            raise DTypeError(f"{op} needs operands of one dtype, found {shapes_text(types)}")
    return first


def require_dtype(op: str, t: TensorType, allowed, what: str, operand: str = "operand"):
    if t.dtype not in allowed:
        names = "/".join(d.name for d in allowed)
        raise DTypeError(f"{op} needs a {names} {operand} ({what}), found {t}")


def require_rank(op: str, t: TensorType, rank: int, what: str):
    if t.rank != rank:
        raise ShapeError(f"{op} needs a rank-{rank} {what}, found {t}")


def require_dim_equal(op: str, a, b, what: str, types):
    if a != b:
        raise ShapeError(f"{op}: {what} must match, found {format_dim(a)} and {format_dim(b)} "
                         f"(operands {shapes_text(types)})")


def require_static(op: str, dims, what: str, operands=None):
    """`operands` (types), when given, are shown instead of the bare dims."""
    for d in dims:
        if not isinstance(d, int):
            found = shapes_text(operands) if operands else f"symbolic {format_shape(dims)}"
            raise ShapeError(f"{op} needs static {what}, found {found}")


def normalise_axes(op: str, axes, rank: int, operands=None) -> tuple:
    """Axes in [0, rank), sorted; `operands` (types) are named in the error messages."""
    found = f" (operand {shapes_text(operands)})" if operands else ""
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise ShapeError(f"{op}: axis {a} is out of range for rank {rank}{found}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {tuple(axes)}{found}")
    return tuple(sorted(out))


def elementwise_cost(flops_per_element: int):
    def cost(ins, outs, attrs):
        n = product(outs[0].shape)
        moved = sum((t.nbytes for t in list(ins) + list(outs)), 0)
        return Cost(n * flops_per_element, moved)
    return cost


def movement_cost(ins, outs, attrs):
    """Data movement: no arithmetic, every byte read and written once."""
    return Cost(0, sum((t.nbytes for t in list(ins) + list(outs)), 0))
