"""Elementwise ONNX ops: arithmetic, comparisons, logic, math functions, activations, Clip,
Where, Cast, Max/Min/Sum/Mean and Identity.

ONNX broadcasting is numpy's, which is what graphc.functional does (explicit `broadcast`
nodes). Arithmetic on import-time shape values (Consts holding symbolic dims) is done here
with Python arithmetic on the dims, so `Shape(x)[0] * 16` stays `16*N`.
"""
from __future__ import annotations

import numpy as np

from ir import dtypes as dt
from ir.symbolic import SymDim, dim_div_exact

from ... import functional as F
from ..context import onnx_op
from ..values import Const, graphc_dtype
from .common import any_symbolic, object_array

# -- arithmetic --------------------------------------------------------------------------------
_ARITH = {"Add": F.add, "Sub": F.subtract, "Mul": F.multiply, "Div": F.divide}


def _dim_div(ctx, a, b):
    if isinstance(a, SymDim) or isinstance(b, SymDim):
        try:
            return dim_div_exact(a, b)
        except Exception:
            ctx.unsupported(f"cannot divide the symbolic dim {a} by {b} exactly")
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _fold_symbolic(ctx, fn):
    a, b = (object_array(ctx.value(i).array) for i in (0, 1))
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, object)
    for idx in np.ndindex(a.shape):
        out[idx] = fn(a[idx], b[idx])
    return Const(out, ctx.value(0).dtype)


@onnx_op("Add", "Sub", "Mul", "Div", versions=(7, 13, 14))
def arithmetic(ctx):
    if ctx.all_const() and any_symbolic(ctx):
        fns = {"Add": lambda a, b: a + b, "Sub": lambda a, b: a - b,
               "Mul": lambda a, b: a * b, "Div": lambda a, b: _dim_div(ctx, a, b)}
        return _fold_symbolic(ctx, fns[ctx.op_type])
    return _ARITH[ctx.op_type](ctx.tensor(0), ctx.tensor(1))


@onnx_op("Pow", versions=(7, 12, 13, 15))
def power(ctx):
    x = ctx.tensor(0)
    if ctx.is_const(1) and ctx.value(1).array.size == 1 and x.dtype.is_float:
        e = float(ctx.value(1).array.reshape(()))
        if e == 1.0:
            return x
        if e == 2.0:
            return F.multiply(x, x)
    y = ctx.tensor(1)
    if x.dtype.is_float:
        return F.power(x, F.cast(y, x.dtype))
    # an integer base: compute in floating point and truncate back (the ONNX reference does
    # np.power(x, y).astype(x.dtype))
    work = y.dtype if y.dtype.is_float else dt.f64
    return F.cast(F.power(F.cast(x, work), F.cast(y, work)), x.dtype)


# -- comparisons and logic ---------------------------------------------------------------------
_COMPARE = {"Equal": F.equal, "Less": F.less, "Greater": F.greater,
            "LessOrEqual": F.less_equal, "GreaterOrEqual": F.greater_equal}


@onnx_op("Equal", versions=(7, 11, 13, 19))
@onnx_op("Less", "Greater", versions=(7, 9, 13))
@onnx_op("LessOrEqual", "GreaterOrEqual", versions=(12, 16))
def compare(ctx):
    if ctx.all_const() and any_symbolic(ctx):
        ctx.unsupported("comparing symbolic dims is not decidable at import time")
    return _COMPARE[ctx.op_type](ctx.tensor(0), ctx.tensor(1))


@onnx_op("And", "Or", versions=(7,))
def logic(ctx):
    fn = F.logical_and if ctx.op_type == "And" else F.logical_or
    return fn(ctx.tensor(0), ctx.tensor(1))


@onnx_op("Not", versions=(1,))
def logical_not(ctx):
    return F.logical_not(ctx.tensor(0))


@onnx_op("Where", versions=(9, 16))
def where(ctx):
    return F.where(ctx.tensor(0), ctx.tensor(1), ctx.tensor(2))


# -- unary math --------------------------------------------------------------------------------
_UNARY = {"Neg": F.negative, "Abs": F.abs, "Sqrt": F.sqrt, "Exp": F.exp, "Log": F.log,
          "Relu": F.relu, "Sigmoid": F.sigmoid, "Tanh": F.tanh, "Reciprocal": F.reciprocal,
          "Erf": F.erf, "Sign": F.sign, "Softplus": F.softplus, "Softsign": F.softsign}


@onnx_op("Neg", "Abs", "Sqrt", "Exp", "Log", "Sigmoid", "Tanh", "Reciprocal",
         versions=(6, 13))
