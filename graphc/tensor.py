"""The symbolic Tensor and the graph-under-construction it lives in.

A `Tensor` is a handle on one `ir.Value` of the graph being traced. Arithmetic on Tensors
appends nodes to that graph; nothing is computed until the graph runs. This module is the
layer every other front-end piece (functional ops, nn layers, autodiff at trace time) builds
on, and its public API is deliberately small:

    current_graph()           the ir.Graph being traced (TraceError when none is)
    building(graph)           context manager: trace into an existing graph
    emit(op, inputs, attrs)   append one primitive node with the user's loc; returns Tensor(s)
    wrap(value) / unwrap(x)   ir.Value <-> Tensor
    constant(v, dtype=None)   a `constant` node
    as_tensor(x, like, op)    Tensor from a Tensor, Value, Python scalar/list or numpy array

Every node gets `loc = Loc(user's file, user's line, "<scopes>/<op>")`: the innermost stack
frame outside graphc's own packages, and the layer path from `graphc.scope`.

Tensors compare by identity (`==` is NOT elementwise): a Tensor can be a dict key or set
member, which layers and autodiff rely on. Use `x.eq(y)` / `x.ne(y)` for elementwise
equality; `<`, `<=`, `>`, `>=` are elementwise and give bool Tensors.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np

from ir import dtypes as _dt
from ir.builder import make_node
from ir.errors import DTypeError, GraphcError
from ir.graph import Graph, Value
from ir.location import user_frame_loc
from ir.symbolic import SymDim
from ir.types import TensorType

from .scope import node_path


class TraceError(GraphcError):
    """Tracing was misused: no active trace, a Tensor from another trace, a bad return value,
    a duplicate parameter name, or asking a symbolic Tensor for its (unknown) values."""


# -- the stack of graphs being built -----------------------------------------------------------
class TraceState:
    """One graph under construction plus the bookkeeping tracing needs for it."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.param_locs: dict = {}   # param name -> Loc where it was created (for duplicates)
        self.next_seed = 0           # default seeds for dropout, unique within the graph

    def take_seed(self) -> int:
        seed = self.next_seed
        self.next_seed += 1
        return seed


_LOCAL = threading.local()


def _trace_stack() -> list:
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    return stack


@contextmanager
def building(graph: Graph) -> Iterator[TraceState]:
    """Make `graph` the graph new nodes go into (innermost wins); yields its TraceState."""
    if not isinstance(graph, Graph):
        raise TraceError(f"building() needs an ir.Graph, found {type(graph).__name__}")
    state = TraceState(graph)
    for v in graph.inputs:   # params already in the graph count for the uniqueness check
        if v.role in ("param", "state"):
            state.param_locs[v.name] = None
    stack = _trace_stack()
    stack.append(state)
    try:
        yield state
    finally:
        stack.pop()


def is_tracing() -> bool:
    return bool(_trace_stack())


def current_trace() -> TraceState:
    stack = _trace_stack()
    if not stack:
        raise TraceError("no graph is being traced: build Tensors inside a function traced with "
                         "graphc.function(...) or graphc.trace(...)", user_frame_loc())
    return stack[-1]


def current_graph() -> Graph:
    """The ir.Graph being traced (the innermost one when traces nest)."""
    return current_trace().graph


# -- emitting nodes ----------------------------------------------------------------------------
def _operand_value(graph: Graph, x, op: str, i: int) -> Value:
    if isinstance(x, Tensor):
        if x.graph is not graph:
            raise TraceError(f"{op}: operand {i} is {x!r} from graph {x.graph.name!r}, but the "
                             f"graph being traced is {graph.name!r}; a Tensor cannot cross "
                             "traces (pass it in as an input instead)", user_frame_loc())
        return x.value
    if isinstance(x, Value):
        return x
    raise TraceError(f"{op}: operand {i} must be a Tensor, found {type(x).__name__} {x!r} "
                     "(convert scalars and arrays with graphc.constant)", user_frame_loc())


def emit(op: str, inputs=(), attrs: Optional[dict] = None):
    """Append primitive `op` to the current graph; returns its output Tensor (a tuple of
    Tensors for a multi-output op). Operands are Tensors (or ir.Values) of the current graph;
    attributes are checked and the result type inferred by `ir.builder.make_node`. The node's
    loc is the user's line and the active scope path + op name."""
    graph = current_graph()
    values = [_operand_value(graph, x, op, i) for i, x in enumerate(inputs)]
    loc = user_frame_loc(node_path(op))
    node = make_node(graph, op, values, attrs, loc)
    outs = tuple(Tensor(v, graph) for v in node.outputs)
    return outs[0] if len(outs) == 1 else outs


