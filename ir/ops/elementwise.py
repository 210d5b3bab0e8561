"""Elementwise primitives: unary math, binary arithmetic, comparisons, logic, select, cast.

Elementwise ops take operands of exactly one shape; numpy-style broadcasting is made explicit
by the front end with `broadcast` nodes. NaN propagates through every float op, maximum and
minimum included (like numpy, unlike IEEE maxNum). Integer division truncates toward zero, a
zero divisor gives 0 and INT_MIN / -1 wraps to INT_MIN (native code must not trap). Float-to-int
casts saturate and map NaN to 0 (LLVM's fptosi.sat), so no input is undefined behaviour.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..opdef import OpDef, register
from ._common import (elementwise_cost, require_dtype, require_same_dtype, require_same_shape)

FLOATS = dt.FLOAT_DTYPES
NUMERIC = dt.FLOAT_DTYPES + dt.INT_DTYPES
ANY = dt.ALL_DTYPES

_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    # np.asarray: on a 0-d input the object ufunc returns a bare Python float
    return np.asarray(_erf_scalar(x)).astype(x.dtype)


def _sigmoid(x):
    # Stable on both tails: exp of a non-positive number never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _rsqrt(x):
    return (1 / np.sqrt(x)).astype(x.dtype)


def _reciprocal(x):
    return (1 / x).astype(x.dtype)


def _relu(x):
    return np.maximum(x, np.zeros((), x.dtype))


# name -> (reference, allowed dtypes, flops per element, doc)
UNARY = {
    "neg": (np.negative, NUMERIC, 1, "-x"),
    "abs": (np.abs, NUMERIC, 1, "|x|"),
    "sign": (np.sign, NUMERIC, 1, "-1, 0 or 1 (NaN stays NaN)"),
    "relu": (_relu, NUMERIC, 1, "max(x, 0), NaN propagates"),
    "exp": (np.exp, FLOATS, 8, "e**x"),
    "log": (np.log, FLOATS, 8, "natural log; log(0) = -inf, log(x<0) = NaN"),
    "log1p": (np.log1p, FLOATS, 8, "log(1 + x), accurate near 0"),
    "sqrt": (np.sqrt, FLOATS, 4, "square root"),
    "rsqrt": (_rsqrt, FLOATS, 4, "1 / sqrt(x)"),
    "reciprocal": (_reciprocal, FLOATS, 1, "1 / x"),
    "tanh": (np.tanh, FLOATS, 10, "hyperbolic tangent"),
    "sigmoid": (_sigmoid, FLOATS, 10, "1 / (1 + e**-x)"),
    "erf": (_erf, FLOATS, 12, "the error function"),
}


def _int_div(a, b):
    # Floor-divide then step toward zero: abs() would overflow on INT_MIN.
    safe = np.where(b == 0, np.ones((), b.dtype), b)
    q = a // safe
    q = q + ((a % safe != 0) & ((a < 0) != (safe < 0))).astype(a.dtype)
    return np.where(b == 0, np.zeros((), a.dtype), q).astype(a.dtype)


def _div(a, b):
    if a.dtype.kind in "iu":
        return _int_div(a, b)
    return np.divide(a, b)


def _pow(a, b):
    return np.power(a, b)


BINARY = {
    "add": (np.add, NUMERIC, 1, "a + b"),
    "sub": (np.subtract, NUMERIC, 1, "a - b"),
    "mul": (np.multiply, NUMERIC, 1, "a * b"),
    "div": (_div, NUMERIC, 1, "a / b (ints: truncating, x/0 = 0)"),
    "pow": (_pow, FLOATS, 10, "a ** b"),
    "maximum": (np.maximum, NUMERIC, 1, "max(a, b), NaN propagates"),
    "minimum": (np.minimum, NUMERIC, 1, "min(a, b), NaN propagates"),
}

COMPARE = {
    "less": (np.less, NUMERIC, "a < b"),
    "less_equal": (np.less_equal, NUMERIC, "a <= b"),
    "greater": (np.greater, NUMERIC, "a > b"),
    "greater_equal": (np.greater_equal, NUMERIC, "a >= b"),
    "equal": (np.equal, ANY, "a == b"),
    "not_equal": (np.not_equal, ANY, "a != b"),
}

LOGICAL = {
    "logical_and": (np.logical_and, "a and b"),
    "logical_or": (np.logical_or, "a or b"),
}


def _unary_infer(name, allowed):
    def infer(ins, attrs):
        require_dtype(name, ins[0], allowed, "elementwise math")
        return [ins[0]]
    return infer


def _binary_infer(name, allowed, result_dtype=None):
    def infer(ins, attrs):
        shape = require_same_shape(name, ins)
        d = require_same_dtype(name, ins)
        require_dtype(name, ins[0], allowed, "elementwise math")
        return [ins[0].with_dtype(result_dtype or d).with_shape(shape)]
    return infer


def _wrap_unary(fn):
    return lambda ins, attrs: fn(ins[0])


def _wrap_binary(fn):
    return lambda ins, attrs: fn(ins[0], ins[1])


for _name, (_fn, _allowed, _flops, _doc) in UNARY.items():
    register(OpDef(_name, ("x",), {}, _unary_infer(_name, _allowed), _wrap_unary(_fn),
                   fusion="elementwise", cost=elementwise_cost(_flops), doc=_doc,
                   tags=frozenset({"unary"})))

for _name, (_fn, _allowed, _flops, _doc) in BINARY.items():
    register(OpDef(_name, ("a", "b"), {}, _binary_infer(_name, _allowed), _wrap_binary(_fn),
                   fusion="elementwise", cost=elementwise_cost(_flops), doc=_doc,
                   tags=frozenset({"binary"})))

for _name, (_fn, _allowed, _doc) in COMPARE.items():
    register(OpDef(_name, ("a", "b"), {}, _binary_infer(_name, _allowed, dt.bool_),
                   _wrap_binary(_fn), fusion="elementwise", cost=elementwise_cost(1), doc=_doc,
                   tags=frozenset({"compare"})))

for _name, (_fn, _doc) in LOGICAL.items():
    register(OpDef(_name, ("a", "b"), {}, _binary_infer(_name, (dt.bool_,)), _wrap_binary(_fn),
                   fusion="elementwise", cost=elementwise_cost(1), doc=_doc,
                   tags=frozenset({"logical"})))


def _not_infer(ins, attrs):
    require_dtype("logical_not", ins[0], (dt.bool_,), "logic")
    return [ins[0]]


register(OpDef("logical_not", ("x",), {}, _not_infer, lambda ins, attrs: np.logical_not(ins[0]),
               fusion="elementwise", cost=elementwise_cost(1), doc="not x",
               tags=frozenset({"logical"})))


# -- select ------------------------------------------------------------------------------------
def _select_infer(ins, attrs):
    cond, a, b = ins
    require_same_shape("select", ins)
    require_dtype("select", cond, (dt.bool_,), "the condition", "first operand")
    require_same_dtype("select", [a, b])
    return [a]


register(OpDef("select", ("cond", "a", "b"), {}, _select_infer,
               lambda ins, attrs: np.where(ins[0], ins[1], ins[2]).astype(ins[1].dtype),
               fusion="elementwise", cost=elementwise_cost(1),
               doc="cond ? a : b, elementwise"))


# -- cast --------------------------------------------------------------------------------------
def _cast_infer(ins, attrs):
    return [ins[0].with_dtype(attrs["dtype"])]


def cast_array(x: np.ndarray, to) -> np.ndarray:
    """Cast with graphc's defined semantics (float->int saturates, NaN->0; to bool: x != 0)."""
    to = dt.dtype(to)
    if to is dt.bool_:
        return x != 0
    if to.is_int and x.dtype.kind == "f":
        info = np.iinfo(to.np_dtype)
        with np.errstate(invalid="ignore"):
            y = np.where(np.isnan(x), 0, np.clip(np.trunc(x), info.min, info.max))
        # clip in float may round info.max up past the int range; saturate in integer space
        out = np.empty(x.shape, to.np_dtype)
        big = y >= float(info.max)
        small = y <= float(info.min)
        mid = ~(big | small)
        out[big] = info.max
        out[small] = info.min
        out[mid] = y[mid].astype(to.np_dtype)
        return out
    return x.astype(to.np_dtype)


register(OpDef("cast", ("x",), {"dtype": AttrSpec("dtype", doc="the result dtype")},
               _cast_infer, lambda ins, attrs: cast_array(ins[0], attrs["dtype"]),
               fusion="elementwise", cost=elementwise_cost(1),
               doc="convert dtype; float->int truncates and saturates, NaN->0"))
