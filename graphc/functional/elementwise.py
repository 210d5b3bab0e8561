"""Elementwise ops: arithmetic, comparisons, logic, math functions and activations.

Binary ops broadcast numpy-style (explicit `broadcast` nodes) and turn Python scalars into
constants of the other operand's dtype. Activations are compositions of primitives, written
so that neither branch of a `select` can overflow: autodiff multiplies the untaken branch's
derivative by zero, and 0 * inf would be NaN.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ir import dtypes as _dt
from ir.errors import AttrError, DTypeError
from ir.location import user_frame_loc

from ..scope import node_path
from ..tensor import Tensor, as_tensor, emit
from .broadcasting import broadcast_all, elementwise, require_same_dtype, tensor_operands


# -- binary arithmetic -------------------------------------------------------------------------
def add(a, b) -> Tensor:
    """a + b, broadcasting."""
    return elementwise("add", a, b)


def subtract(a, b) -> Tensor:
    """a - b, broadcasting."""
    return elementwise("sub", a, b)


def multiply(a, b) -> Tensor:
    """a * b, broadcasting."""
    return elementwise("mul", a, b)


def divide(a, b) -> Tensor:
    """a / b, broadcasting. On int tensors this is the `div` primitive: it truncates toward
    zero and x / 0 is 0 (graphc does not promote ints to floats)."""
    return elementwise("div", a, b)


def power(a, b) -> Tensor:
    """a ** b (float tensors). A literal exponent 2 becomes a * a, which is exact and also
    works for int tensors."""
    if isinstance(a, Tensor) and isinstance(b, numbers.Real) and not isinstance(b, bool):
        if b == 2:
            return multiply(a, a)
        if b == 1:
            return a
    return elementwise("pow", a, b)


def maximum(a, b) -> Tensor:
    """Elementwise max(a, b), broadcasting; NaN propagates (like numpy)."""
    return elementwise("maximum", a, b)


def minimum(a, b) -> Tensor:
    """Elementwise min(a, b), broadcasting; NaN propagates (like numpy)."""
    return elementwise("minimum", a, b)


# -- comparisons and logic ---------------------------------------------------------------------
def less(a, b) -> Tensor:
    """a < b as a bool tensor, broadcasting."""
    return elementwise("less", a, b)


def less_equal(a, b) -> Tensor:
    """a <= b as a bool tensor, broadcasting."""
    return elementwise("less_equal", a, b)


def greater(a, b) -> Tensor:
    """a > b as a bool tensor, broadcasting."""
    return elementwise("greater", a, b)


def greater_equal(a, b) -> Tensor:
    """a >= b as a bool tensor, broadcasting."""
    return elementwise("greater_equal", a, b)


def equal(a, b) -> Tensor:
    """a == b elementwise, as a bool tensor (Tensor.eq)."""
    return elementwise("equal", a, b)


def not_equal(a, b) -> Tensor:
    """a != b elementwise, as a bool tensor (Tensor.ne)."""
    return elementwise("not_equal", a, b)


def logical_and(a, b) -> Tensor:
    """a and b on bool tensors (the `&` operator)."""
    return elementwise("logical_and", a, b)


def logical_or(a, b) -> Tensor:
    """a or b on bool tensors (the `|` operator)."""
    return elementwise("logical_or", a, b)


def logical_not(x) -> Tensor:
    """not x on a bool tensor (the `~` operator)."""
    return emit("logical_not", [as_tensor(x, op="logical_not")])


def where(cond, a, b) -> Tensor:
    """Elementwise `a if cond else b` with numpy broadcasting over all three operands.
    `cond` must be a bool tensor; scalars in `a`/`b` take the other branch's dtype."""
    cond = as_tensor(cond, _dt.bool_, "where")
    if cond.dtype is not _dt.bool_:
        raise DTypeError(f"where: the condition must be a bool tensor, found {cond.type}; "
                         "compare first (e.g. x > 0)", user_frame_loc(node_path("select")))
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = as_tensor(a, op="where")
    a, b = tensor_operands("select", a, b)
    require_same_dtype("select", a, b)
    return emit("select", broadcast_all("select", cond, a, b))


def cast(x, dtype) -> Tensor:
    """x converted to `dtype` (float->int truncates and saturates, NaN->0; to bool: x != 0).
    Casting to the dtype x already has returns x."""
    x = as_tensor(x, op="cast")
    to = _dt.dtype(dtype)
    if x.dtype is to:
        return x
    return emit("cast", [x], {"dtype": to})


# -- unary math (one primitive each) -----------------------------------------------------------
def _unary(op: str, x) -> Tensor:
    return emit(op, [as_tensor(x, op=op)])


