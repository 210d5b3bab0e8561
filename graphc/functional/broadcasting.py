"""numpy-style broadcasting, made explicit.

Elementwise primitives take operands of one shape, so the front end computes the broadcast
shape and inserts a `broadcast` node on each operand that needs one (and only there). Shapes
are aligned on the right; two dims are compatible when they are provably equal (ints equal,
or symbolic polynomials with the same canonical form) or one of them is the int 1. `N` and `M`
are not provably equal, so they do not broadcast: that is a ShapeError naming the op, both
operand types and the user's line.
"""
from __future__ import annotations

from ir.errors import DTypeError, ShapeError
from ir.location import user_frame_loc
from ir.symbolic import as_shape, format_dim, format_shape

from ..scope import node_path
from ..tensor import Tensor, TraceError, as_tensor, emit


def _describe(x) -> str:
    return str(x.type) if isinstance(x, Tensor) else format_shape(x)


def broadcast_shapes(op: str, *operands) -> tuple:
    """The broadcast shape of Tensors (or plain shapes); ShapeError at the user's line if none."""
    shapes = [tuple(x.shape) if isinstance(x, Tensor) else tuple(x) for x in operands]
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dim = 1
        for s in shapes:
            k = axis - (rank - len(s))
            if k < 0:
                continue
            d = s[k]
            if d == dim or d == 1:
                continue
            if dim == 1:
                dim = d
                continue
            both = " and ".join(_describe(x) for x in operands)
            raise ShapeError(
                f"{op}: cannot broadcast {both}: axis {axis} (from the right: {rank - axis}) has "
                f"sizes {format_dim(dim)} and {format_dim(d)}, which are neither provably equal "
                "nor 1", user_frame_loc(node_path(op)))
        out.append(dim)
    return tuple(out)


def broadcast_to(x, shape) -> Tensor:
    """`x` replicated to `shape` (ints, symbol names or symbolic dims; numpy rules: x's axes
    align with the trailing axes of `shape`); returns `x` itself when it already has it."""
    x = as_tensor(x, op="broadcast")
    try:
        shape = as_shape(shape)
    except ShapeError as e:
        raise ShapeError(f"broadcast: {e.message}", user_frame_loc(node_path("broadcast"))) \
            from None
    if tuple(x.shape) == shape:
        return x
    if x.ndim > len(shape):
        raise ShapeError(f"broadcast: cannot broadcast {x.type} to the lower-rank shape "
                         f"{format_shape(shape)}", user_frame_loc(node_path("broadcast")))
    dims = tuple(range(len(shape) - x.ndim, len(shape)))
    return emit("broadcast", [x], {"shape": shape, "dims": dims})


def tensor_operands(op: str, *xs) -> list:
    """Operands as Tensors: dtype-less values (Python scalars, lists) take the dtype of the
    first Tensor operand; at least one operand must be a Tensor."""
    like = next((x for x in xs if isinstance(x, Tensor)), None)
    if like is None:
        raise TraceError(f"{op}: at least one operand must be a Tensor, found "
                         f"{', '.join(type(x).__name__ for x in xs)}", user_frame_loc())
    return [as_tensor(x, like, op) for x in xs]


def require_same_dtype(op: str, *xs: Tensor) -> None:
    first = xs[0]
    for x in xs[1:]:
        if x.dtype != first.dtype:
            types = " and ".join(str(t.type) for t in xs)
            raise DTypeError(f"{op}: operand dtypes differ, found {types}; graphc never promotes "
                             "dtypes silently: cast one operand with .astype(...)",
                             user_frame_loc(node_path(op)))


def broadcast_all(op: str, *xs: Tensor) -> list:
    """Broadcast Tensors to their common shape (a broadcast node only where needed)."""
    shape = broadcast_shapes(op, *xs)
    return [broadcast_to(x, shape) for x in xs]


def elementwise(op: str, *xs) -> Tensor:
    """Apply elementwise primitive `op` with numpy broadcasting and scalar conversion."""
    ts = tensor_operands(op, *xs)
    require_same_dtype(op, *ts)
    return emit(op, broadcast_all(op, *ts))