def wrap(value: Value, graph: Optional[Graph] = None) -> "Tensor":
    """A Tensor for `value`, a Value of `graph` (default: the graph being traced)."""
    if not isinstance(value, Value):
        raise TraceError(f"wrap() needs an ir.Value, found {type(value).__name__}")
    return Tensor(value, graph if graph is not None else current_graph())


def unwrap(x) -> Value:
    """The ir.Value behind a Tensor (a Value passes through)."""
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, Value):
        return x
    raise TraceError(f"unwrap() needs a Tensor, found {type(x).__name__} {x!r}")


# -- constants ---------------------------------------------------------------------------------
_PY_SCALARS = (bool, int, float, np.generic)


def _is_scalar_like(x) -> bool:
    """Python numbers, numpy scalars and (nested) lists of Python numbers: values without a
    dtype of their own, which take the dtype of the Tensor they are combined with."""
    if isinstance(x, _PY_SCALARS):
        return True
    if isinstance(x, (list, tuple)):
        return all(_is_scalar_like(e) for e in x)
    return False


def _default_dtype(arr: np.ndarray) -> _dt.DType:
    if arr.dtype.kind == "b":
        return _dt.bool_
    if arr.dtype.kind in "iu":
        return _dt.i64
    return _dt.f32


def _cast_checked(arr: np.ndarray, to: _dt.DType, op: str, like_text: str) -> np.ndarray:
    """`arr` as dtype `to`, refusing conversions that would change a value."""
    kind = arr.dtype.kind
    if to.is_int and kind == "f":
        raise DTypeError(f"{op}: cannot combine the float value {_short(arr)} with {like_text}; "
                         "use an int value, or cast the tensor first (e.g. .astype('f32'))",
                         user_frame_loc())
    if to is _dt.bool_ and kind != "b":
        raise DTypeError(f"{op}: cannot combine the {arr.dtype.name} value {_short(arr)} with "
                         f"{like_text}; a bool tensor only combines with True/False",
                         user_frame_loc())
    if kind not in "biuf":
        raise DTypeError(f"{op}: {_short(arr)} ({arr.dtype}) is not a number", user_frame_loc())
    out = arr.astype(to.np_dtype)
    if to.is_int and kind in "iu" and arr.size and not np.array_equal(out, arr):
        info = np.iinfo(to.np_dtype)
        raise DTypeError(f"{op}: the value {_short(arr)} does not fit in {to} "
                         f"([{info.min}, {info.max}]) for {like_text}", user_frame_loc())
    return out


def _short(arr: np.ndarray) -> str:
    text = np.array2string(np.asarray(arr), threshold=6)
    return text if len(text) <= 60 else text[:57] + "..."


def constant(value, dtype=None) -> "Tensor":
    """A `constant` node holding `value`.

    Without `dtype`: numpy arrays keep their dtype; Python floats become f32, ints i64 and
    bools bool. With `dtype`, the value is converted (a float value to an int dtype is refused)."""
    if isinstance(value, Tensor):
        return value if dtype is None else value.astype(dtype)
    arr = np.asarray(value)
    if dtype is not None:
        to = _dt.dtype(dtype)
        arr = _cast_checked(arr, to, "constant", f"dtype {to}")
    elif not isinstance(value, np.ndarray):
        arr = _cast_checked(arr, _default_dtype(arr), "constant", "the default dtype")
    else:
        _dt.dtype(arr.dtype)   # refuse float16 and friends with a clear DTypeError
    return emit("constant", [], {"value": arr})