def negative(x) -> Tensor:
    """-x."""
    return _unary("neg", x)


def abs(x) -> Tensor:  # noqa: A001  (graphc.abs mirrors numpy.abs)
    """|x|."""
    return _unary("abs", x)


def sign(x) -> Tensor:
    """-1, 0 or 1 by the sign of x (NaN stays NaN)."""
    return _unary("sign", x)


def exp(x) -> Tensor:
    """e ** x."""
    return _unary("exp", x)


def log(x) -> Tensor:
    """Natural logarithm; log(0) = -inf, log(x < 0) = NaN."""
    return _unary("log", x)


def log1p(x) -> Tensor:
    """log(1 + x), accurate for small x."""
    return _unary("log1p", x)


def sqrt(x) -> Tensor:
    """Square root."""
    return _unary("sqrt", x)


def rsqrt(x) -> Tensor:
    """1 / sqrt(x)."""
    return _unary("rsqrt", x)


def reciprocal(x) -> Tensor:
    """1 / x."""
    return _unary("reciprocal", x)


def erf(x) -> Tensor:
    """The error function."""
    return _unary("erf", x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return _unary("tanh", x)


def sigmoid(x) -> Tensor:
    """1 / (1 + e**-x), evaluated stably on both tails by the primitive."""
    return _unary("sigmoid", x)


def relu(x) -> Tensor:
    """max(x, 0); NaN propagates."""
    return _unary("relu", x)


def square(x) -> Tensor:
    """x * x."""
    x = as_tensor(x, op="mul")
    return multiply(x, x)


# -- activations built from primitives ---------------------------------------------------------
def _check_alpha(op: str, alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise AttrError(f"{op}: alpha must be a number, found {alpha!r}", user_frame_loc())
    return float(alpha)


def _float_input(op: str, x) -> Tensor:
    x = as_tensor(x, op=op)
    if not x.dtype.is_float:
        raise DTypeError(f"{op} needs a float tensor, found {x.type}; cast it with "
                         ".astype('f32')", user_frame_loc(node_path(op)))
    return x


def leaky_relu(x, alpha: float = 0.01) -> Tensor:
    """x where x > 0, else alpha * x."""
    alpha = _check_alpha("leaky_relu", alpha)
    x = _float_input("leaky_relu", x)
    return where(greater(x, 0.0), x, multiply(x, alpha))


def elu(x, alpha: float = 1.0) -> Tensor:
    """x where x > 0, else alpha * (e**x - 1). The exponential sees min(x, 0) so the unused
    branch never overflows (keeps gradients finite)."""
    alpha = _check_alpha("elu", alpha)
    x = _float_input("elu", x)
    negative_part = multiply(subtract(exp(minimum(x, 0.0)), 1.0), alpha)
    return where(greater(x, 0.0), x, negative_part)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants (Klambauer et al. 2017)."""
    return multiply(elu(x, SELU_ALPHA), SELU_SCALE)


def gelu(x, approximate=False) -> Tensor:
    """Gaussian error linear unit. approximate=False (or "none"): 0.5 x (1 + erf(x / sqrt 2));
    approximate="tanh" (or True, JAX's spelling):
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))."""
    x = _float_input("gelu", x)
    if approximate in (False, None, "none"):
        inner = erf(multiply(x, 1.0 / math.sqrt(2.0)))
    elif approximate is True or approximate == "tanh":
        cube = multiply(multiply(x, x), x)
        inner = tanh(multiply(add(x, multiply(cube, 0.044715)), math.sqrt(2.0 / math.pi)))
    else:
        raise AttrError(f"gelu: approximate must be False, 'none', True or 'tanh', found "
                        f"{approximate!r}", user_frame_loc())
    return multiply(multiply(x, 0.5), add(inner, 1.0))


def softplus(x) -> Tensor:
    """log(1 + e**x) computed stably as max(x, 0) + log1p(e**-|x|)."""
    x = _float_input("softplus", x)
    return add(relu(x), log1p(exp(negative(abs(x)))))


def softsign(x) -> Tensor:
    """x / (1 + |x|)."""
    x = _float_input("softsign", x)
    return divide(x, add(abs(x), 1.0))


def clip(x, lo=None, hi=None) -> Tensor:
    """min(max(x, lo), hi); either bound may be None, a scalar or a broadcastable tensor.
    NaN stays NaN (like numpy.clip)."""
    x = as_tensor(x, op="clip")
    if lo is not None:
        x = maximum(x, lo)
    if hi is not None:
        x = minimum(x, hi)
    return x


def is_finite(x) -> Tensor:
    """True where x is neither inf nor NaN (|x| < inf is false for both)."""
    x = _float_input("is_finite", x)
    return less(abs(x), np.inf)