@onnx_op("Relu", versions=(6, 13, 14))
@onnx_op("Erf", "Sign", versions=(9, 13))
@onnx_op("Softplus", "Softsign", versions=(1, 22))
def unary(ctx):
    if ctx.op_type in ("Neg", "Abs") and ctx.all_const() and any_symbolic(ctx):
        arr = object_array(ctx.value(0).array)
        out = np.empty(arr.shape, object)
        for idx, d in np.ndenumerate(arr):
            if ctx.op_type == "Neg":
                out[idx] = -d
            elif isinstance(d, SymDim):
                out[idx] = d            # a dim is never negative
            else:
                out[idx] = abs(d)
        return Const(out, ctx.value(0).dtype)
    return _UNARY[ctx.op_type](ctx.tensor(0))


# -- activations with parameters ---------------------------------------------------------------
@onnx_op("LeakyRelu", versions=(6, 16))
def leaky_relu(ctx):
    return F.leaky_relu(ctx.tensor(0), ctx.attr("alpha", 0.01))


@onnx_op("Elu", versions=(6, 22))
def elu(ctx):
    return F.elu(ctx.tensor(0), ctx.attr("alpha", 1.0))


@onnx_op("Selu", versions=(6, 22))
def selu(ctx):
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    return F.multiply(F.elu(ctx.tensor(0), alpha), gamma)


def _hard_sigmoid(x, alpha: float, beta: float):
    return F.clip(F.add(F.multiply(x, alpha), beta), 0.0, 1.0)


@onnx_op("HardSigmoid", versions=(6, 22))
def hard_sigmoid(ctx):
    return _hard_sigmoid(ctx.tensor(0), ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5))


@onnx_op("HardSwish", versions=(14, 22))
def hard_swish(ctx):
    x = ctx.tensor(0)
    return F.multiply(x, _hard_sigmoid(x, 1.0 / 6.0, 0.5))


@onnx_op("Gelu", versions=(20,))
def gelu(ctx):
    mode = ctx.attr("approximate", "none")
    if mode not in ("none", "tanh"):
        ctx.unsupported(f"approximate={mode!r} (expected 'none' or 'tanh')")
    return F.gelu(ctx.tensor(0), approximate=mode)


@onnx_op("Clip", versions=(6, 11, 12, 13))
def clip(ctx):
    x = ctx.tensor(0)
    if ctx.version < 11:
        lo = ctx.attr("min", float("-inf"))
        hi = ctx.attr("max", float("inf"))
        return F.clip(x, lo, hi)
    lo = ctx.tensor(1) if ctx.has(1) else None
    hi = ctx.tensor(2) if ctx.has(2) else None
    if lo is None and hi is None:
        return x
    return F.clip(x, lo, hi)


# -- variadic ----------------------------------------------------------------------------------
@onnx_op("Max", "Min", versions=(6, 8, 12, 13))
@onnx_op("Sum", "Mean", versions=(6, 8, 13))
def variadic(ctx):
    xs = [ctx.tensor(i) for i in range(ctx.n_inputs) if ctx.has(i)]
    fn = {"Max": F.maximum, "Min": F.minimum, "Sum": F.add, "Mean": F.add}[ctx.op_type]
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    if ctx.op_type == "Mean" and len(xs) > 1:
        out = F.divide(out, float(len(xs)))
    return out


# -- dtype conversion and identity -------------------------------------------------------------
@onnx_op("Cast", versions=(6, 9, 13, 19, 21, 23, 24, 25, 28))
def cast(ctx):
    to = graphc_dtype(ctx.attr("to"), f"{ctx.describe()}: the target of Cast")
    # saturate and round_mode only change casts to float8 / float4 types, which graphc lacks
    ctx.attr("saturate", 1)
    ctx.attr("round_mode", "up")
    return _cast(ctx, 0, to)


def _cast(ctx, i, to):
    v = ctx.value(i)
    if isinstance(v, Const) and v.symbolic and to.is_int:
        return Const(v.array, to.np_dtype)
    return F.cast(ctx.tensor(i), to)


@onnx_op("CastLike", versions=(15, 19, 21, 23, 24, 25))
def cast_like(ctx):
    ctx.attr("saturate", 1)
    ctx.attr("round_mode", "up")
    v = ctx.value(1)
    to = dt.dtype(v.dtype) if isinstance(v, Const) else v.dtype
    return _cast(ctx, 0, to)


@onnx_op("Identity", versions=(1, 13, 14, 16, 19, 21, 23, 24, 25))
def identity(ctx):
    return ctx.value(0)

