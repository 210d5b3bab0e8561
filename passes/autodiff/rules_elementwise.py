"""VJP rules for elementwise ops: unary math, binary arithmetic, select and cast.

A rule is `rule(ctx, node, dy, needs) -> tuple` with one entry per node input: the input's
cotangent contribution (a Value of the input's type) or None for "no contribution" (the input
is not on the differentiated path, `needs[i]` is False, or the derivative is zero).

Conventions at points where the derivative does not exist (documented choices):
  relu      derivative 0 at x == 0 (the subgradient PyTorch and JAX use)
  abs       derivative sign(x), so 0 at x == 0
  sign      derivative 0 everywhere (it is piecewise constant): the rule contributes nothing
  maximum   ties (a == b) send the whole gradient to the first operand `a`;
  minimum   likewise to `a`. A NaN operand makes the comparison false, so the gradient then
            goes to `b`.
  pow       d/db = y * log(a) only where a > 0; it is 0 where a <= 0 (a**b is not
            differentiable in b there; for a == 0 and b > 0 the limit is 0). The log is
            guarded on both sides (log of select(a > 0, a, 1), then select) so neither the
            value nor a second derivative sees log(0) or log(negative).
"""
from __future__ import annotations

import math


def _first_output(node):
    return node.outputs[0]


# -- unary -------------------------------------------------------------------------------------
def _neg(ctx, node, dy, needs):
    return (ctx.neg(dy),)


def _abs(ctx, node, dy, needs):
    (x,) = node.inputs
    return (ctx.mul(dy, ctx.emit("sign", [x])),)


def _sign(ctx, node, dy, needs):
    return (None,)   # piecewise constant: the derivative is zero wherever it exists


def _relu(ctx, node, dy, needs):
    (x,) = node.inputs
    positive = ctx.emit("greater", [x, ctx.like(0.0, x)])
    return (ctx.select(positive, dy, ctx.like(0.0, x)),)


def _exp(ctx, node, dy, needs):
    return (ctx.mul(dy, _first_output(node)),)


def _log(ctx, node, dy, needs):
    (x,) = node.inputs
    return (ctx.div(dy, x),)


def _log1p(ctx, node, dy, needs):
    (x,) = node.inputs
    return (ctx.div(dy, ctx.add(x, ctx.like(1.0, x))),)


def _sqrt(ctx, node, dy, needs):
    y = _first_output(node)              # d sqrt(x) = 1 / (2 sqrt(x))
    return (ctx.div(ctx.mul(dy, ctx.like(0.5, y)), y),)


def _rsqrt(ctx, node, dy, needs):
    (x,) = node.inputs
    y = _first_output(node)              # d x^-1/2 = -1/2 x^-3/2 = -1/2 * y / x
    return (ctx.mul(dy, ctx.div(ctx.mul(y, ctx.like(-0.5, y)), x)),)


def _reciprocal(ctx, node, dy, needs):
    y = _first_output(node)              # d 1/x = -1/x^2 = -y^2
    return (ctx.neg(ctx.mul(dy, ctx.mul(y, y))),)


def _tanh(ctx, node, dy, needs):
    y = _first_output(node)              # 1 - tanh^2
    return (ctx.mul(dy, ctx.sub(ctx.like(1.0, y), ctx.mul(y, y))),)


def _sigmoid(ctx, node, dy, needs):
    y = _first_output(node)              # s (1 - s)
    return (ctx.mul(dy, ctx.mul(y, ctx.sub(ctx.like(1.0, y), y))),)


def _erf(ctx, node, dy, needs):
    (x,) = node.inputs                   # 2/sqrt(pi) exp(-x^2)
    gauss = ctx.emit("exp", [ctx.neg(ctx.mul(x, x))])
    return (ctx.mul(dy, ctx.mul(gauss, ctx.like(2.0 / math.sqrt(math.pi), x))),)


# -- binary ------------------------------------------------------------------------------------
def _add(ctx, node, dy, needs):
    return (dy, dy)


def _sub(ctx, node, dy, needs):
    return (dy, ctx.neg(dy) if needs[1] else None)


def _mul(ctx, node, dy, needs):
    a, b = node.inputs
    return (ctx.mul(dy, b) if needs[0] else None,
            ctx.mul(dy, a) if needs[1] else None)


def _div(ctx, node, dy, needs):
    _, b = node.inputs
    y = _first_output(node)
    da = ctx.div(dy, b)                  # dy / b, reused by d/db = -dy a / b^2 = -(dy / b) y
    return (da if needs[0] else None,
            ctx.neg(ctx.mul(da, y)) if needs[1] else None)


def _pow(ctx, node, dy, needs):
    a, b = node.inputs
    y = _first_output(node)
    da = db = None
    if needs[0]:                         # b a^(b-1), written with pow so a == 0 stays finite
        a_pow = ctx.emit("pow", [a, ctx.sub(b, ctx.like(1.0, b))])
        da = ctx.mul(dy, ctx.mul(b, a_pow))
    if needs[1]:                         # y log(a) where a > 0, else 0 (see module docstring)
        zero = ctx.like(0.0, a)
        positive = ctx.emit("greater", [a, zero])
        safe_a = ctx.select(positive, a, ctx.like(1.0, a))
        log_a = ctx.select(positive, ctx.emit("log", [safe_a]), zero)
        db = ctx.mul(dy, ctx.mul(y, log_a))
    return (da, db)


def _choose(compare):
    """maximum/minimum: the winning operand gets dy; ties go to the first operand."""
    def rule(ctx, node, dy, needs):
        a, b = node.inputs
        a_wins = ctx.emit(compare, [a, b])
        zero = ctx.like(0.0, dy)
        return (ctx.select(a_wins, dy, zero) if needs[0] else None,
                ctx.select(a_wins, zero, dy) if needs[1] else None)
    return rule


# -- select and cast ---------------------------------------------------------------------------
def _select(ctx, node, dy, needs):
    cond = node.inputs[0]
    zero = ctx.like(0.0, dy)
    return (None,
            ctx.select(cond, dy, zero) if needs[1] else None,
            ctx.select(cond, zero, dy) if needs[2] else None)


def _cast(ctx, node, dy, needs):
    (x,) = node.inputs
    if not (x.dtype.is_float and node.outputs[0].dtype.is_float):
        return (None,)                   # to or from int/bool: not differentiable
    return (ctx.cast(dy, x.dtype),)


RULES = {
    "neg": _neg, "abs": _abs, "sign": _sign, "relu": _relu, "exp": _exp, "log": _log,
    "log1p": _log1p, "sqrt": _sqrt, "rsqrt": _rsqrt, "reciprocal": _reciprocal,
    "tanh": _tanh, "sigmoid": _sigmoid, "erf": _erf,
    "add": _add, "sub": _sub, "mul": _mul, "div": _div, "pow": _pow,
    "maximum": _choose("greater_equal"), "minimum": _choose("less_equal"),
    "select": _select, "cast": _cast,
}