def as_tensor(x, like=None, op: str = "op") -> "Tensor":
    """Turn an operand into a Tensor of the current graph.

    Tensors pass through (a Value is wrapped). Python scalars, numpy scalars and lists of
    Python numbers take the dtype `like` (a DType or a Tensor), with a float value and an int
    dtype refused; numpy arrays keep their own dtype (so f64 data meeting an f32 tensor is a
    DTypeError at the op, never a silent promotion)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, Value):
        return wrap(x)
    if isinstance(like, Tensor):
        like_dt, like_text = like.dtype, f"the {like.type} tensor"
    elif like is not None:
        like_dt = _dt.dtype(like)
        like_text = f"a {like_dt} tensor"
    else:
        like_dt = None
    if _is_scalar_like(x):
        if like_dt is None:
            return constant(x)
        arr = _cast_checked(np.asarray(x), like_dt, op, like_text)
        return emit("constant", [], {"value": arr})
    if isinstance(x, np.ndarray):
        return constant(x)
    raise TraceError(f"{op}: expected a Tensor, a number or a numpy array, found "
                     f"{type(x).__name__} {x!r}", user_frame_loc())


# -- the Tensor --------------------------------------------------------------------------------
class Tensor:
    """A symbolic tensor: an ir.Value of the graph being traced.

    Shapes hold ints and symbolic dims (`x.shape == (N, 784)` with N an ir.SymDim). Equality
    and hashing are by identity (see the module docstring); use `.eq()` / `.ne()` for
    elementwise comparison."""

    __slots__ = ("value", "graph")
    __array_ufunc__ = None     # numpy defers to our reflected operators: ndarray + Tensor works

    def __init__(self, value: Value, graph: Graph):
        self.value = value
        self.graph = graph

    # -- type --------------------------------------------------------------------------------
    @property
    def type(self) -> TensorType:
        return self.value.type

    @property
    def shape(self) -> tuple:
        return self.value.type.shape

    @property
    def dtype(self) -> _dt.DType:
        return self.value.type.dtype

    @property
    def ndim(self) -> int:
        return self.value.type.rank

    @property
    def name(self) -> str:
        return self.value.name

    def __repr__(self) -> str:
        return f"<Tensor %{self.value.name}: {self.value.type}>"

    # -- things a symbolic tensor cannot do --------------------------------------------------
    def __bool__(self):
        raise TraceError(f"the truth value of {self!r} is unknown while tracing (a Tensor has "
                         "no values until the graph runs); use graphc.where(cond, a, b) for a "
                         "data-dependent choice", user_frame_loc())

    def __array__(self, *args, **kwargs):
        raise TraceError(f"{self!r} is symbolic and has no values to convert to numpy; run the "
                         "traced graph to get arrays", user_frame_loc())

    def __len__(self) -> int:
        if not self.shape or isinstance(self.shape[0], SymDim):
            raise TraceError(f"len() needs a static first dim, {self!r} has "
                             f"{'none' if not self.shape else 'a symbolic one'}", user_frame_loc())
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # -- arithmetic --------------------------------------------------------------------------
    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(other, self)

    def __sub__(self, other):
        return F.subtract(self, other)

    def __rsub__(self, other):
        return F.subtract(other, self)

    def __mul__(self, other):
        return F.multiply(self, other)

    def __rmul__(self, other):
        return F.multiply(other, self)

    def __truediv__(self, other):
        return F.divide(self, other)

    def __rtruediv__(self, other):
        return F.divide(other, self)

    def __pow__(self, other):
        return F.power(self, other)

    def __rpow__(self, other):
        return F.power(other, self)

    def __matmul__(self, other):
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        return F.matmul(other, self)

    def __neg__(self):
        return F.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return F.abs(self)

    # -- comparisons and logic (elementwise, bool results) ----------------------------------
    def __lt__(self, other):
        return F.less(self, other)

    def __le__(self, other):
        return F.less_equal(self, other)

    def __gt__(self, other):
        return F.greater(self, other)

    def __ge__(self, other):
        return F.greater_equal(self, other)

    def eq(self, other) -> "Tensor":
        """Elementwise ==, a bool Tensor (`==` itself compares Tensor identity)."""
        return F.equal(self, other)

    def ne(self, other) -> "Tensor":
        """Elementwise !=, a bool Tensor."""
        return F.not_equal(self, other)

    def __and__(self, other):
        return F.logical_and(self, other)

    def __rand__(self, other):
        return F.logical_and(other, self)

    def __or__(self, other):
        return F.logical_or(self, other)

    def __ror__(self, other):
        return F.logical_or(other, self)

    def __invert__(self):
        return F.logical_not(self)

    # identity semantics, stated explicitly so no subclass turns them elementwise by accident
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    # -- shape manipulation ------------------------------------------------------------------
    def __getitem__(self, index):
        return F.getitem(self, index)

    def reshape(self, *shape) -> "Tensor":
        """Reshape; one entry may be -1 (inferred, symbolic dims included)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return F.reshape(self, shape)

    def transpose(self, *perm) -> "Tensor":
        """Permute axes (no arguments: reverse them)."""
        if len(perm) == 1 and isinstance(perm[0], (tuple, list)):
            perm = tuple(perm[0])
        return F.transpose(self, perm or None)

    @property
    def T(self) -> "Tensor":
        return F.transpose(self, None)

    def flatten(self, start_dim: int = 1, end_dim: int = -1) -> "Tensor":
        return F.flatten(self, start_dim, end_dim)

    def astype(self, dtype) -> "Tensor":
        return F.cast(self, dtype)

    # -- reductions --------------------------------------------------------------------------
    def sum(self, axis=None, keepdims: bool = False) -> "Tensor":
        return F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> "Tensor":
        return F.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> "Tensor":
        return F.max(self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False) -> "Tensor":
        return F.min(self, axis, keepdims)

    def argmax(self, axis=None, keepdims: bool = False) -> "Tensor":
        return F.argmax(self, axis, keepdims)


# The functional ops import this module; importing them last closes the cycle safely (the
# Tensor methods above only look F up when called).
from . import functional as F  # noqa: E402
